"""Fairness report of a scored population: how a campaign would treat each gender, age band and country.

Two selections are judged. "Top share" takes the highest-scored part of the whole population, as a
"send to the top decile" campaign does; "threshold" takes everyone scored at or above a probability,
as a "model score" segment rule does. For every group the report shows, from fairlearn's
`MetricFrame`, how many the selection picks next to how many actually bought, the true-positive
rate (the share of the group's actual buyers it reaches) and calibration (the group's mean predicted
probability against its observed buy rate).

Groups buy at different rates, so different selection rates alone say little: a group that buys
less is rightly selected less. A warning is raised only where the model's treatment differs beyond
what the groups' real buying explains: when a group's buyers are reached at less than four fifths
of the rate of the best-served group's buyers, or when the model's probabilities are off within a
group (beyond how far off they are for everyone, which retraining fixes, not a per-group look),
and in both cases beyond chance. Groups too small to judge are shown, never warned about.
"""

import math
from datetime import date
from fractions import Fraction
from typing import Any

import numpy as np
import pandas as pd
from fairlearn.metrics import MetricFrame, count, mean_prediction, selection_rate, true_positive_rate

SENSITIVE_ATTRIBUTES = ("gender", "age_band", "country")
FOUR_FIFTHS = Fraction(4, 5)
DECIMALS = 6
AGE_BAND_STARTS_YEARS = (18, 25, 35, 45, 55, 65)
AGE_BAND_NAMES = ("under 18", "18-24", "25-34", "35-44", "45-54", "55-64", "65+")
# Differences must also be beyond chance: groups and attributes are many, so at 99% confidence.
SIGNIFICANCE_Z = 2.58
# A group is miscalibrated when its observed buy rate is off what the model predicts for it (scaled by
# how far off the model is for everyone) by this share, and beyond chance.
CALIBRATION_TOLERANCE = 0.25
SELECTION_LABELS = {"top_share": "the top {share} selection", "threshold": "the threshold selection (at least {threshold})"}


def age_band(birth_dates: pd.Series, as_of: date) -> pd.Series:
    """Return the age band of each birth date on ``as_of``, or "" when the date is unknown."""
    born = pd.to_datetime(birth_dates, errors="coerce")
    birthday_to_come = (born.dt.month > as_of.month) | ((born.dt.month == as_of.month) & (born.dt.day > as_of.day))
    ages = (as_of.year - born.dt.year - birthday_to_come.astype(int)).to_numpy(dtype=float)
    # A birth date after as_of is a data error, not a newborn, so it counts as unknown.
    known = np.isfinite(ages) & (ages >= 0)
    bands = np.array(AGE_BAND_NAMES, dtype=object)[np.digitize(np.where(known, ages, 0), AGE_BAND_STARTS_YEARS)]
    return pd.Series(np.where(known, bands, ""), index=birth_dates.index, name="age_band", dtype=object)


def observed_rate(y_true, y_pred) -> float:
    """Return the share of customers who bought (fairlearn metric signature; the prediction is unused)."""
    return float(np.mean(y_true)) if len(y_true) else float("nan")


