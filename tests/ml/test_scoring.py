"""The scorer: reasons equal LightGBM's own contributions row by row, mismatched frames refused, deciles exact."""

import json
from collections import Counter

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

from marketing.models import Customer
from ml.features import FEATURE_NAMES, FeatureMismatch
from ml.models import Score
from ml.runs import start_scoring_run
from ml.scoring import REASONS_PER_CUSTOMER, Scorer, assign_deciles, decile_cut_points, ensemble_artifact, load_boosters
from tests.ml.conftest import AS_OF, random_features


@pytest.fixture(scope="module")
def scorer(booster) -> Scorer:
    return Scorer(booster.model_to_string(), FEATURE_NAMES, calibration=None)


def thresholds_of(booster: lgb.Booster) -> dict[str, list[float]]:
    """Return every split threshold of the model per feature name, read from its dump independently."""
    found: dict[str, set[float]] = {}
    stack = [tree["tree_structure"] for tree in booster.dump_model()["tree_info"]]
    while stack:
        node = stack.pop()
        if "split_feature" in node:
            found.setdefault(FEATURE_NAMES[node["split_feature"]], set()).add(float(node["threshold"]))
            stack += [node["left_child"], node["right_child"]]
    return {name: sorted(values) for name, values in found.items()}


@pytest.fixture(scope="module")
def crowded(booster) -> pd.DataFrame:
    """A frame of near-duplicates: rows that differ only between split points, and rows exactly on or just past them."""
    rng = np.random.default_rng(3)
    base = random_features(40, seed=21).round()
    rows = [base]
    for _ in range(8):
        jitter = base.copy()
        jitter += rng.uniform(-0.4, 0.4, size=jitter.shape)
        rows.append(jitter)
    on_split = base.iloc[:20].copy()
    past_split = base.iloc[:20].copy()
    for index, (name, thresholds) in enumerate(thresholds_of(booster).items()):
        value = thresholds[index % len(thresholds)]
        on_split[name] = value
        past_split[name] = np.nextafter(value, np.inf)
    frame = pd.concat([*rows, on_split, past_split], ignore_index=True)
    frame.index = pd.Index(np.arange(1, len(frame) + 1) * 3, name="customer_id")
    return frame


def direct_reasons(values: np.ndarray, contributions: np.ndarray) -> list[list[dict]]:
    """Return the top reasons of every row from its own contributions: largest absolute effect first, ties by column."""
    reasons = []
    for row, contribution in zip(values, contributions, strict=True):
        effects = contribution[:-1]
        order = sorted(range(len(effects)), key=lambda column: (-abs(effects[column]), column))
        reasons.append(
            [
                {"feature": FEATURE_NAMES[c], "value": round(float(row[c]), 4), "effect": round(float(effects[c]), 4)}
                for c in order[:REASONS_PER_CUSTOMER]
                if effects[c] != 0
            ]
        )
    return reasons


@pytest.mark.parametrize("direct", [False, True], ids=["by patterns", "directly"])
def test_reasons_and_probabilities_equal_lightgbm_contributions_on_every_row(booster, scorer, crowded, monkeypatch, direct):
    values = crowded.to_numpy(dtype=np.float64)
    contributions = booster.predict(values, pred_contrib=True)

    # Patterns for many rows, one pred_contrib call for a few: the same numbers either way.
    monkeypatch.setattr("ml.scoring.DIRECT_EXPLANATION_ROWS", len(crowded) + 1 if direct else 1)
    scored = scorer.score(crowded)

    assert (scored.patterns < len(crowded) * booster.num_trees()) is not direct
    assert scored.customer_ids.tolist() == crowded.index.tolist()
    assert [json.loads(reasons) for reasons in scored.reasons] == direct_reasons(values, contributions)
    # Summed tree by tree rather than in LightGBM's order: equal up to the last bits of a double.
    np.testing.assert_allclose(scored.probability, 1 / (1 + np.exp(-contributions.sum(axis=1))), rtol=1e-12, atol=0)
    np.testing.assert_allclose(scored.probability, booster.predict(values), rtol=1e-12, atol=0)


def test_reasons_name_the_features_the_label_depends_on(scorer, crowded):
    scored = scorer.score(crowded)

    firsts = Counter(json.loads(reasons)[0]["feature"] for reasons in scored.reasons)

    assert {name for name, _ in firsts.most_common(2)} == {"days_since_last_order", "orders_90d"}


def test_probability_without_reasons_equals_the_scored_probability(scorer, crowded):
    np.testing.assert_allclose(scorer.probability(crowded), scorer.score(crowded).probability, rtol=1e-12, atol=0)


def test_calibration_applies_the_platt_slope_and_intercept_to_the_raw_score(booster, crowded):
    calibrated = Scorer(booster.model_to_string(), FEATURE_NAMES, calibration=[0.5, -1.0])
    raw = booster.predict(crowded.to_numpy(), raw_score=True)

    np.testing.assert_allclose(calibrated.score(crowded).probability, 1 / (1 + np.exp(-(0.5 * raw - 1.0))), rtol=1e-12)
    np.testing.assert_allclose(calibrated.probability(crowded), 1 / (1 + np.exp(-(0.5 * raw - 1.0))), rtol=1e-12)


