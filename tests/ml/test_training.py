"""Training: snapshot cutoffs, data gates, the model against its baselines, and a whole run on a small store."""

from datetime import UTC, date, datetime, timedelta
from io import StringIO

import numpy as np
import pandas as pd
import pytest
from django.core.management import call_command

from marketing.demo.store import generate_store
from ml.evaluation import log_loss
from ml.features import FEATURE_NAMES
from ml.models import ModelStatus, ModelVersion
from ml.registry import TrainingOptions, read_snapshot, train_model
from ml.scoring import load_boosters
from ml.training import (
    CANDIDATE_PARAMS,
    DEFAULT_PARAMS,
    ENSEMBLE_SEEDS,
    HALF_LIVES_DAYS,
    DataFacts,
    Minimums,
    NotEnoughData,
    Snapshot,
    plan_snapshots,
    required_history_days,
    train_propensity,
    unmet_minimums,
)

AS_OF = datetime(2026, 6, 1, tzinfo=UTC)
SHOPPERS_AS_OF = datetime(2024, 7, 1, tzinfo=UTC)  # the `shoppers` fixture's moment


def test_validation_is_one_horizon_back_tuning_labels_end_where_it_starts_and_the_refit_takes_every_complete_one():
    plan = plan_snapshots(
        AS_OF, horizon_days=90, history_start=AS_OF - timedelta(days=365), step_days=14, max_tuning_snapshots=4,
        minimum_feature_days=30,
    )

    assert plan.validation == AS_OF - timedelta(days=90)
    assert plan.tuning == [AS_OF - timedelta(days=days) for days in (222, 208, 194, 180)]
    assert all(cutoff + timedelta(days=90) <= plan.validation for cutoff in plan.tuning)
    between = [AS_OF - timedelta(days=days) for days in (174, 160, 146, 132, 118, 104)]
    assert plan.refit == [*plan.tuning, *between, plan.validation]
    assert plan.cutoffs == plan.refit


def test_tuning_cutoffs_without_enough_history_before_them_are_dropped():
    plan = plan_snapshots(
        AS_OF, horizon_days=90, history_start=AS_OF - timedelta(days=230), step_days=14, max_tuning_snapshots=4,
        minimum_feature_days=30,
    )

    # The history starts 230 days back; a tuning snapshot needs 30 days of it before its cutoff.
    assert plan.tuning == [AS_OF - timedelta(days=194), AS_OF - timedelta(days=180)]
    assert plan.refit[0] == AS_OF - timedelta(days=194)
    assert required_history_days(90, 30) == 210


def test_every_unmet_minimum_is_named_with_its_figures():
    facts = DataFacts(buyers=12, history_days=40.4, recent_orders=2, recent_days=30)

    reasons = unmet_minimums(facts, Minimums(buyers=200, history_days=210, recent_orders=10))

    assert reasons == [
        "only 12 customers have ordered; at least 200 are needed",
        "order history covers 40 days; at least 210 are needed (two horizons plus the shortest feature history)",
        "2 orders in the last 30 days; at least 10 are needed to trust that the history is current",
    ]
    assert unmet_minimums(facts, Minimums(buyers=12, history_days=40, recent_orders=2)) == []