def fairness_report(
    frame: pd.DataFrame,
    threshold: float,
    top_share: float = 0.1,
    min_group_size: int = 30,
    min_group_positives: int = 10,
) -> dict[str, Any]:
    """Return every group's selection, buying, true-positive rate and calibration, and the warnings that matter."""
    labels, probabilities = _check_frame(frame, top_share)
    # A stable sort keeps tied customers in frame order, so the same scores always select the same people;
    # rounding before the ceiling stops float error (100 * 0.07 = 7.000000000000001) from selecting one extra.
    top_rows = np.argsort(-probabilities, kind="stable")[: math.ceil(round(len(frame) * top_share, 9))]
    top_selected = np.zeros(len(frame), dtype=int)
    top_selected[top_rows] = 1
    selections = {"top_share": top_selected, "threshold": (probabilities >= threshold).astype(int)}
    names = {
        "top_share": SELECTION_LABELS["top_share"].format(share=f"{round(top_share * 100, 4):g}%"),
        "threshold": SELECTION_LABELS["threshold"].format(threshold=f"{threshold:g}"),
    }

    attributes, warnings = {}, []
    for attribute in SENSITIVE_ATTRIBUTES:
        values = frame[attribute].fillna("").astype(str).to_numpy(dtype=object)
        known = values != ""
        summary: dict[str, Any] = {"groups": [], "unknown": int((~known).sum())}
        if known.sum():
            groups = _describe_groups(labels[known], probabilities[known], values[known], selections, known)
            for group in groups:
                group["small"] = group["customers"] < min_group_size or group["positives"] < min_group_positives
            summary["groups"] = groups
            for selection in selections:
                ratio, flagged = _tpr_gaps(groups, selection)
                summary[f"tpr_ratio_{selection}"] = _rounded(ratio)
                warnings += [_tpr_warning(attribute, groups[i], groups[best], selection, names[selection]) for i, best in flagged]
            overall = _overall_ratio(labels, probabilities)
            warnings += [
                _calibration_warning(attribute, group, overall) for group in groups if _miscalibrated(group, overall)
            ]
        attributes[attribute] = summary

    return {
        "threshold": float(threshold),
        "top_share": float(top_share),
        "customers": len(frame),
        "attributes": attributes,
        "warnings": warnings,
    }


def _describe_groups(
    labels: np.ndarray, probabilities: np.ndarray, values: np.ndarray, selections: dict[str, np.ndarray], known
) -> list[dict[str, Any]]:
    """Return one row per group: sizes, buy rate, mean prediction, and each selection's rate and true-positive rate."""
    scores = MetricFrame(
        metrics={"customers": count, "observed_rate": observed_rate, "mean_predicted": mean_prediction},
        y_true=labels,
        y_pred=probabilities,
        sensitive_features=pd.Series(values, name="group"),
    ).by_group
    columns = {}
    for selection, chosen in selections.items():
        picked = MetricFrame(
            metrics={"selected": selection_rate, "tpr": true_positive_rate},
            y_true=labels,
            y_pred=chosen[known],
            sensitive_features=pd.Series(values, name="group"),
        ).by_group
        columns[selection] = picked
    groups = []
    for name in sorted(scores.index):
        customers = int(scores.loc[name, "customers"])
        observed = float(scores.loc[name, "observed_rate"])
        positives = int(round(observed * customers))
        group: dict[str, Any] = {
            "group": str(name),
            "customers": customers,
            "positives": positives,
            "observed_rate": _rounded(observed),
            "mean_predicted": _rounded(float(scores.loc[name, "mean_predicted"])),
        }
        for selection, picked in columns.items():
            group[f"selected_{selection}"] = _rounded(float(picked.loc[name, "selected"]))
        for selection, picked in columns.items():
            tpr = float(picked.loc[name, "tpr"]) if positives else None
            group[f"tpr_{selection}"] = _rounded(tpr)
            group[f"reached_{selection}"] = int(round(tpr * positives)) if positives else 0
        groups.append(group)
    return groups


def _tpr_gaps(groups: list[dict[str, Any]], selection: str) -> tuple[float | None, list[tuple[int, int]]]:
    """Return the lowest-to-highest true-positive-rate ratio among judgeable groups, and the pairs below 4/5."""
    # Exact fractions of buyers reached, so a group at exactly four fifths is never flagged by float error.
    rates = {
        i: Fraction(group[f"reached_{selection}"], group["positives"])
        for i, group in enumerate(groups)
        if not group["small"] and group["positives"]
    }
    if len(rates) < 2:
        return None, []
    best = max(rates, key=rates.get)
    if rates[best] == 0:
        return None, []
    ratios = {i: rate / rates[best] for i, rate in rates.items()}
    flagged = [
        (i, best)
        for i, ratio in ratios.items()
        if ratio < FOUR_FIFTHS and _beyond_chance(groups[i], groups[best], selection)
    ]
    return float(min(ratios.values())), flagged


