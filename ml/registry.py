"""Train, register, activate and roll back model versions; load a version's model once per process.

The Django shell around `ml.training`: it reads snapshots through `ml.queries`, checks the data
gates, trains, writes the fairness report and model card, and stores everything on a
`ModelVersion` row. A version becomes active only if it beats every baseline, unless forced.
"""

import math
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import pandas as pd
from django.conf import settings
from django.db import connections, transaction
from django.db.models import Max, Min
from django.utils import timezone

from marketing.models import Customer, Order
from ml.bgnbd import BgNbd
from ml.card import BASELINE_LABELS, model_card
from ml.fairness import age_band, fairness_report
from ml.features import (
    FEATURE_NAMES,
    FeatureMismatch,
    add_buying_features,
    build_base_features,
    check_feature_names,
    fit_buying_model,
)
from ml.models import PURCHASE_PROPENSITY, ModelStatus, ModelVersion
from ml.queries import (
    READ_CHUNK_CUSTOMERS,
    RETURNED_STATUSES,
    customer_id_ranges,
    read_aggregates,
    read_labels,
    read_season_index,
    sensitive_attributes,
)
from ml.scoring import Scorer, ensemble_artifact
from ml.training import (
    BASELINES,
    DataFacts,
    Minimums,
    NotEnoughData,
    Snapshot,
    SnapshotPlan,
    TrainingResult,
    plan_snapshots,
    required_history_days,
    train_propensity,
    unmet_minimums,
)


class ActivationRefused(Exception):
    """A version that does not beat its baselines was not activated."""


@dataclass(frozen=True)
class TrainingOptions:
    horizon_days: int
    as_of: datetime
    activate: bool = False
    force: bool = False


def measure_data(as_of: datetime) -> DataFacts:
    """Return the facts the data gates judge, from orders placed before `as_of`."""
    kept = Order.objects.filter(placed_at__lt=as_of).exclude(status__in=RETURNED_STATUSES)
    span = kept.aggregate(first=Min("placed_at"), last=Max("placed_at"))
    recent_days = settings.ML_RECENT_DAYS
    return DataFacts(
        buyers=kept.values("customer_id").distinct().count(),
        history_days=(as_of - span["first"]).total_seconds() / 86_400 if span["first"] else 0.0,
        recent_orders=kept.filter(placed_at__gte=as_of - timedelta(days=recent_days)).count(),
        recent_days=recent_days,
    )


def minimums(horizon_days: int) -> Minimums:
    return Minimums(
        buyers=settings.ML_MIN_BUYERS,
        history_days=required_history_days(horizon_days, settings.ML_MIN_FEATURE_DAYS),
        recent_orders=settings.ML_MIN_RECENT_ORDERS,
    )


def read_snapshot(cutoff: datetime, horizon_days: int, stride: int) -> Snapshot:
    """Read every (sampled) customer's features as of `cutoff` and their label in the following horizon.

    The BG/NBD behind the buying features is fitted on the same customers' histories before the cutoff.
    """
    ranges = customer_id_ranges(cutoff, READ_CHUNK_CUSTOMERS, stride)
    threads = min(settings.ML_READ_THREADS, len(ranges))
    if threads > 1:
        # Each thread has its own database connection, so PostgreSQL works on two chunks at once.
        with ThreadPoolExecutor(threads) as pool:
            parts = list(pool.map(lambda bounds: _read_part_closing(cutoff, horizon_days, bounds), ranges))
    else:
        parts = [_read_part(cutoff, horizon_days, bounds) for bounds in ranges]
    if not parts:
        return Snapshot(cutoff, pd.DataFrame(columns=list(FEATURE_NAMES), dtype=float), np.empty(0, dtype=np.int8))
    base = pd.concat([part[0] for part in parts])
    buying = fit_buying_model(base)
    season = read_season_index(cutoff, horizon_days)
    labels = np.concatenate([part[1] for part in parts])
    return Snapshot(cutoff, add_buying_features(base, buying, horizon_days, season), labels, buying, season)


