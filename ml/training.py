"""Train a purchase-propensity model on rolling snapshots and judge it against three baselines.

Pure: snapshots arrive as feature frames with labels, results leave as a dataclass holding the
booster and plain-data metrics. A snapshot's label is "placed an order within H days after its
cutoff". Three sets of snapshots, from one plan (`plan_snapshots`):

- the validation snapshot is the most recent one whose label window is complete (as_of − H);
- tuning snapshots are older still, and their label windows end before the validation cutoff, so
  no label they teach overlaps the period the model is judged on; every candidate configuration,
  how fast older snapshots lose weight, and the number of trees are chosen on the validation
  snapshot (lowest log loss);
- the shipped model is then refitted, with the chosen configuration, on every complete snapshot:
  the tuning ones, those between them and the validation cutoff, and the validation one, so that it
  learns from the freshest outcomes the shop has. The figures reported stay the honest validation
  ones of the chosen configuration; `ml.backtest` judges the shipped model itself, out of time.

The baselines, judged on the same validation snapshot: a recency rank, a logistic regression on
the same features, and the BG/NBD model of repeat buying (`ml.bgnbd`), whose P(order within H) is
also one of the features.
"""

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from ml.bgnbd import BgNbd
from ml.evaluation import evaluate, gains_points, pr_auc, roc_auc, roc_points, top_decile_lift
from ml.features import FEATURE_NAMES

DEFAULT_PARAMS: dict[str, Any] = {
    "objective": "binary",
    # 0.1 reaches the same validation loss as 0.05 with about half the trees (measured on the
    # demo and benchmark stores), and every tree costs time in the on-demand explanations.
    "learning_rate": 0.1,
    # Shallow trees: explanations (pred_contrib) cost grows with leaves times depth squared.
    "num_leaves": 15,
    "max_depth": 5,
    "min_data_in_leaf": 100,
    "feature_fraction": 0.8,
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
    "lambda_l2": 1.0,
    "max_bin": 63,
    "verbose": -1,
    "seed": 7,
    "deterministic": True,
    "force_row_wise": True,
}
# Configurations tried on the validation snapshot, each over DEFAULT_PARAMS: the default, smaller
# and slower trees for small or noisy shops, and stronger regularisation for large ones.
CANDIDATE_PARAMS: tuple[dict[str, Any], ...] = (
    {},
    {"learning_rate": 0.05, "num_leaves": 7, "max_depth": 3, "min_data_in_leaf": 200},
    {"min_data_in_leaf": 400, "lambda_l2": 10.0},
    # Randomised split points: smoother scores, which rank better where buying drifts between snapshots.
    {"extra_trees": True},
)
# Each configuration is tried with every snapshot weighing the same, and with older snapshots weighing
# half as much every this many days: shops' buying drifts, and the validation snapshot says how fast.
HALF_LIVES_DAYS: tuple[int | None, ...] = (None, 90)
# Configurations are compared on at most this many tuning rows (every k-th row past it); the shipped
# model is refitted on all of them.
TUNING_MAX_ROWS = 200_000
# The chosen configuration is trained this many times with other seeds and the raw scores averaged:
# bagging and column sampling make each booster a little different, and their average ranks and
# calibrates better than any one of them (measured on the demo stores, where one booster's log loss
# lost to the logistic baseline's by 0.001 and three boosters' beat it).
ENSEMBLE_SEEDS = (7, 11, 13)
MAX_BOOST_ROUNDS = 1000
# A drift correction rescales the raw score a little; a slope outside this range means the ranking
# itself does not hold on the validation snapshot, which a calibration must not paper over.
PLATT_SLOPES = (0.5, 2.0)
EARLY_STOPPING_ROUNDS = 30
BASELINES = ("recency", "logistic", "bgnbd")
LOGISTIC_MAX_ROWS = 200_000
# The metrics on which the model must beat every baseline to be activated without force.
ACTIVATION_METRICS = (("roc_auc", "higher"), ("log_loss", "lower"))


