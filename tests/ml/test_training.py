"""Training: snapshot cutoffs, data gates, the model against its baselines, and a whole run on a small store."""

from datetime import UTC, date, datetime, timedelta
from io import StringIO

import numpy as np
import pandas as pd
import pytest
from django.core.management import call_command

from marketing.demo.store import generate_store
from ml.features import FEATURE_NAMES
from ml.models import ModelStatus, ModelVersion
from ml.registry import TrainingOptions, read_snapshot, train_model
from ml.training import (
    DataFacts,
    Minimums,
    NotEnoughData,
    Snapshot,
    required_history_days,
    snapshot_cutoffs,
    train_propensity,
    unmet_minimums,
)

AS_OF = datetime(2026, 6, 1, tzinfo=UTC)
SHOPPERS_AS_OF = datetime(2024, 7, 1, tzinfo=UTC)  # the `shoppers` fixture's moment


def test_validation_is_one_horizon_back_and_training_labels_end_where_it_starts():
    training, validation = snapshot_cutoffs(
        AS_OF, horizon_days=90, history_start=AS_OF - timedelta(days=365), snapshots=4, minimum_feature_days=30
    )

    assert validation == AS_OF - timedelta(days=90)
    assert training == [AS_OF - timedelta(days=days) for days in (270, 240, 210, 180)]
    assert all(cutoff + timedelta(days=90) <= validation for cutoff in training)


def test_training_cutoffs_without_enough_history_before_them_are_dropped():
    training, _ = snapshot_cutoffs(
        AS_OF, horizon_days=90, history_start=AS_OF - timedelta(days=230), snapshots=4, minimum_feature_days=30
    )

    assert training == [AS_OF - timedelta(days=180)]
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
    frame["product_viewed_30d"] = rng.poisson(2, customers).astype(float)
    recency = frame["days_since_last_order"].to_numpy()
    logit = -1.5 + 2.0 * np.exp(-(((recency - 60) / 25) ** 2)) + 0.3 * frame["product_viewed_30d"].to_numpy()
    labels = (rng.uniform(size=customers) < 1 / (1 + np.exp(-logit))).astype(np.int8)
    frame.index = pd.Index(np.arange(1, customers + 1) + seed * customers, name="customer_id")
    return Snapshot(cutoff, frame, labels)


def test_the_model_beats_both_baselines_where_the_signal_is_not_linear():
    training = [snapshot(seed, 3000, AS_OF - timedelta(days=180 + 30 * seed)) for seed in range(3)]
    validation = snapshot(9, 3000, AS_OF - timedelta(days=90))

    result = train_propensity(training, validation)

    assert set(result.metrics) >= {"model", "recency", "logistic", "calibration_note", "snapshots"}
    for name in ("model", "recency", "logistic"):
        assert {"roc_auc", "pr_auc", "log_loss", "brier", "top_decile_lift", "ece", "calibration"} <= set(
            result.metrics[name]
        )
    assert result.beats_baselines is True
    assert len(result.validation_probability) == 3000
    assert [s["role"] for s in result.metrics["snapshots"]] == ["training"] * 3 + ["validation"]
    assert result.importance[0][0] == "days_since_last_order"


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
    assert version.training_from == AS_OF - timedelta(days=270)
    assert version.artifact.startswith("tree\n")
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

    with pytest.raises(Exception, match="does not beat both baselines .*; it stays a candidate"):
        call_command("train_propensity", "--as-of", "2026-06-01", "--activate", stdout=output)

    assert "model   recency  logistic" in output.getvalue()
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