def _read_part(cutoff: datetime, horizon_days: int, bounds: tuple[int, int]) -> tuple[pd.DataFrame, np.ndarray]:
    first_id, last_id = bounds
    base = build_base_features(read_aggregates(cutoff, first_id, last_id), cutoff.timestamp())
    bought = read_labels(cutoff, horizon_days, first_id, last_id)
    return base, np.fromiter((pk in bought for pk in base.index), dtype=np.int8, count=len(base))


def _read_part_closing(cutoff: datetime, horizon_days: int, bounds: tuple[int, int]):
    try:
        return _read_part(cutoff, horizon_days, bounds)
    finally:
        connections.close_all()  # this thread's connections only


def training_stride(population: int, snapshots: int) -> int:
    """Return the sampling stride that keeps each snapshot and all of them together within the row budget."""
    per_snapshot = math.ceil(population / settings.ML_TRAINING_MAX_CUSTOMERS)
    overall = math.ceil(population * max(snapshots, 1) / settings.ML_TRAINING_MAX_ROWS)
    return max(1, per_snapshot, overall)


@dataclass(frozen=True)
class TrainedRun:
    """A training run before it is registered: the plan, the snapshots read and the result."""

    options: TrainingOptions
    plan: SnapshotPlan
    snapshots: dict[datetime, Snapshot]
    result: TrainingResult
    stride: int

    @property
    def validation(self) -> Snapshot:
        return self.snapshots[self.plan.validation]


def train_run(options: TrainingOptions) -> TrainedRun:
    """Check the data gates, read the planned snapshots and train; nothing is stored."""
    as_of, horizon = options.as_of, options.horizon_days
    facts = measure_data(as_of)
    reasons = unmet_minimums(facts, minimums(horizon))
    if reasons:
        raise NotEnoughData(reasons)
    plan = plan_snapshots(
        as_of,
        horizon,
        history_start=as_of - timedelta(days=facts.history_days),
        step_days=settings.ML_SNAPSHOT_STEP_DAYS,
        max_tuning_snapshots=settings.ML_SNAPSHOTS,
        minimum_feature_days=settings.ML_MIN_FEATURE_DAYS,
    )
    stride = training_stride(Customer.objects.known_at(as_of).count(), len(plan.cutoffs))
    snapshots = {cutoff: read_snapshot(cutoff, horizon, stride) for cutoff in plan.cutoffs}
    result = train_propensity(
        [snapshots[cutoff] for cutoff in plan.tuning],
        snapshots[plan.validation],
        [snapshots[cutoff] for cutoff in plan.refit],
        params={"num_threads": settings.ML_TRAINING_THREADS},
    )
    return TrainedRun(options, plan, snapshots, result, stride)


def train_model(options: TrainingOptions) -> ModelVersion:
    """Train a new version on data up to `options.as_of`, register it, and activate it if asked and earned."""
    run = train_run(options)
    version = register(run)
    if options.activate:
        activate_version(version, force=options.force)
    return version


def _fairness(validation: Snapshot, result: TrainingResult, as_of: datetime) -> dict:
    people = sensitive_attributes(validation.features.index.tolist())
    if people.empty or not (
        people["gender"].ne("").any() or people["country"].ne("").any() or people["birth_date"].notna().any()
    ):
        return {}
    frame = pd.DataFrame(
        {"label": validation.labels, "probability": result.validation_probability}, index=validation.features.index
    ).join(people)
    frame["age_band"] = age_band(frame["birth_date"], as_of.date())
    return fairness_report(
        frame[["label", "probability", "gender", "age_band", "country"]].fillna(""),
        threshold=settings.ML_FAIRNESS_THRESHOLD,
        min_group_size=settings.ML_FAIRNESS_MIN_GROUP,
    )