def snapshot(seed: int, customers: int, cutoff: datetime) -> Snapshot:
    """Return a snapshot whose label depends on recency through a bump a linear model cannot follow."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.exponential(5.0, size=(customers, len(FEATURE_NAMES))), columns=list(FEATURE_NAMES))
    frame["days_since_last_order"] = rng.uniform(0, 365, customers)
    frame["bgnbd_p_order"] = rng.uniform(0, 1, customers)  # BG/NBD's view here knows nothing of the bump
    frame["product_viewed_30d"] = rng.poisson(2, customers).astype(float)
    recency = frame["days_since_last_order"].to_numpy()
    logit = -1.5 + 2.0 * np.exp(-(((recency - 60) / 25) ** 2)) + 0.3 * frame["product_viewed_30d"].to_numpy()
    labels = (rng.uniform(size=customers) < 1 / (1 + np.exp(-logit))).astype(np.int8)
    frame.index = pd.Index(np.arange(1, customers + 1) + seed * customers, name="customer_id")
    return Snapshot(cutoff, frame, labels)


def test_the_model_beats_every_baseline_where_the_signal_is_not_linear():
    training = [snapshot(seed, 3000, AS_OF - timedelta(days=180 + 30 * seed)) for seed in range(3)]
    validation = snapshot(9, 3000, AS_OF - timedelta(days=90))

    result = train_propensity(training, validation)

    assert set(result.metrics) >= {"model", "recency", "logistic", "bgnbd", "calibration_note", "snapshots", "tuning"}
    for name in ("model", "recency", "logistic", "bgnbd"):
        assert {"roc_auc", "pr_auc", "log_loss", "brier", "top_decile_lift", "ece", "calibration"} <= set(
            result.metrics[name]
        )
    assert result.beats_baselines is True
    assert len(result.validation_probability) == 3000
    assert [s["role"] for s in result.metrics["snapshots"]] == ["training"] * 3 + ["validation"]
    assert [s["cutoff"] for s in result.metrics["refit"]] == [s.cutoff.isoformat() for s in [*training, validation]]
    assert len(result.metrics["tuning"]) == len(CANDIDATE_PARAMS) * len(HALF_LIVES_DAYS)
    assert result.importance[0][0] == "days_since_last_order"


def test_the_configuration_with_the_lowest_validation_loss_is_chosen_and_refit_with_its_trees():
    training = [snapshot(seed, 2000, AS_OF - timedelta(days=180 + 30 * seed)) for seed in range(2)]
    validation = snapshot(9, 2000, AS_OF - timedelta(days=90))
    # A configuration that cannot learn the bump (one split per tree, a huge minimum leaf) against the default.
    crippled = {"num_leaves": 2, "max_depth": 1, "min_data_in_leaf": 1500}

    result = train_propensity(training, validation, candidates=(crippled, {}), half_lives=(None,))

    losses = [trial["log_loss"] for trial in result.metrics["tuning"]]
    assert losses[1] < losses[0]
    assert result.params["num_leaves"] == DEFAULT_PARAMS["num_leaves"]
    assert result.best_iteration == result.metrics["tuning"][1]["trees"]
    assert [booster.num_trees() for booster in result.boosters] == [result.best_iteration] * len(ENSEMBLE_SEEDS)
    # The figures shown are the chosen configuration's on validation (its seeds averaged, the same trees),
    # not the refit model's on data it learned from.
    assert result.metrics["model"]["log_loss"] == pytest.approx(log_loss(validation.labels, result.validation_probability), abs=1e-6)
    assert result.metrics["model"]["log_loss"] == pytest.approx(losses[1], abs=0.01)


def test_the_shipped_model_learns_from_the_validation_outcomes_too():
    training = [snapshot(1, 2000, AS_OF - timedelta(days=180))]
    validation = snapshot(9, 2000, AS_OF - timedelta(days=90))
    # Validation customers whose label is flipped: only a model refit on them can learn it.
    flipped = Snapshot(validation.cutoff, validation.features, 1 - validation.labels)

    with_refit = train_propensity(training, flipped, candidates=({},), half_lives=(None,))
    tuned_only = train_propensity(training, flipped, refit=training, candidates=({},), half_lives=(None,))

    x = flipped.features.to_numpy()
    assert log_loss(flipped.labels, with_refit.predict(x)) < log_loss(flipped.labels, tuned_only.predict(x))


def test_labels_of_one_class_are_refused_by_name():
    training = [snapshot(1, 500, AS_OF - timedelta(days=180))]
    nobody = Snapshot(training[0].cutoff, training[0].features, np.zeros(500, dtype=np.int8))

    with pytest.raises(NotEnoughData, match="every training label is 0: nobody \\(or everybody\\) bought"):
        train_propensity([nobody], snapshot(2, 500, AS_OF - timedelta(days=90)))


def test_a_snapshot_with_other_columns_is_refused():
    training = [snapshot(1, 500, AS_OF - timedelta(days=180))]
    validation = snapshot(2, 500, AS_OF - timedelta(days=90))
    shuffled = Snapshot(validation.cutoff, validation.features[list(reversed(FEATURE_NAMES))], validation.labels)

    with pytest.raises(ValueError, match="does not carry the current feature names"):
        train_propensity(training, shuffled)


@pytest.mark.django_db
def test_a_whole_training_run_on_a_small_store_registers_a_candidate_with_its_card(settings):
    settings.ML_MIN_BUYERS = 50
    generate_store(customers=1200, days=365, seed=3, end_date=date(2026, 6, 1), replace=True)

    version = train_model(TrainingOptions(horizon_days=90, as_of=AS_OF))

    assert (version.version, version.status, version.horizon_days) == (1, ModelStatus.CANDIDATE, 90)
    assert version.feature_names == list(FEATURE_NAMES)
    assert version.training_to == AS_OF - timedelta(days=90)
    assert version.training_from == datetime.fromisoformat(version.metrics["refit"][0]["cutoff"])
    assert version.training_from <= AS_OF - timedelta(days=180)
    assert version.params["refit_cutoffs"][-1] == (AS_OF - timedelta(days=90)).isoformat()
    assert set(version.params["bgnbd"]) == {"r", "alpha", "a", "b"}
    assert [booster.num_trees() for booster in load_boosters(version.artifact)] == [version.params["best_iteration"]] * 3
    assert "# Purchase propensity, version 1" in version.card
    assert "| ROC AUC |" in version.card
    assert set(version.fairness["attributes"]) == {"gender", "age_band", "country"}
    assert ModelVersion.objects.count() == 1


@pytest.mark.django_db
def test_the_command_prints_the_refusal_to_activate_a_model_that_loses(settings, monkeypatch):
    settings.ML_MIN_BUYERS = 50
    generate_store(customers=1200, days=365, seed=3, end_date=date(2026, 6, 1), replace=True)
    monkeypatch.setattr("ml.training.TrainingResult.beats_baselines", property(lambda result: False))
    output = StringIO()

    with pytest.raises(Exception, match="does not beat every baseline .*; it stays a candidate"):
        call_command("train_propensity", "--as-of", "2026-06-01", "--activate", stdout=output)

    assert "model   recency  logistic    BG/NBD" in output.getvalue()
    assert ModelVersion.objects.get().status == ModelStatus.CANDIDATE


@pytest.mark.django_db(transaction=True)
def test_snapshot_chunks_read_on_several_connections_equal_one_connections_read(settings, shoppers, monkeypatch):
    # Committed rows (transaction=True) are what other connections can see, as in production.
    monkeypatch.setattr("ml.registry.READ_CHUNK_CUSTOMERS", 3)  # seven shoppers: three chunks
    cutoff = SHOPPERS_AS_OF - timedelta(days=30)
    settings.ML_READ_THREADS = 1
    alone = read_snapshot(cutoff, 30, stride=1)

    settings.ML_READ_THREADS = 2
    threaded = read_snapshot(cutoff, 30, stride=1)

    pd.testing.assert_frame_equal(threaded.features, alone.features)
    assert threaded.labels.tolist() == alone.labels.tolist()
    assert len(alone.labels) == 7
    assert alone.positives > 0


def test_older_snapshots_weigh_less_when_the_validation_snapshot_says_buying_drifts():
    # Given an old snapshot where the bump sits at 60 days and a recent one, like validation, where it sits at 200
    def shifted(seed: int, cutoff: datetime, peak: float) -> Snapshot:
        base = snapshot(seed, 3000, cutoff)
        recency = base.features["days_since_last_order"].to_numpy()
        logit = -1.5 + 2.5 * np.exp(-(((recency - peak) / 25) ** 2))
        labels = (np.random.default_rng(seed + 100).uniform(size=3000) < 1 / (1 + np.exp(-logit))).astype(np.int8)
        return Snapshot(cutoff, base.features, labels)

    old = shifted(1, AS_OF - timedelta(days=540), peak=60)
    recent = shifted(2, AS_OF - timedelta(days=180), peak=200)
    validation = shifted(9, AS_OF - timedelta(days=90), peak=200)

    result = train_propensity([old, recent], validation, candidates=({},), half_lives=(None, 90))

    weighted, even = sorted(result.metrics["tuning"], key=lambda trial: trial["half_life_days"] is None)
    assert weighted["log_loss"] < even["log_loss"]
    assert result.half_life_days == 90


def test_a_falling_buying_rate_is_corrected_by_a_platt_scaling_shipped_with_the_model():
    # Given buying that falls by a third from one horizon to the next, through validation and into the future
    def thinned(seed: int, cutoff: datetime, kept: float) -> Snapshot:
        base = snapshot(seed, 3000, cutoff)
        labels = base.labels.copy()
        buyers = np.flatnonzero(labels)
        labels[np.random.default_rng(seed).permutation(buyers)[: int(len(buyers) * (1 - kept))]] = 0
        return Snapshot(cutoff, base.features, labels)

    old = thinned(1, AS_OF - timedelta(days=270), kept=1.0)
    tuning = thinned(2, AS_OF - timedelta(days=180), kept=0.67)
    validation = thinned(9, AS_OF - timedelta(days=90), kept=0.45)
    future = thinned(5, AS_OF, kept=0.30)

    result = train_propensity([old, tuning], validation, candidates=({},), half_lives=(None,))

    slope, intercept = result.calibration
    assert 0.5 <= slope <= 2.0 and intercept < 0
    assert "after (cross-fitted)" in result.metrics["calibration_note"]
    x = future.features.to_numpy()
    plain = 1 / (1 + np.exp(-np.mean([b.predict(x, raw_score=True) for b in result.boosters], axis=0)))
    # The refit model lags the fall by one horizon, as the tuning boosters did on validation: the scaling closes it.
    assert abs(result.predict(x).mean() - future.labels.mean()) < abs(plain.mean() - future.labels.mean())
    assert log_loss(future.labels, result.predict(x)) < log_loss(future.labels, plain)


def test_a_model_whose_ranking_flips_on_validation_gets_no_calibration():
    training = [snapshot(1, 2000, AS_OF - timedelta(days=180))]
    validation = snapshot(9, 2000, AS_OF - timedelta(days=90))
    flipped = Snapshot(validation.cutoff, validation.features, 1 - validation.labels)

    result = train_propensity(training, flipped, refit=training, candidates=({},), half_lives=(None,))

    assert result.calibration is None
    assert "would not correct drift but rewrite the model" in result.metrics["calibration_note"]
