"""Fairness report: selection next to buying per group, warnings only beyond what buying explains, age bands."""

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


def scored(name: str, high: int, high_buyers: int, low: int, low_buyers: int) -> tuple[str, list[float], list[int]]:
    """Return a group of ``high`` customers scored 0.9 and ``low`` scored 0.05, with so many buyers in each."""
    labels = [1] * high_buyers + [0] * (high - high_buyers) + [1] * low_buyers + [0] * (low - low_buyers)
    return name, [0.9] * high + [0.05] * low, labels


def test_selection_rates_that_follow_real_buying_raise_no_warning():
    # Given F buys twice as often as M, and the model selects F twice as often, reaching 9 of 11 buyers in each
    frame = population(scored("F", 20, 18, 80, 4), scored("M", 10, 9, 90, 2))

    report = fairness_report(frame, threshold=0.5, top_share=0.15)

    gender = report["attributes"]["gender"]
    assert [(g["group"], g["selected_threshold"], g["observed_rate"], g["tpr_threshold"]) for g in gender["groups"]] == [
        ("F", 0.2, 0.22, 0.818182),
        ("M", 0.1, 0.11, 0.818182),
    ]
    assert gender["tpr_ratio_threshold"] == 1.0
    assert report["warnings"] == []  # the four-fifths rule on selection alone would flag M, selected at half F's rate


def test_a_group_whose_buyers_are_missed_is_warned_about_saying_what_it_means_and_what_to_consider():
    # Given both groups buy at 22%, but more than half of M's buyers were scored 0.05, below the threshold
    frame = population(scored("F", 20, 18, 80, 4), scored("M", 10, 9, 90, 13))

    report = fairness_report(frame, threshold=0.5, top_share=0.15)

    gender = report["attributes"]["gender"]
    assert [(g["group"], g["positives"], g["reached_threshold"]) for g in gender["groups"]] == [("F", 22, 18), ("M", 22, 9)]
    assert gender["tpr_ratio_threshold"] == 0.5
    assert (
        "Gender 'M': of its customers who went on to buy, the threshold selection (at least 0.5) reaches 40.9%, "
        "0.50 of the rate for 'F' (81.8%), while the two groups bought at 22.0% and 22.0%. What it means: a "
        "campaign sent this way misses this group's real buyers more often than the other group's, beyond what "
        "their buying explains. Consider: a lower threshold or a wider top share for this campaign, and check which "
        "features score this group's buyers lower (a shorter history, fewer tracked visits) before relying on the "
        "model for it."
    ) in report["warnings"]
    # The top 15% holds the same 30 customers scored 0.9: the same gap, said once for each selection.
    assert len(report["warnings"]) == 2
    assert all(w.startswith("Gender 'M'") for w in report["warnings"])


def test_a_true_positive_rate_of_exactly_four_fifths_is_not_flagged():
    # 16 of 25 buyers reached against 20 of 25: exactly 0.8, though 0.64 / 0.8 in floats is just below it
    frame = population(scored("F", 20, 20, 80, 5), scored("M", 20, 16, 80, 9))

    report = fairness_report(frame, threshold=0.5, top_share=0.2)

    assert report["attributes"]["gender"]["tpr_ratio_threshold"] == 0.8
    assert report["warnings"] == []


def test_a_group_the_model_overstates_beyond_chance_gets_a_calibration_warning():
    # Given 400 customers predicted at 0.3 of whom 10% bought, next to 1,600 predicted at 0.3 of whom 30% bought
    overstated = ("FR", [0.3] * 400, [1] * 40 + [0] * 360)
    calibrated = ("DE", [0.3] * 1600, [1] * 480 + [0] * 1120)
    frame = pd.DataFrame(
        [
            {"label": label, "probability": p, "gender": "", "age_band": "", "country": country}
            for country, probabilities, labels in (overstated, calibrated)
            for p, label in zip(probabilities, labels, strict=True)
        ]
    )

    report = fairness_report(frame, threshold=0.5, top_share=1.0)

    # Over everyone 0.87 of the prediction bought: DE's 30% against 26% is within tolerance, FR's 10% is not.
    assert report["warnings"] == [
        "Country 'FR': the model predicts 30.0% will buy and 10.0% did (400 customers), where for all customers "
        "0.87× the prediction bought. What it means: its probabilities overstate this group's buying, so a fixed "
        "threshold selects more of them than their buying warrants. Consider: selecting by decile rather than by a "
        "fixed probability, and retraining once the group has more history."
    ]


def test_a_model_off_for_everyone_alike_raises_no_group_warning():
    # Every group buys at half the predicted rate: retraining fixes that, not a look at any group
    frame = population(("F", [0.4] * 300, [1] * 60 + [0] * 240), ("M", [0.4] * 300, [1] * 60 + [0] * 240))

    assert fairness_report(frame, threshold=0.5, top_share=1.0)["warnings"] == []


