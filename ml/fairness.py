"""Fairness report of a scored population: whom a campaign would select, by gender, age band and country.

Two selections are compared. "Top share" takes the highest-scored part of the whole population, as a
"send to the top decile" campaign does; "threshold" takes everyone scored at or above a probability, as a
"model score" segment rule does. A group selected at less than four fifths of the rate of the
most-selected group is flagged, after the four-fifths rule of thumb for adverse impact.
"""

import math
from datetime import date
from fractions import Fraction
from typing import Any

import numpy as np
import pandas as pd

SENSITIVE_ATTRIBUTES = ("gender", "age_band", "country")
FOUR_FIFTHS = Fraction(4, 5)
DECIMALS = 6
AGE_BAND_STARTS_YEARS = (18, 25, 35, 45, 55, 65)
AGE_BAND_NAMES = ("under 18", "18-24", "25-34", "35-44", "45-54", "55-64", "65+")


def age_band(birth_dates: pd.Series, as_of: date) -> pd.Series:
    """Return the age band of each birth date on ``as_of``, or "" when the date is unknown."""
    born = pd.to_datetime(birth_dates, errors="coerce")
    birthday_to_come = (born.dt.month > as_of.month) | ((born.dt.month == as_of.month) & (born.dt.day > as_of.day))
    ages = (as_of.year - born.dt.year - birthday_to_come.astype(int)).to_numpy(dtype=float)
    # A birth date after as_of is a data error, not a newborn, so it counts as unknown.
    known = np.isfinite(ages) & (ages >= 0)
    bands = np.array(AGE_BAND_NAMES, dtype=object)[np.digitize(np.where(known, ages, 0), AGE_BAND_STARTS_YEARS)]
    return pd.Series(np.where(known, bands, ""), index=birth_dates.index, name="age_band", dtype=object)


def fairness_report(
    frame: pd.DataFrame, threshold: float, top_share: float = 0.1, min_group_size: int = 30
) -> dict[str, Any]:
    """Return selection rates, true-positive rates and calibration of every group of every sensitive attribute."""
    labels, probabilities = _check_frame(frame, top_share)
    # A stable sort keeps tied customers in frame order, so the same scores always select the same people;
    # rounding before the ceiling stops float error (100 * 0.07 = 7.000000000000001) from selecting one extra.
    top_rows = np.argsort(-probabilities, kind="stable")[: math.ceil(round(len(frame) * top_share, 9))]
    top_selected = np.zeros(len(frame), dtype=bool)
    top_selected[top_rows] = True
    selected = {"top_share": top_selected, "threshold": probabilities >= threshold}
    descriptions = {
        "top_share": f"top {round(top_share * 100, 4):g}% selection",
        "threshold": f"threshold selection (probability at least {threshold:g})",
    }

    attributes, warnings = {}, []
    for attribute in SENSITIVE_ATTRIBUTES:
        values = frame[attribute].fillna("").astype(str).to_numpy(dtype=object)
        members = {name: values == name for name in sorted(set(values) - {""})}
        groups = [
            _describe_group(name, rows, labels, probabilities, selected, min_group_size)
            for name, rows in members.items()
        ]
        summary: dict[str, Any] = {"groups": groups, "unknown": int((values == "").sum())}
        for selection, chosen in selected.items():
            # Exact fractions, so a group at exactly four fifths is never flagged by floating-point error.
            rates = [Fraction(int(chosen[rows].sum()), int(rows.sum())) for rows in members.values()]
            ratio, flagged = _impact(groups, rates)
            summary[f"impact_ratio_{selection}"] = _rounded(ratio)
            warnings.extend(
                f"{attribute.replace('_', ' ').capitalize()} {groups[i]['group']!r} is selected at {float(rates[i]):.1%} "
                f"by the {descriptions[selection]}, {float(rates[i] / rates[top]):.2f} of the rate of "
                f"{groups[top]['group']!r} ({float(rates[top]):.1%}), below four fifths."
                for i, top in flagged
            )
        attributes[attribute] = summary

    return {
        "threshold": float(threshold),
        "top_share": float(top_share),
        "customers": len(frame),
        "attributes": attributes,
        "warnings": warnings,
    }


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


def _describe_group(
    name: str,
    members: np.ndarray,
    labels: np.ndarray,
    probabilities: np.ndarray,
    selected: dict[str, np.ndarray],
    min_group_size: int,
) -> dict[str, Any]:
    """Return the size, selection rates, true-positive rates and calibration of one group."""
    customers = int(members.sum())
    positive_members = members & (labels == 1)
    positives = int(positive_members.sum())
    group: dict[str, Any] = {"group": name, "customers": customers, "positives": positives}
    for selection, chosen in selected.items():
        group[f"selected_{selection}"] = _rounded(chosen[members].mean())
    for selection, chosen in selected.items():
        group[f"tpr_{selection}"] = _rounded(chosen[positive_members].mean()) if positives else None
    group["mean_predicted"] = _rounded(probabilities[members].mean())
    group["observed_rate"] = _rounded(labels[members].mean())
    group["small"] = customers < min_group_size
    return group


def _impact(groups: list[dict[str, Any]], rates: list[Fraction]) -> tuple[Fraction | None, list[tuple[int, int]]]:
    """Return the lowest-to-highest selection ratio among groups that are not small, and (group, highest) below 4/5."""
    # Small groups swing on a handful of customers, so they neither set nor breach the bar.
    comparable = [i for i, group in enumerate(groups) if not group["small"]]
    if len(comparable) < 2:
        return None, []
    top = max(comparable, key=lambda i: rates[i])
    if rates[top] == 0:
        return None, []
    lowest = min(rates[i] for i in comparable) / rates[top]
    return lowest, [(i, top) for i in comparable if rates[i] / rates[top] < FOUR_FIFTHS]


def _rounded(value: float | Fraction | None) -> float | None:
    """Return ``value`` as a plain float with the stored precision, keeping None."""
    return None if value is None else round(float(value), DECIMALS)
