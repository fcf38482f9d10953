"""Fairness report: selection rates per group, the four-fifths warning, unknown values and age bands."""

import json
from datetime import date

import pandas as pd
import pytest

from ml.fairness import age_band, fairness_report


def population(*groups: tuple[str, list[float], list[int]], age: str = "", country: str = "DE") -> pd.DataFrame:
    """Return a scored frame of (gender, probabilities, labels) groups, one shared age band and country."""
    rows = [
        {"label": label, "probability": probability, "gender": gender, "age_band": age, "country": country}
        for gender, probabilities, labels in groups
        for probability, label in zip(probabilities, labels, strict=True)
    ]
    return pd.DataFrame(rows)


def gender_group(name: str, high: int, middle: int, low: int) -> tuple[str, list[float], list[int]]:
    """Return a group with ``high`` customers at 0.9, ``middle`` at 0.6 and ``low`` at 0.1, the high ones positive."""
    return name, [0.9] * high + [0.6] * middle + [0.1] * low, [1] * high + [0] * (middle + low)


def test_a_gender_selected_below_four_fifths_gets_exactly_one_warning():
    # Given the top 10% (8 of 80) split evenly, but the threshold picking 12 F and only 8 M
    frame = population(gender_group("F", 4, 8, 28), gender_group("M", 4, 4, 32))

    report = fairness_report(frame, threshold=0.5)

    gender = report["attributes"]["gender"]
    assert report["warnings"] == [
        "Gender 'M' is selected at 20.0% by the threshold selection (probability at least 0.5), "
        "0.67 of the rate of 'F' (30.0%), below four fifths."
    ]
    assert gender["impact_ratio_threshold"] == 0.666667
    assert gender["impact_ratio_top_share"] == 1.0
    assert [group["selected_threshold"] for group in gender["groups"]] == [0.3, 0.2]
    assert [group["selected_top_share"] for group in gender["groups"]] == [0.1, 0.1]


def test_equal_selection_rates_raise_no_warning():
    frame = population(gender_group("F", 4, 8, 28), gender_group("M", 4, 8, 28))

    report = fairness_report(frame, threshold=0.5)

    assert report["warnings"] == []
    assert report["attributes"]["gender"]["impact_ratio_threshold"] == 1.0
    assert report["attributes"]["gender"]["impact_ratio_top_share"] == 1.0


def test_a_rate_of_exactly_four_fifths_is_not_flagged():
    # 20 of 30 against 25 of 30 is exactly 0.8, though (20 / 30) / (25 / 30) in floats is just below it.
    frame = population(gender_group("F", 3, 22, 5), gender_group("M", 3, 17, 10))

    report = fairness_report(frame, threshold=0.5)

    assert report["attributes"]["gender"]["impact_ratio_threshold"] == 0.8
    assert report["warnings"] == []


def test_small_groups_are_reported_but_neither_set_nor_breach_the_ratio():
    # Given a group of 5 that nobody selects, next to two equal groups of 40
    frame = population(gender_group("F", 4, 8, 28), gender_group("M", 4, 8, 28), gender_group("X", 0, 0, 5))

    report = fairness_report(frame, threshold=0.5)

    gender = report["attributes"]["gender"]
    assert [(group["group"], group["customers"], group["small"]) for group in gender["groups"]] == [
        ("F", 40, False),
        ("M", 40, False),
        ("X", 5, True),
    ]
    assert gender["groups"][2]["selected_threshold"] == 0.0
    assert gender["impact_ratio_threshold"] == 1.0
    assert report["warnings"] == []


def test_fewer_than_two_comparable_groups_give_no_ratio():
    frame = population(gender_group("F", 4, 8, 28), gender_group("M", 1, 1, 3))

    report = fairness_report(frame, threshold=0.5)

    assert report["attributes"]["gender"]["impact_ratio_threshold"] is None
    assert report["attributes"]["gender"]["impact_ratio_top_share"] is None
    assert report["attributes"]["country"]["impact_ratio_threshold"] is None
    assert report["warnings"] == []


def test_unknown_values_are_counted_but_form_no_group():
    frame = population(gender_group("F", 1, 1, 1), gender_group("", 1, 1, 1))
    frame.loc[5, "gender"] = None
    frame["country"] = ["DE", None, "", "FR", "FR", None]

    report = fairness_report(frame, threshold=0.5, min_group_size=1)

    gender, country = report["attributes"]["gender"], report["attributes"]["country"]
    assert [group["group"] for group in gender["groups"]] == ["F"]
    assert gender["unknown"] == 3
    assert [(group["group"], group["customers"]) for group in country["groups"]] == [("DE", 1), ("FR", 2)]
    assert country["unknown"] == 3
    assert report["attributes"]["age_band"] == {
        "groups": [],
        "unknown": 6,
        "impact_ratio_top_share": None,
        "impact_ratio_threshold": None,
    }