@dataclass(frozen=True)
class Snapshot:
    cutoff: datetime
    features: pd.DataFrame  # index customer_id, columns FEATURE_NAMES
    labels: np.ndarray  # 1 = ordered within the horizon after the cutoff
    buying: BgNbd | None = None  # the BG/NBD fitted on the snapshot's histories, behind its buying features
    season: float = 1.0  # its season index (ml.features)

    @property
    def positives(self) -> int:
        return int(self.labels.sum())


@dataclass(frozen=True)
class SnapshotPlan:
    tuning: list[datetime]  # oldest first; labels end by the validation cutoff
    validation: datetime
    refit: list[datetime]  # oldest first: every complete snapshot, the tuning and validation ones included

    @property
    def cutoffs(self) -> list[datetime]:
        """Every cutoff to read, oldest first, each once."""
        return sorted({*self.tuning, *self.refit, self.validation})


@dataclass(frozen=True)
class DataFacts:
    """What the store's history offers, measured before any training."""

    buyers: int  # customers with a kept order before as_of
    history_days: float  # from the first kept order to as_of
    recent_orders: int  # kept orders within `recent_days` before as_of
    recent_days: int


@dataclass(frozen=True)
class Minimums:
    buyers: int
    history_days: int
    recent_orders: int


@dataclass
class FittedBaselines:
    """The recency and logistic baselines as fitted on some snapshots, to judge them elsewhere (backtests)."""

    recency: IsotonicRegression
    logistic: Pipeline
    never_bought_rate: float  # what BG/NBD cannot say of customers without an order: their observed buy rate

    def predict(self, snapshot: Snapshot) -> dict[str, np.ndarray]:
        """Return each baseline's probabilities for the snapshot's customers."""
        features = snapshot.features
        return {
            "recency": self.recency.predict(features["days_since_last_order"].to_numpy()),
            "logistic": self.logistic.predict_proba(features.to_numpy(dtype=np.float64))[:, 1],
            "bgnbd": bgnbd_probability(features, self.never_bought_rate),
        }


@dataclass
class TrainingResult:
    boosters: list[lgb.Booster]  # the shipped model: refitted on every complete snapshot, one booster per seed
    metrics: dict[str, Any]  # "model" and each baseline: evaluation dicts on the validation snapshot; plus notes
    importance: list[tuple[str, float]]
    best_iteration: int
    validation_probability: np.ndarray
    params: dict[str, Any] = field(default_factory=dict)
    half_life_days: int | None = None  # how fast older snapshots lose weight; None when all weigh the same
    calibration: tuple[float, float] | None = None  # Platt slope and intercept on the raw score, or None

    @property
    def beats_baselines(self) -> bool:
        return beats_every_baseline(self.metrics)

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Return the shipped model's probabilities: its boosters' mean raw score, calibrated, through the sigmoid."""
        raw = np.mean([booster.predict(x, raw_score=True) for booster in self.boosters], axis=0)
        if self.calibration is not None:
            slope, intercept = self.calibration
            raw = slope * raw + intercept
        return _sigmoid(raw)


class NotEnoughData(Exception):
    """The store cannot support a model yet; `reasons` names every unmet minimum."""

    def __init__(self, reasons: list[str]):
        self.reasons = reasons
        super().__init__("; ".join(reasons))


def beats_every_baseline(metrics: dict[str, Any]) -> bool:
    """Tell whether the model beats every baseline present on ROC AUC and log loss."""
    model = metrics["model"]
    return all(
        (model[key] > metrics[name][key]) if better == "higher" else (model[key] < metrics[name][key])
        for name in BASELINES
        if name in metrics
        for key, better in ACTIVATION_METRICS
    )


def required_history_days(horizon_days: int, minimum_feature_days: int) -> int:
    """Return the history one tuning snapshot and the validation snapshot need."""
    return 2 * horizon_days + minimum_feature_days


def plan_snapshots(
    as_of: datetime,
    horizon_days: int,
    history_start: datetime,
    step_days: int,
    max_tuning_snapshots: int,
    minimum_feature_days: int,
) -> SnapshotPlan:
    """Return the cutoffs of the tuning snapshots, the validation snapshot and the refit, `step_days` apart."""
    horizon, step = timedelta(days=horizon_days), timedelta(days=step_days)
    validation = as_of - horizon
    earliest = history_start + timedelta(days=minimum_feature_days)
    newest_tuning = validation - horizon
    tuning = [newest_tuning - step * k for k in range(max_tuning_snapshots)]
    between = [validation - step * k for k in range(1, -(-horizon_days // step_days))]
    tuning = sorted(cutoff for cutoff in tuning if cutoff >= earliest)
    between = [cutoff for cutoff in between if cutoff > newest_tuning and cutoff >= earliest]
    return SnapshotPlan(tuning=tuning, validation=validation, refit=sorted({*tuning, *between, validation}))


def unmet_minimums(facts: DataFacts, minimums: Minimums) -> list[str]:
    """Return one sentence per minimum the store's history does not reach."""
    reasons = []
    if facts.buyers < minimums.buyers:
        reasons.append(f"only {facts.buyers} customers have ordered; at least {minimums.buyers} are needed")
    if facts.history_days < minimums.history_days:
        reasons.append(
            f"order history covers {facts.history_days:.0f} days; at least {minimums.history_days} are needed "
            "(two horizons plus the shortest feature history)"
        )
    if facts.recent_orders < minimums.recent_orders:
        reasons.append(
            f"{facts.recent_orders} orders in the last {facts.recent_days} days; at least {minimums.recent_orders} "
            "are needed to trust that the history is current"
        )
    return reasons