def test_a_frame_with_missing_values_is_refused_by_column(scorer, crowded):
    holes = crowded.assign(days_since_last_order=np.nan, orders_7d=1.0)
    holes.loc[holes.index[3], "spend_trend"] = np.nan

    with pytest.raises(ValueError) as raised:
        scorer.score(holes)

    assert str(raised.value) == "features hold no value (NaN) in days_since_last_order, spend_trend"


def test_an_empty_frame_scores_nobody(scorer):
    scored = scorer.score(pd.DataFrame(columns=list(FEATURE_NAMES), dtype=float))

    assert (scored.customer_ids.tolist(), scored.probability.tolist(), scored.reasons, scored.patterns) == (
        [],
        [],
        [],
        0,
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda f: f[[f.columns[1], f.columns[0], *f.columns[2:]]],
            "column 1 is 'days_since_first_order' where the model expects 'tenure_days'",
        ),
        (lambda f: f.sample(frac=1, axis=1, random_state=5), "where the model expects"),
        (lambda f: f.drop(columns=["orders_30d"]), "missing orders_30d"),
        (lambda f: f.assign(gender=1.0), "unexpected gender"),
    ],
    ids=["swapped", "shuffled", "missing", "extra"],
)
@pytest.mark.parametrize("method", ["score", "probability"])
def test_a_frame_with_other_columns_is_refused_and_nothing_is_scored(scorer, crowded, change, message, method):
    changed = change(crowded)

    with pytest.raises(FeatureMismatch, match=message):
        getattr(scorer, method)(changed)


def test_a_model_is_refused_with_feature_names_other_than_its_own(booster):
    reordered = [FEATURE_NAMES[1], FEATURE_NAMES[0], *FEATURE_NAMES[2:]]

    with pytest.raises(FeatureMismatch) as raised:
        Scorer(booster.model_to_string(), reordered, calibration=None)

    assert str(raised.value) == "column 1 is 'tenure_days' where the model expects 'days_since_first_order'"


def test_decile_cut_points_are_the_nine_inner_tenths():
    probability = np.arange(11.0) / 10

    assert decile_cut_points(probability) == pytest.approx([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9], abs=1e-15)
    assert decile_cut_points(np.empty(0)) == []


def test_deciles_run_from_1_for_the_likeliest_to_10_and_a_cut_point_belongs_to_the_higher_decile():
    cut_points = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]

    deciles = assign_deciles(np.array([0.95, 0.9, 0.5, 0.45, 0.2, 0.05, 0.0]), cut_points)

    assert deciles.tolist() == [1, 1, 5, 6, 8, 10, 10]
    assert deciles.dtype == np.int16


def test_a_hundred_distinct_probabilities_fill_each_decile_with_ten():
    probability = np.random.default_rng(1).permutation(np.arange(100)) / 100

    deciles = assign_deciles(probability, decile_cut_points(probability))

    assert np.bincount(deciles, minlength=11).tolist() == [0] + [10] * 10
    assert deciles[probability.argmax()] == 1 and deciles[probability.argmin()] == 10


def test_without_cut_points_everyone_is_in_the_first_decile():
    assert assign_deciles(np.array([0.1, 0.7]), []).tolist() == [1, 1]


def test_renaming_a_customer_leaves_their_score_unchanged(
    trained_version, shoppers, django_capture_on_commit_callbacks
):
    def scores() -> dict[int, tuple]:
        return {
            customer: (probability, decile, reasons)
            for customer, probability, decile, reasons in Score.objects.filter(model_version=trained_version)
            .order_by("customer_id")
            .values_list("customer_id", "probability", "decile", "reasons")
        }

    with django_capture_on_commit_callbacks(execute=True):
        start_scoring_run(AS_OF)
    before = scores()
    Customer.objects.filter(pk__in=[shopper.pk for shopper in shoppers]).update(
        first_name="Renamed", last_name="Else", email="renamed@example.org"
    )

    with django_capture_on_commit_callbacks(execute=True):
        start_scoring_run(AS_OF)

    assert list(before) == [shopper.pk for shopper in shoppers]
    assert scores() == before
    assert len({probability for probability, _, _ in before.values()}) > 3


def test_an_ensemble_scores_the_mean_raw_score_and_explains_the_mean_contributions(booster, worse_booster, crowded):
    ensemble = Scorer(ensemble_artifact([booster, worse_booster]), FEATURE_NAMES, calibration=None)
    values = crowded.to_numpy(dtype=np.float64)
    raw = (booster.predict(values, raw_score=True) + worse_booster.predict(values, raw_score=True)) / 2
    contributions = (booster.predict(values, pred_contrib=True) + worse_booster.predict(values, pred_contrib=True)) / 2

    scored = ensemble.score(crowded)

    np.testing.assert_allclose(ensemble.probability(crowded), 1 / (1 + np.exp(-raw)), rtol=1e-12, atol=0)
    np.testing.assert_allclose(scored.probability, 1 / (1 + np.exp(-raw)), rtol=1e-9, atol=0)
    assert [json.loads(reasons) for reasons in scored.reasons] == direct_reasons(values, contributions)


def test_an_artifact_of_another_format_is_refused(booster):
    with pytest.raises(ValueError, match="the artifact is not a kairos.propensity-ensemble/1 artifact"):
        load_boosters(json.dumps({"format": "something/9", "boosters": [booster.model_to_string()]}))