def register(run: TrainedRun) -> ModelVersion:
    """Store a trained run as the task's next version, with its metrics, fairness report and model card."""
    options, result, plan = run.options, run.result, run.plan
    fairness = _fairness(run.validation, result, options.as_of)
    buying = run.validation.buying
    with transaction.atomic():
        # Lock the task's versions (an aggregate cannot take FOR UPDATE) so two trainings number apart.
        taken = (
            ModelVersion.objects.select_for_update().filter(task=PURCHASE_PROPENSITY).values_list("version", flat=True)
        )
        number = max(taken, default=0) + 1
        params = {
            "lightgbm": {key: value for key, value in result.params.items() if key != "num_threads"},
            "best_iteration": result.best_iteration,
            "half_life_days": result.half_life_days,
            "calibration": list(result.calibration) if result.calibration else None,
            "bgnbd": buying.as_dict() if buying is not None else None,
            "sample_stride": run.stride,
            "refit_cutoffs": [cutoff.isoformat() for cutoff in plan.refit],
        }
        metrics = result.metrics | {"importance": [[name, round(gain, 3)] for name, gain in result.importance]}
        card = model_card(
            {
                "version": number,
                "horizon_days": options.horizon_days,
                "as_of": options.as_of,
                "validation_cutoff": plan.validation,
                "refit_cutoffs": plan.refit,
                "feature_names": FEATURE_NAMES,
                "metrics": metrics,
                "fairness": fairness,
                "beats_baselines": result.beats_baselines,
                "best_iteration": result.best_iteration,
                "importance": result.importance,
                "bgnbd": params["bgnbd"],
                "half_life_days": result.half_life_days,
            }
        )
        return ModelVersion.objects.create(
            task=PURCHASE_PROPENSITY,
            version=number,
            horizon_days=options.horizon_days,
            as_of=options.as_of,
            training_from=plan.refit[0],
            training_to=plan.validation,
            feature_names=list(FEATURE_NAMES),
            params=params,
            metrics=metrics,
            fairness=fairness,
            beats_baselines=result.beats_baselines,
            artifact=ensemble_artifact(result.boosters),
            card=card,
        )


def activate_version(version: ModelVersion, force: bool = False) -> ModelVersion:
    """Make `version` the one scores are read from; the previous active version is retired, not deleted."""
    if version.status == ModelStatus.ACTIVE:
        return version
    if not force and not version.beats_baselines:
        raise ActivationRefused(
            f"{version} does not beat every baseline on the validation snapshot ({_versus(version.metrics)}); "
            "activate it with force to override"
        )
    with transaction.atomic():
        ModelVersion.objects.select_for_update().filter(task=version.task).exclude(pk=version.pk).filter(
            status=ModelStatus.ACTIVE
        ).update(status=ModelStatus.RETIRED)
        version.status, version.activated_at = ModelStatus.ACTIVE, timezone.now()
        version.save(update_fields=["status", "activated_at"])
    return version


def _versus(metrics: dict) -> str:
    """Return "ROC AUC 0.8 vs recency 0.7, logistic 0.75, BG/NBD 0.78; log loss …" for the metrics present."""
    names = [name for name in BASELINES if name in metrics]
    return "; ".join(
        f"{label} {metrics['model'].get(key)} vs "
        + ", ".join(f"{BASELINE_LABELS[name]} {metrics[name].get(key)}" for name in names)
        for key, label in (("roc_auc", "ROC AUC"), ("log_loss", "log loss"))
    )


def roll_back(task: str = PURCHASE_PROPENSITY) -> ModelVersion:
    """Re-activate the version that was active before the current one; its stored scores apply at once."""
    current = ModelVersion.objects.active(task).first()
    previous = (
        ModelVersion.objects.filter(task=task, status=ModelStatus.RETIRED, activated_at__isnull=False)
        .exclude(pk=getattr(current, "pk", None))
        .order_by("-activated_at")
        .first()
    )
    if previous is None:
        raise ActivationRefused(f"no earlier active version of {task} to roll back to")
    return activate_version(previous, force=True)


_scorers: dict[tuple[int, int], Scorer] = {}
_scorers_lock = threading.Lock()


def scorer_for(version: ModelVersion) -> Scorer:
    """Return the version's loaded model, loading it once per process, after checking today's features."""
    try:
        check_feature_names(FEATURE_NAMES, version.feature_names)
    except FeatureMismatch as error:
        raise FeatureMismatch(f"{version} was trained on other features than this code builds: {error}") from None
    key = (version.pk, len(version.artifact))
    with _scorers_lock:
        if key not in _scorers:
            buying = version.params.get("bgnbd")
            _scorers[key] = Scorer(
                version.artifact,
                version.feature_names,
                version.params.get("calibration"),
                threads=settings.ML_SCORING_THREADS,
                buying=BgNbd.from_dict(buying) if buying else None,
                horizon_days=version.horizon_days,
            )
        return _scorers[key]
