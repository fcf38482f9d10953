"""On demo stores of other seeds than `make demo`'s, the model beats every baseline as well, without force."""

from datetime import UTC, date, datetime

import pytest
from django.conf import settings

from marketing.demo.store import build_demo_shop
from ml.registry import TrainingOptions, train_run
from ml.training import BASELINES

END = date(2026, 6, 1)
CUSTOMERS = 5_000

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(
        "sqlite" in settings.DATABASES["default"]["ENGINE"],
        reason="the demo-store model checks run once, on PostgreSQL; it is the same model on SQLite",
    ),
]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_model_beats_every_baseline_on_roc_auc_and_log_loss(seed, tmp_path):
    build_demo_shop(CUSTOMERS, 730, seed, END, tmp_path, replace=True)

    metrics = train_run(TrainingOptions(horizon_days=90, as_of=datetime(2026, 6, 1, tzinfo=UTC))).result.metrics

    model = metrics["model"]
    assert {name: model["roc_auc"] > metrics[name]["roc_auc"] for name in BASELINES} == dict.fromkeys(BASELINES, True)
    assert {name: model["log_loss"] < metrics[name]["log_loss"] for name in BASELINES} == dict.fromkeys(BASELINES, True)
