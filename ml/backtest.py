"""Backtests: train with data before a date, score everyone known then, and judge against what happened next.

The way a shop checks Kairos before trusting it. A version is trained exactly as `train_propensity`
would have trained it on that date, then every customer known at the date is scored by the shipped
(refitted) model, and the scores are compared with who actually ordered within the horizon after
it. The baselines are judged the same way on the same customers: the recency rank and the logistic
regression fitted on the same snapshots as the shipped model, and BG/NBD fitted on every history
before the date. The result is stored with the version.
"""

from datetime import datetime, timedelta

import numpy as np
from django.db.models import Max

from marketing.models import Order
from ml.evaluation import evaluate
from ml.features import add_buying_features
from ml.models import Backtest
from ml.queries import RETURNED_STATUSES
from ml.registry import TrainingOptions, read_snapshot, register, scorer_for, train_run
from ml.training import Snapshot, fit_baselines, judge_baselines


class BacktestRefused(ValueError):
    """The history cannot judge a backtest at that date."""


def check_outcome_window(as_of: datetime, horizon_days: int) -> None:
    """Refuse a date whose outcome window reaches past the last stored order: its outcome is not known yet."""
    last = Order.objects.exclude(status__in=RETURNED_STATUSES).aggregate(last=Max("placed_at"))["last"]
    if last is None:
        raise BacktestRefused("no order is stored, so there is nothing to judge a backtest on")
    end = as_of + timedelta(days=horizon_days)
    if end > last:
        raise BacktestRefused(
            f"{as_of:%Y-%m-%d} + {horizon_days} days = {end:%Y-%m-%d}, past the last stored order "
            f"({last:%Y-%m-%d %H:%M} UTC): who orders within the horizon is not known yet; choose a date on or "
            f"before {last - timedelta(days=horizon_days):%Y-%m-%d}"
        )


def backtest(as_of: datetime, horizon_days: int) -> Backtest:
    """Train with data before `as_of`, judge the shipped model and the baselines on the next horizon; store it."""
    check_outcome_window(as_of, horizon_days)
    run = train_run(TrainingOptions(horizon_days=horizon_days, as_of=as_of))
    version = register(run)
    scorer = scorer_for(version)
    # Everyone known at the date, unsampled. Its own buying features come from a BG/NBD fitted afresh on
    # every history before the date: the baseline's best shot. The model reads them with its own fit.
    judged = read_snapshot(as_of, horizon_days, stride=1)
    as_scored = Snapshot(
        as_of, add_buying_features(judged.features, scorer.buying, horizon_days, judged.season), judged.labels
    )
    # The recency and logistic baselines learn from the same snapshots as the shipped model.
    shipped = fit_baselines([run.snapshots[cutoff] for cutoff in run.plan.refit])
    baselines = judge_baselines(shipped, as_scored)
    metrics = {
        "model": evaluate(judged.labels, scorer.probability(as_scored.features)),
        "recency": baselines["recency"],
        "logistic": baselines["logistic"],
        "bgnbd": judge_baselines(shipped, judged)["bgnbd"],
    }
    return Backtest.objects.create(
        model_version=version,
        as_of=as_of,
        horizon_days=horizon_days,
        customers=len(judged.labels),
        positives=int(np.sum(judged.labels)),
        metrics=metrics,
    )
