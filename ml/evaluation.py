"""Metrics of a binary probability model, as plain JSON-ready numbers for the model registry and the admin.

Every function takes the outcomes ``y`` (0 or 1) and the predicted probabilities ``p`` of the same customers.
Rankings break ties stably, by the customers' original order, so the same scores always give the same numbers.
"""

from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from sklearn import metrics

LOG_LOSS_CLIP = 1e-15
TOP_SHARE_DENOMINATOR = 10
DECIMALS = 6
# The metrics shown wherever a model meets its baselines: key, label, which way is better.
METRIC_LABELS = (
    ("roc_auc", "ROC AUC", "higher"),
    ("pr_auc", "PR AUC", "higher"),
    ("log_loss", "Log loss", "lower"),
    ("brier", "Brier score", "lower"),
    ("top_decile_lift", "Top-decile lift", "higher"),
    ("ece", "Calibration error", "lower"),
)


def _check_outcomes(y: ArrayLike, p: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Return ``y`` and ``p`` as flat arrays, or raise ValueError on mismatched or impossible values."""
    outcomes = np.asarray(y, dtype=float).ravel()
    probabilities = np.asarray(p, dtype=float).ravel()
    if outcomes.size != probabilities.size:
        raise ValueError(
            f"y has {outcomes.size} values but p has {probabilities.size}; they must describe the same customers"
        )
    if outcomes.size == 0:
        raise ValueError("y and p are empty; there is nothing to evaluate")
    if not np.isin(outcomes, (0.0, 1.0)).all():
        raise ValueError("y must hold only 0 and 1")
    if not (np.isfinite(probabilities).all() and ((probabilities >= 0) & (probabilities <= 1)).all()):
        raise ValueError("p must hold probabilities between 0 and 1")
    return outcomes.astype(int), probabilities


def _check_both_classes(outcomes: np.ndarray) -> None:
    """Raise ValueError when the outcomes hold a single class, which leaves ranking metrics undefined."""
    positives = int(outcomes.sum())
    if positives in (0, outcomes.size):
        only = "positives (1)" if positives else "negatives (0)"
        raise ValueError(f"y holds only {only}; ROC AUC and the other ranking metrics need both classes")


def _rank_descending(p: np.ndarray) -> np.ndarray:
    """Return the row order from the highest probability to the lowest, ties in original order."""
    return np.argsort(-p, kind="stable")


def roc_auc(y: ArrayLike, p: ArrayLike) -> float:
    """Return the area under the ROC curve."""
    outcomes, probabilities = _check_outcomes(y, p)
    _check_both_classes(outcomes)
    return float(metrics.roc_auc_score(outcomes, probabilities))


def pr_auc(y: ArrayLike, p: ArrayLike) -> float:
    """Return the area under the precision-recall curve, as average precision."""
    outcomes, probabilities = _check_outcomes(y, p)
    _check_both_classes(outcomes)
    return float(metrics.average_precision_score(outcomes, probabilities))


def log_loss(y: ArrayLike, p: ArrayLike) -> float:
    """Return the mean negative log-likelihood of the outcomes."""
    outcomes, probabilities = _check_outcomes(y, p)
    # A confident wrong 0 or 1 would otherwise make the loss infinite and swamp every other customer.
    clipped = np.clip(probabilities, LOG_LOSS_CLIP, 1 - LOG_LOSS_CLIP)
    return float(-np.mean(outcomes * np.log(clipped) + (1 - outcomes) * np.log(1 - clipped)))


def brier(y: ArrayLike, p: ArrayLike) -> float:
    """Return the mean squared difference between probability and outcome."""
    outcomes, probabilities = _check_outcomes(y, p)
    return float(np.mean((probabilities - outcomes) ** 2))


def top_decile_lift(y: ArrayLike, p: ArrayLike) -> float:
    """Return the positive rate of the top tenth by probability divided by the overall positive rate."""
    outcomes, probabilities = _check_outcomes(y, p)
    if not outcomes.any():
        return 0.0
    top = -(-outcomes.size // TOP_SHARE_DENOMINATOR)
    chosen = outcomes[_rank_descending(probabilities)[:top]]
    return float(chosen.mean() / outcomes.mean())


def _quantile_bins(p: np.ndarray, bins: int) -> list[np.ndarray]:
    """Split row indices into at most ``bins`` non-empty groups of rising probability and near-equal size."""
    if bins < 1:
        raise ValueError(f"bins must be at least 1, not {bins}")
    order = np.argsort(p, kind="stable")
    ranked = p[order]
    groups, start = [], 0
    for edge in range(1, bins + 1):
        stop = max(start, edge * ranked.size // bins)
        # Equal probabilities must share a bin, or the table would claim two bins for one score.
        if 0 < stop < ranked.size:
            stop = int(np.searchsorted(ranked, ranked[stop - 1], side="right"))
        if stop > start:
            groups.append(order[start:stop])
            start = stop
    return groups


def calibration_table(y: ArrayLike, p: ArrayLike, bins: int = 10) -> list[dict[str, Any]]:
    """Return the mean prediction and observed rate of each quantile bin of probability."""
    outcomes, probabilities = _check_outcomes(y, p)
    table = []
    for number, rows in enumerate(_quantile_bins(probabilities, bins), start=1):
        table.append(
            {
                "bin": number,
                "lower": _rounded(probabilities[rows].min()),
                "upper": _rounded(probabilities[rows].max()),
                "customers": int(rows.size),
                "mean_predicted": _rounded(probabilities[rows].mean()),
                "observed_rate": _rounded(outcomes[rows].mean()),
            }
        )
    return table


def expected_calibration_error(y: ArrayLike, p: ArrayLike, bins: int = 10) -> float:
    """Return the customer-weighted mean gap between predicted and observed rates over quantile bins."""
    outcomes, probabilities = _check_outcomes(y, p)
    gaps = [
        rows.size * abs(probabilities[rows].mean() - outcomes[rows].mean())
        for rows in _quantile_bins(probabilities, bins)
    ]
    return float(sum(gaps) / outcomes.size)


def roc_points(y: ArrayLike, p: ArrayLike, max_points: int = 50) -> list[list[float]]:
    """Return [false positive rate, true positive rate] pairs from [0, 0] to [1, 1]."""
    if max_points < 2:
        raise ValueError(f"max_points must be at least 2 to keep both ends of the curve, not {max_points}")
    outcomes, probabilities = _check_outcomes(y, p)
    _check_both_classes(outcomes)
    fpr, tpr, _ = metrics.roc_curve(outcomes, probabilities)
    # Evenly spaced indices always include the first and last point, so the curve still spans the square.
    kept = np.unique(np.linspace(0, fpr.size - 1, min(max_points, fpr.size)).round().astype(int))
    return [[_rounded(fpr[i]), _rounded(tpr[i])] for i in kept]


def gains_points(y: ArrayLike, p: ArrayLike, points: int = 20) -> list[list[float]]:
    """Return [share of customers targeted, share of positives captured] at ``points`` equal steps."""
    if points < 1:
        raise ValueError(f"points must be at least 1, not {points}")
    outcomes, probabilities = _check_outcomes(y, p)
    if not outcomes.any():
        raise ValueError("y holds no positives (1); there is nothing for the gains curve to capture")
    captured = np.concatenate([[0], np.cumsum(outcomes[_rank_descending(probabilities)])])
    # Each step targets whole customers, rounding up like the top decile; tiny populations repeat steps.
    targeted = sorted({-(-step * outcomes.size // points) for step in range(points + 1)})
    return [[_rounded(k / outcomes.size), _rounded(captured[k] / captured[-1])] for k in targeted]


def evaluate(y: ArrayLike, p: ArrayLike) -> dict[str, Any]:
    """Return every metric, the calibration table and the chart points of one model on one population."""
    outcomes, probabilities = _check_outcomes(y, p)
    _check_both_classes(outcomes)
    return {
        "customers": int(outcomes.size),
        "positives": int(outcomes.sum()),
        "base_rate": _rounded(outcomes.mean()),
        "roc_auc": _rounded(roc_auc(outcomes, probabilities)),
        "pr_auc": _rounded(pr_auc(outcomes, probabilities)),
        "log_loss": _rounded(log_loss(outcomes, probabilities)),
        "brier": _rounded(brier(outcomes, probabilities)),
        "top_decile_lift": _rounded(top_decile_lift(outcomes, probabilities)),
        "ece": _rounded(expected_calibration_error(outcomes, probabilities)),
        "calibration": calibration_table(outcomes, probabilities),
        "roc": roc_points(outcomes, probabilities),
        "gains": gains_points(outcomes, probabilities),
    }


def _rounded(value: float) -> float:
    """Return ``value`` as a plain float with the stored precision."""
    return round(float(value), DECIMALS)


TABLE_COLUMNS = (("model", "model"), ("recency", "recency"), ("logistic", "logistic"), ("bgnbd", "BG/NBD"))


def metrics_table(metrics: dict[str, Any]) -> list[str]:
    """Return the model and its baselines side by side, one metric per line, as plain text."""
    columns = [(key, label) for key, label in TABLE_COLUMNS if key in metrics]
    lines = [f"{'':<18}" + "".join(f"{label:>10}" for _, label in columns)]
    for key, label, _ in METRIC_LABELS:
        lines.append(f"{label:<18}" + "".join(f"{metrics[name][key]:>10.4f}" for name, _ in columns))
    return lines