def _beyond_chance(group: dict[str, Any], best: dict[str, Any], selection: str) -> bool:
    """Tell whether two groups' true-positive rates differ beyond chance (a two-proportion z-test)."""
    reached, buyers = group[f"reached_{selection}"], group["positives"]
    top_reached, top_buyers = best[f"reached_{selection}"], best["positives"]
    pooled = (reached + top_reached) / (buyers + top_buyers)
    if pooled in (0, 1):
        return False
    standard_error = math.sqrt(pooled * (1 - pooled) * (1 / buyers + 1 / top_buyers))
    return (top_reached / top_buyers - reached / buyers) / standard_error > SIGNIFICANCE_Z


def _overall_ratio(labels: np.ndarray, probabilities: np.ndarray) -> float:
    """Return how many more (or fewer) bought than predicted, over everyone: 1.0 for a calibrated model."""
    predicted = float(probabilities.mean())
    return float(labels.mean()) / predicted if predicted > 0 else 1.0


def _miscalibrated(group: dict[str, Any], overall: float) -> bool:
    """Tell whether a group's buying is off the model's prediction for it, beyond the model's error for everyone."""
    if group["small"] or group["mean_predicted"] <= 0:
        return False
    expected = min(group["mean_predicted"] * overall, 1.0)
    if expected in (0.0, 1.0):
        return False
    standard_error = math.sqrt(expected * (1 - expected) / group["customers"])
    gap = abs(group["observed_rate"] - expected)
    return gap > SIGNIFICANCE_Z * standard_error and gap > CALIBRATION_TOLERANCE * expected


def _label(attribute: str, group: dict[str, Any]) -> str:
    return f"{attribute.replace('_', ' ').capitalize()} {group['group']!r}"


def _tpr_warning(attribute: str, group: dict, best: dict, selection: str, described: str) -> str:
    key = f"tpr_{selection}"
    ratio = group[key] / best[key]
    return (
        f"{_label(attribute, group)}: of its customers who went on to buy, {described} reaches {group[key]:.1%}, "
        f"{ratio:.2f} of the rate for {best['group']!r} ({best[key]:.1%}), while the two groups bought at "
        f"{group['observed_rate']:.1%} and {best['observed_rate']:.1%}. What it means: a campaign sent this way "
        "misses this group's real buyers more often than the other group's, beyond what their buying explains. "
        "Consider: a lower threshold or a wider top share for this campaign, and check which features score this "
        "group's buyers lower (a shorter history, fewer tracked visits) before relying on the model for it."
    )


def _calibration_warning(attribute: str, group: dict, overall: float) -> str:
    direction = "overstate" if group["mean_predicted"] * overall > group["observed_rate"] else "understate"
    across = "" if abs(overall - 1) < 0.05 else f", where for all customers {overall:.2f}× the prediction bought"
    return (
        f"{_label(attribute, group)}: the model predicts {group['mean_predicted']:.1%} will buy and "
        f"{group['observed_rate']:.1%} did ({group['customers']:,} customers){across}. What it means: its "
        f"probabilities {direction} this group's buying, so a fixed threshold selects "
        f"{'more' if direction == 'overstate' else 'fewer'} of them than their buying warrants. Consider: selecting by "
        "decile rather than by a fixed probability, and retraining once the group has more history."
    )


def _check_frame(frame: pd.DataFrame, top_share: float) -> tuple[np.ndarray, np.ndarray]:
    """Return labels and probabilities of ``frame``, or raise ValueError when it cannot be reported on."""
    missing = sorted({"label", "probability", *SENSITIVE_ATTRIBUTES} - set(frame.columns))
    if missing:
        raise ValueError(f"the frame lacks the column(s) {', '.join(missing)}")
    if frame.empty:
        raise ValueError("the frame has no customers to report on")
    if not 0 < top_share <= 1:
        raise ValueError(f"top_share must be above 0 and at most 1, not {top_share}")
    labels = frame["label"].to_numpy(dtype=float)
    if not np.isin(labels, (0.0, 1.0)).all():
        raise ValueError("label must hold only 0 and 1")
    probabilities = frame["probability"].to_numpy(dtype=float)
    if not np.isfinite(probabilities).all():
        raise ValueError("probability must be known for every customer")
    return labels.astype(int), probabilities


def _rounded(value: float | Fraction | None) -> float | None:
    """Return ``value`` as a plain float with the stored precision, keeping None."""
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else round(float(value), DECIMALS)