def test_a_group_is_described_by_selection_true_positive_rate_and_calibration():
    # Given A: positives at 0.9 and 0.3, negatives at 0.6 and 0.2; B: no positives
    frame = population(("A", [0.9, 0.6, 0.3, 0.2], [1, 0, 1, 0]), ("B", [0.8, 0.1], [0, 0]))

    report = fairness_report(frame, threshold=0.5, top_share=0.5, min_group_size=3)

    assert report["attributes"]["gender"]["groups"] == [
        {
            "group": "A",
            "customers": 4,
            "positives": 2,
            "selected_top_share": 0.5,
            "selected_threshold": 0.5,
            "tpr_top_share": 0.5,
            "tpr_threshold": 0.5,
            "mean_predicted": 0.5,
            "observed_rate": 0.5,
            "small": False,
        },
        {
            "group": "B",
            "customers": 2,
            "positives": 0,
            "selected_top_share": 0.5,
            "selected_threshold": 0.5,
            "tpr_top_share": None,
            "tpr_threshold": None,
            "mean_predicted": 0.45,
            "observed_rate": 0.0,
            "small": True,
        },
    ]


def test_top_share_breaks_ties_by_frame_order():
    # Given ten equal scores, the top 20% is the first two rows
    frame = population(("A", [0.5, 0.5], [0, 0]), ("B", [0.5] * 8, [0] * 8))

    report = fairness_report(frame, threshold=0.9, top_share=0.2, min_group_size=1)

    groups = report["attributes"]["gender"]["groups"]
    assert [group["selected_top_share"] for group in groups] == [1.0, 0.0]
    assert [group["selected_threshold"] for group in groups] == [0.0, 0.0]
    assert report["attributes"]["gender"]["impact_ratio_top_share"] == 0.0
    assert report["attributes"]["gender"]["impact_ratio_threshold"] is None
    assert report["warnings"] == [
        "Gender 'B' is selected at 0.0% by the top 20% selection, 0.00 of the rate of 'A' (100.0%), below four fifths."
    ]


def test_the_report_is_json_ready():
    frame = population(gender_group("F", 4, 8, 28), gender_group("M", 4, 4, 32))

    report = fairness_report(frame, threshold=0.5)

    assert json.loads(json.dumps(report)) == report
    assert (report["threshold"], report["top_share"], report["customers"]) == (0.5, 0.1, 80)


def test_a_frame_without_the_sensitive_columns_is_refused():
    frame = pd.DataFrame({"label": [1], "probability": [0.5], "gender": ["F"]})

    with pytest.raises(ValueError, match="lacks the column\\(s\\) age_band, country"):
        fairness_report(frame, threshold=0.5)


@pytest.mark.parametrize(
    ("born", "as_of", "band"),
    [
        (date(2006, 6, 15), date(2024, 6, 15), "18-24"),
        (date(2006, 6, 16), date(2024, 6, 15), "under 18"),
        (date(1999, 6, 15), date(2024, 6, 15), "25-34"),
        (date(1999, 6, 16), date(2024, 6, 15), "18-24"),
        (date(1989, 6, 15), date(2024, 6, 15), "35-44"),
        (date(1979, 6, 15), date(2024, 6, 15), "45-54"),
        (date(1969, 6, 15), date(2024, 6, 15), "55-64"),
        (date(1959, 6, 15), date(2024, 6, 15), "65+"),
        (date(1959, 6, 16), date(2024, 6, 15), "55-64"),
        (date(2008, 2, 29), date(2026, 2, 28), "under 18"),
        (date(2008, 2, 29), date(2026, 3, 1), "18-24"),
        (date(2024, 6, 16), date(2024, 6, 15), ""),
    ],
)
def test_age_band_turns_over_on_the_birthday(born, as_of, band):
    assert age_band(pd.Series([born]), as_of).tolist() == [band]


def test_age_band_of_unknown_birth_dates_is_empty():
    birth_dates = pd.Series([None, pd.NaT, date(1990, 1, 1)], index=[7, 8, 9])

    bands = age_band(birth_dates, date(2024, 6, 15))

    assert bands.tolist() == ["", "", "25-34"]
    assert bands.index.tolist() == [7, 8, 9]
