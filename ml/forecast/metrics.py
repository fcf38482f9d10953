"""Forecast accuracy: MASE and sMAPE of one forecast window, and the coverage of its interval.

MASE (Hyndman and Koehler, 2006) divides the window's mean absolute error by the mean absolute
error of the one-step naive forecast over the history before the window, so a value below 1 beats
"next week sells what this week sold" on the history the forecaster had. Weekly series are scaled
with the one-week naive, as in the M4 competition. sMAPE is the symmetric percentage error of the
M competitions, from 0 (perfect) to 200; a week that sold nothing and was forecast to sell nothing
counts as perfect.
"""

import numpy as np
from numpy.typing import ArrayLike

# Scales below this are a flat history: no naive error to compare with.
MIN_SCALE = 1e-9


def naive_scale(history: ArrayLike) -> float | None:
    """Return the mean absolute one-step change of the history, or None when it is under two weeks or flat."""
    values = np.asarray(history, dtype=float)
    if values.size < 2:
        return None
    scale = float(np.mean(np.abs(np.diff(values))))
    return scale if scale > MIN_SCALE else None


def mase(actual: ArrayLike, forecast: ArrayLike, scale: float | None) -> float | None:
    """Return the window's mean absolute error over `scale`, or None without a scale."""
    if scale is None:
        return None
    errors = np.abs(np.asarray(actual, dtype=float) - np.asarray(forecast, dtype=float))
    return float(errors.mean() / scale)


def smape(actual: ArrayLike, forecast: ArrayLike) -> float:
    """Return the symmetric mean absolute percentage error of the window, in percent (0 to 200)."""
    actual, forecast = np.asarray(actual, dtype=float), np.asarray(forecast, dtype=float)
    denominator = np.abs(actual) + np.abs(forecast)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(denominator > 0, 2 * np.abs(actual - forecast) / denominator, 0.0)
    return float(100 * terms.mean())


def coverage(actual: ArrayLike, low: ArrayLike, high: ArrayLike) -> float:
    """Return the share of weeks whose actual falls inside [low, high]."""
    actual = np.asarray(actual, dtype=float)
    inside = (actual >= np.asarray(low, dtype=float)) & (actual <= np.asarray(high, dtype=float))
    return float(inside.mean())


def mean_or_none(values: list[float | None]) -> float | None:
    """Return the mean of the values that are not None, or None when there are none."""
    present = [value for value in values if value is not None]
    return float(np.mean(present)) if present else None