def train_propensity(
    tuning: list[Snapshot],
    validation: Snapshot,
    refit: list[Snapshot] | None = None,
    params: dict[str, Any] | None = None,
    candidates: tuple[dict[str, Any], ...] = CANDIDATE_PARAMS,
    half_lives: tuple[int | None, ...] = HALF_LIVES_DAYS,
) -> TrainingResult:
    """Choose a configuration on the validation snapshot, judge it against the baselines, and refit it.

    `refit` defaults to the tuning snapshots plus the validation one. `params` (threads, say) apply
    to every candidate.
    """
    if not tuning:
        raise NotEnoughData(["no training snapshot fits in the history"])
    refit = refit if refit is not None else [*tuning, validation]
    for snapshot in [*tuning, validation, *refit]:
        if list(snapshot.features.columns) != list(FEATURE_NAMES):
            raise ValueError(f"snapshot {snapshot.cutoff:%Y-%m-%d} does not carry the current feature names")
    x_tune, y_tune = _stack(tuning)
    x_valid, y_valid = validation.features.to_numpy(dtype=np.float64), validation.labels
    for name, labels in (("training", y_tune), ("validation", y_valid)):
        if labels.min() == labels.max():
            raise NotEnoughData([f"every {name} label is {int(labels[0])}: nobody (or everybody) bought"])

    every = max(1, -(-len(y_tune) // TUNING_MAX_ROWS))
    ages = _ages(tuning, newest=tuning[-1].cutoff)[::every]
    x_sample, y_sample = x_tune[::every], y_tune[::every]
    tried = [
        _tune({**DEFAULT_PARAMS, **candidate, **(params or {})}, half_life, x_sample, y_sample, ages, x_valid, y_valid)
        for candidate in candidates
        for half_life in half_lives
    ]
    chosen = min(tried, key=lambda trial: trial["log_loss"])
    # The figures shown are the whole configuration's: the same trees, trained with every seed, averaged.
    tuned = _members(chosen, x_sample, y_sample, _weights(ages, chosen["half_life_days"]))
    raw = np.mean([booster.predict(x_valid, raw_score=True) for booster in tuned], axis=0)
    probability, calibration, note = calibrated(raw, y_valid, validation.features.index.to_numpy())
    model = evaluate(y_valid, probability)
    metrics = {
        "model": model,
        **judge_baselines(fit_baselines(tuning), validation),
        "calibration_note": note,
        "tuning": [
            {
                "params": _shown(trial["params"]),
                "half_life_days": trial["half_life_days"],
                "trees": trial["trees"],
                "log_loss": round(trial["log_loss"], 6),
            }
            for trial in tried
        ],
        "snapshots": [
            {"cutoff": s.cutoff.isoformat(), "customers": len(s.labels), "positives": s.positives, "role": role}
            for s, role in [*[(s, "training") for s in tuning], (validation, "validation")]
        ],
        "refit": [
            {"cutoff": s.cutoff.isoformat(), "customers": len(s.labels), "positives": s.positives} for s in refit
        ],
    }

    del x_tune, x_sample, tuned
    x_refit, y_refit = _stack(refit)
    shipped = _members(chosen, x_refit, y_refit, _weights(_ages(refit, newest=refit[-1].cutoff), chosen["half_life_days"]))
    gains = np.sum([booster.feature_importance("gain") for booster in shipped], axis=0)
    importance = sorted(zip(FEATURE_NAMES, (float(g) for g in gains), strict=True), key=lambda item: -item[1])
    return TrainingResult(
        boosters=shipped,
        metrics=metrics,
        importance=importance,
        best_iteration=chosen["trees"],
        validation_probability=probability,
        params=chosen["params"],
        half_life_days=chosen["half_life_days"],
        calibration=calibration,
    )


def _stack(snapshots: list[Snapshot]) -> tuple[np.ndarray, np.ndarray]:
    features = pd.concat([snapshot.features for snapshot in snapshots]).to_numpy(dtype=np.float64)
    return features, np.concatenate([snapshot.labels for snapshot in snapshots])


def _ages(snapshots: list[Snapshot], newest: datetime) -> np.ndarray:
    """Return, for every row of the stacked snapshots, its snapshot's age in days before `newest`."""
    return np.concatenate([np.full(len(s.labels), (newest - s.cutoff).total_seconds() / 86_400) for s in snapshots])


def _weights(ages: np.ndarray, half_life_days: int | None) -> np.ndarray | None:
    return None if half_life_days is None else 0.5 ** (ages / half_life_days)


def _members(chosen: dict[str, Any], x: np.ndarray, y: np.ndarray, weights: np.ndarray | None) -> list[lgb.Booster]:
    """Train the chosen configuration once per seed, with its number of trees."""
    return [
        lgb.train(
            {**chosen["params"], "seed": seed},
            lgb.Dataset(x, y, weight=weights, feature_name=list(FEATURE_NAMES), free_raw_data=False),
            num_boost_round=chosen["trees"],
        )
        for seed in ENSEMBLE_SEEDS
    ]


def calibrated(
    raw: np.ndarray, labels: np.ndarray, customer_ids: np.ndarray
) -> tuple[np.ndarray, tuple[float, float] | None, str]:
    """Return the validation probabilities to report, the Platt calibration to ship (if any) and why.

    Buying drifts: a model trained on snapshots ending one horizon before the period it predicts is
    off by about as much as the tuning boosters are off on the validation snapshot, which is the same
    lag the shipped model has before the future it scores. A Platt scaling fitted on the validation
    snapshot corrects that drift, and is kept when it helps. The figures reported for it are
    cross-fitted (each half of the customers scored by a scaling fitted on the other half), never
    fitted on themselves.
    """
    plain = _sigmoid(raw)
    before = evaluate(labels, plain)
    # Alternate customers in id order: id parity would put a whole sample of even ids on one side.
    half = np.argsort(np.argsort(customer_ids, kind="stable")) % 2 == 0
    cross = np.empty_like(plain)
    for fitted_on in (half, ~half):
        if labels[fitted_on].min() == labels[fitted_on].max():
            return plain, None, f"calibration error {before['ece']:.4f}; a half of the validation snapshot has one class"
        slope, intercept = _platt(raw[fitted_on], labels[fitted_on])
        if not PLATT_SLOPES[0] <= slope <= PLATT_SLOPES[1]:
            return plain, None, (
                f"calibration error {before['ece']:.4f}; a Platt slope of {slope:.2f} would not correct drift but "
                "rewrite the model, so none is applied"
            )
        cross[~fitted_on] = _sigmoid(slope * raw[~fitted_on] + intercept)
    after = evaluate(labels, cross)
    if after["log_loss"] >= before["log_loss"]:
        return plain, None, f"calibration error {before['ece']:.4f}; Platt scaling did not lower the log loss"
    return (
        cross,
        _platt(raw, labels),
        f"calibration error {before['ece']:.4f} before Platt scaling for drift, {after['ece']:.4f} after (cross-fitted)",
    )


def _platt(raw: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    fit = LogisticRegression(C=1e6, max_iter=1000).fit(raw.reshape(-1, 1), labels)
    return float(fit.coef_[0, 0]), float(fit.intercept_[0])


def _sigmoid(raw: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-raw))


def _tune(params: dict[str, Any], half_life_days, x_tune, y_tune, ages, x_valid, y_valid) -> dict[str, Any]:
    """Train one configuration with early stopping on the validation snapshot; return its trees and loss."""
    train_set = lgb.Dataset(
        x_tune, y_tune, weight=_weights(ages, half_life_days), feature_name=list(FEATURE_NAMES), free_raw_data=True
    )
    valid_set = lgb.Dataset(x_valid, y_valid, reference=train_set)
    booster = lgb.train(
        params,
        train_set,
        num_boost_round=MAX_BOOST_ROUNDS,
        valid_sets=[valid_set],
        valid_names=["validation"],
        callbacks=[lgb.early_stopping(EARLY_STOPPING_ROUNDS, verbose=False)],
    )
    trees = int(booster.best_iteration or booster.current_iteration())
    probability = booster.predict(x_valid, num_iteration=trees)
    return {
        "params": params,
        "half_life_days": half_life_days,
        "trees": trees,
        "probability": probability,
        "log_loss": evaluate(y_valid, probability)["log_loss"],
    }


def _shown(params: dict[str, Any]) -> dict[str, Any]:
    """Return the parameters that tell configurations apart, for the record."""
    keys = ("learning_rate", "num_leaves", "max_depth", "min_data_in_leaf", "lambda_l2", "extra_trees")
    return {key: params[key] for key in keys if key in params}


def fit_baselines(snapshots: list[Snapshot]) -> FittedBaselines:
    """Fit the recency mapping, the logistic regression and the never-bought rate on these snapshots."""
    days = pd.concat([s.features["days_since_last_order"] for s in snapshots]).to_numpy()
    x, y = _stack(snapshots)
    recency = IsotonicRegression(increasing=False, out_of_bounds="clip", y_min=1e-4, y_max=1 - 1e-4).fit(days, y)
    logistic = make_pipeline(FunctionTransformer(signed_log1p), StandardScaler(), LogisticRegression(max_iter=1000))
    # Forty-odd coefficients are settled long before a million rows: every k-th row keeps the fit's cost bounded.
    every = max(1, -(-len(y) // LOGISTIC_MAX_ROWS))
    logistic.fit(x[::every], y[::every])
    never = pd.concat([s.features["orders_total"] for s in snapshots]).to_numpy() == 0
    rate = float(y[never].mean()) if never.any() else float(y.mean())
    return FittedBaselines(recency=recency, logistic=logistic, never_bought_rate=min(max(rate, 1e-4), 1 - 1e-4))


def bgnbd_probability(features: pd.DataFrame, never_bought_rate: float) -> np.ndarray:
    """Return BG/NBD's P(an order within the horizon) for buyers; the observed rate for customers who never bought."""
    bought = features["orders_total"].to_numpy() > 0
    return np.clip(np.where(bought, features["bgnbd_p_order"].to_numpy(), never_bought_rate), 1e-6, 1 - 1e-6)


def judge_baselines(baselines: FittedBaselines, snapshot: Snapshot) -> dict[str, dict[str, Any]]:
    """Return every baseline's evaluation on the snapshot; recency's ranking figures come from the rank itself."""
    predicted = baselines.predict(snapshot)
    judged = {name: evaluate(snapshot.labels, probability) for name, probability in predicted.items()}
    # Sooner = higher, squeezed into 0..1: the isotonic mapping's flat steps would only add ties.
    rank = 1.0 / (1.0 + snapshot.features["days_since_last_order"].to_numpy())
    judged["recency"] |= {
        "roc_auc": round(roc_auc(snapshot.labels, rank), 6),
        "pr_auc": round(pr_auc(snapshot.labels, rank), 6),
        "top_decile_lift": round(top_decile_lift(snapshot.labels, rank), 6),
        "roc": roc_points(snapshot.labels, rank),
        "gains": gains_points(snapshot.labels, rank),
    }
    return judged


def signed_log1p(values: np.ndarray) -> np.ndarray:
    """Compress counts and amounts so a linear model is not ruled by the largest spenders."""
    return np.sign(values) * np.log1p(np.abs(values))