def test_a_true_positive_rate_gap_within_chance_is_not_flagged():
    # 3 of 12 buyers reached against 7 of 12: below four fifths, but twelve buyers a group cannot tell
    frame = population(scored("F", 10, 7, 90, 5), scored("M", 10, 3, 90, 9))

    report = fairness_report(frame, threshold=0.5, top_share=0.1, min_group_positives=10)

    assert report["attributes"]["gender"]["tpr_ratio_threshold"] == pytest.approx(3 / 7, abs=1e-6)
    assert not [w for w in report["warnings"] if "reaches" in w]


def test_a_small_gap_in_calibration_is_put_down_to_chance():
    # 13 of 60 (21.7%) against a prediction of 30%: within two standard errors (11.8 points)
    frame = pd.DataFrame(
        [{"label": int(i < 13), "probability": 0.3, "gender": "", "age_band": "", "country": "FR"} for i in range(60)]
    )

    assert fairness_report(frame, threshold=0.5)["warnings"] == []


def test_small_groups_are_reported_but_never_warned_about():
    # Given a group of 5 whose only buyer the model missed, next to two equal groups of 100
    frame = population(scored("F", 20, 18, 80, 4), scored("M", 20, 18, 80, 4), ("X", [0.05] * 5, [1, 0, 0, 0, 0]))

    report = fairness_report(frame, threshold=0.5, top_share=0.2)  # the top 20% holds every 0.9 score

    gender = report["attributes"]["gender"]
    assert [(group["group"], group["customers"], group["small"]) for group in gender["groups"]] == [
        ("F", 100, False),
        ("M", 100, False),
        ("X", 5, True),
    ]
    assert gender["groups"][2]["tpr_threshold"] == 0.0
    assert gender["tpr_ratio_threshold"] == 1.0
    assert report["warnings"] == []


def test_fewer_than_two_comparable_groups_give_no_ratio():
    frame = population(scored("F", 20, 18, 80, 4), scored("M", 2, 2, 3, 0))

    report = fairness_report(frame, threshold=0.5, min_group_positives=2)

    assert report["attributes"]["gender"]["tpr_ratio_threshold"] is None
    assert report["attributes"]["gender"]["tpr_ratio_top_share"] is None
    assert report["attributes"]["country"]["tpr_ratio_threshold"] is None
    assert report["warnings"] == []


def test_unknown_values_are_counted_but_form_no_group():
    frame = population(gender_group("F", 1, 1, 1), gender_group("", 1, 1, 1))
    frame.loc[5, "gender"] = None
    frame["country"] = ["DE", None, "", "FR", "FR", None]

    report = fairness_report(frame, threshold=0.5, min_group_size=1, min_group_positives=1)

    gender, country = report["attributes"]["gender"], report["attributes"]["country"]
    assert [group["group"] for group in gender["groups"]] == ["F"]
    assert gender["unknown"] == 3
    assert [(group["group"], group["customers"]) for group in country["groups"]] == [("DE", 1), ("FR", 2)]
    assert country["unknown"] == 3
    assert report["attributes"]["age_band"] == {"groups": [], "unknown": 6}


def test_a_group_is_described_by_buying_selection_true_positive_rate_and_calibration():
    # Given A: positives at 0.9 and 0.3, negatives at 0.6 and 0.2; B: no positives
    frame = population(("A", [0.9, 0.6, 0.3, 0.2], [1, 0, 1, 0]), ("B", [0.8, 0.1], [0, 0]))

    report = fairness_report(frame, threshold=0.5, top_share=0.5, min_group_size=3, min_group_positives=1)

    assert report["attributes"]["gender"]["groups"] == [
        {
            "group": "A",
            "customers": 4,
            "positives": 2,
            "observed_rate": 0.5,
            "mean_predicted": 0.5,
            "selected_top_share": 0.5,
            "selected_threshold": 0.5,
            "tpr_top_share": 0.5,
            "reached_top_share": 1,
            "tpr_threshold": 0.5,
            "reached_threshold": 1,
            "small": False,
        },
        {
            "group": "B",
            "customers": 2,
            "positives": 0,
            "observed_rate": 0.0,
            "mean_predicted": 0.45,
            "selected_top_share": 0.5,
            "selected_threshold": 0.5,
            "tpr_top_share": None,
            "reached_top_share": 0,
            "tpr_threshold": None,
            "reached_threshold": 0,
            "small": True,
        },
    ]


def test_top_share_breaks_ties_by_frame_order():
    # Given ten equal scores, the top 20% is the first two rows
    frame = population(("A", [0.5, 0.5], [1, 0]), ("B", [0.5] * 8, [1, 1, 1, 1, 0, 0, 0, 0]))

    report = fairness_report(frame, threshold=0.9, top_share=0.2, min_group_size=1, min_group_positives=1)

    groups = report["attributes"]["gender"]["groups"]
    assert [group["selected_top_share"] for group in groups] == [1.0, 0.0]
    assert [group["tpr_top_share"] for group in groups] == [1.0, 0.0]
    assert report["attributes"]["gender"]["tpr_ratio_top_share"] == 0.0
    assert report["attributes"]["gender"]["tpr_ratio_threshold"] is None
    assert report["warnings"] == []  # one buyer reached against none of four is not beyond chance


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
