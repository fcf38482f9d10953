"""Features of the global model: one row per (series, origin, weeks ahead), from the history before the origin.

An origin `o` is a week index: the model knows weeks [0, o) and forecasts week o + j - 1 for j = 1
to the horizon. Every value is divided by the series' level at the origin (its mean over the last
LEVEL_WEEKS weeks), so one model serves a category selling ten units a week and the whole shop
selling thousands; the target is scaled the same way and the prediction scaled back. Nothing at or
after the origin reaches a feature: last year's weeks are read only while they lie before it, which
holds for every horizon up to a year.
"""

from dataclasses import dataclass

import numpy as np

from ml.forecast.calendar import CALENDAR_FEATURES

LAGS = 8
MEAN_WINDOWS = (4, 8, 13, 26, 52)
LEVEL_WEEKS = 13
YEAR_WEEKS = 52
MAX_HISTORY_FEATURE_WEEKS = 156
# Training rows start once a series has this many weeks behind the origin: earlier rows are mostly empty.
MIN_TRAINING_HISTORY_WEEKS = 4
# Neighbouring origins see nearly the same weeks; learning from every other one halves the training
# rows at no measurable loss of accuracy.
TRAINING_ORIGIN_STRIDE = 2

ORIGIN_FEATURES = (
    *(f"lag_{lag}" for lag in range(1, LAGS + 1)),
    *(f"mean_{window}" for window in MEAN_WINDOWS),
    "std_8",
    "zero_share_13",
    "trend_4_13",
    "growth_vs_last_year",
    "log_level",
    "history_weeks",
)
TARGET_WEEK_FEATURES = ("weeks_ahead", "last_year", "last_year_3", "last_year_change", *CALENDAR_FEATURES)
FEATURE_NAMES = (*ORIGIN_FEATURES, *TARGET_WEEK_FEATURES)


@dataclass(frozen=True)
class FeatureGrid:
    """Origin features of every series at every origin 0..T, and the series values, ready to expand into rows."""

    values: np.ndarray  # (series, T), NaN before each series' start
    starts: np.ndarray  # (series,)
    level: np.ndarray  # (series, T + 1): the scale at each origin, 1 where the series has not sold yet
    origin: np.ndarray  # (series, T + 1, len(ORIGIN_FEATURES))
    calendar: np.ndarray  # (T + horizon, len(CALENDAR_FEATURES)): calendar of every week a row may target
    window_mean: np.ndarray  # (series, T + 1): mean of the LEVEL_WEEKS weeks before each origin, NaN if short


def _window_sums(values: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    """Return, for every origin 0..T, the sum and the count of known weeks in the `window` weeks before it."""
    known = ~np.isnan(values)
    zero = np.zeros((len(values), 1))
    cumulative = np.concatenate([zero, np.cumsum(np.where(known, values, 0.0), axis=1)], axis=1)
    counts = np.concatenate([zero, np.cumsum(known, axis=1)], axis=1)
    first = np.clip(np.arange(values.shape[1] + 1) - window, 0, None)
    return cumulative - cumulative[:, first], counts - counts[:, first]


def _full_window_mean(values: np.ndarray, window: int) -> np.ndarray:
    total, count = _window_sums(values, window)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count >= window, total / np.maximum(count, 1), np.nan)


def build_grid(values: np.ndarray, starts: np.ndarray, calendar: np.ndarray) -> FeatureGrid:
    """Return the origin features of every series and origin, for a target's weekly values."""
    series, weeks = values.shape
    known = np.arange(weeks)[None, :] >= starts[:, None]
    values = np.where(known, values, np.nan)

    level_sum, level_count = _window_sums(values, LEVEL_WEEKS)
    all_sum, all_count = _window_sums(values, weeks)
    with np.errstate(invalid="ignore", divide="ignore"):
        level = np.where(level_count > 0, level_sum / np.maximum(level_count, 1), np.nan)
        # A series that sold nothing in the last weeks keeps its longer-run level, so a lull stays readable.
        level = np.where(level > 0, level, all_sum / np.maximum(all_count, 1))
    level = np.where(np.isfinite(level) & (level > 0), level, 1.0)

    padded = np.concatenate([np.full((series, LAGS), np.nan), values], axis=1)
    # Origin o's lag l is week o - l, at padded column o - l + LAGS (NaN before the history).
    columns = [padded[:, LAGS - lag : LAGS - lag + weeks + 1] for lag in range(1, LAGS + 1)]
    means = {window: _full_window_mean(values, window) for window in MEAN_WINDOWS}
    columns += [means[window] for window in MEAN_WINDOWS]
    squares_sum, squares_count = _window_sums(values**2, 8)
    with np.errstate(invalid="ignore"):
        variance = np.where(squares_count >= 8, squares_sum / 8 - means[8] ** 2, np.nan)
    columns.append(np.sqrt(np.clip(variance, 0.0, None)))
    zeros_sum, zeros_count = _window_sums(np.where(np.isnan(values), np.nan, (values == 0).astype(float)), 13)
    with np.errstate(invalid="ignore", divide="ignore"):
        columns.append(np.where(zeros_count > 0, zeros_sum / np.maximum(zeros_count, 1), np.nan))
        columns.append(means[4] / means[13])
        year_ago = np.concatenate([np.full((series, YEAR_WEEKS), np.nan), means[13]], axis=1)[:, : weeks + 1]
        columns.append(np.log(means[13] / year_ago))
    scaled = [column / level for column in columns[: LAGS + len(MEAN_WINDOWS) + 1]]  # lags, means, std
    rest = columns[LAGS + len(MEAN_WINDOWS) + 1 :]
    history_weeks = np.clip(np.arange(weeks + 1)[None, :] - starts[:, None], 0, MAX_HISTORY_FEATURE_WEEKS)
    origin = np.stack(
        [*scaled, *rest, np.log1p(level), history_weeks.astype(float)],
        axis=2,
    )
    origin[~np.isfinite(origin)] = np.nan
    return FeatureGrid(values, starts, level, origin, calendar, means[13])


def _values_at(grid: FeatureGrid, series: np.ndarray, weeks: np.ndarray) -> np.ndarray:
    """Return the series' values at the weeks, NaN outside the history."""
    inside = (weeks >= 0) & (weeks < grid.values.shape[1])
    out = np.full(len(series), np.nan)
    out[inside] = grid.values[series[inside], weeks[inside]]
    return out


def expand_rows(
    grid: FeatureGrid, series: np.ndarray, origins: np.ndarray, horizon: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Return the feature matrix of every (series, origin) pair for weeks ahead 1..horizon, with each
    row's series, target week and level."""
    pairs = len(series)
    ahead = np.tile(np.arange(1, horizon + 1), pairs)
    row_series, row_origin = np.repeat(series, horizon), np.repeat(origins, horizon)
    target_week = row_origin + ahead - 1
    level = grid.level[row_series, row_origin]
    last_year = _values_at(grid, row_series, target_week - YEAR_WEEKS)
    around = np.stack([_values_at(grid, row_series, target_week - YEAR_WEEKS + shift) for shift in (-1, 0, 1)])
    with np.errstate(invalid="ignore"):
        last_year_3 = around.mean(axis=0)  # NaN unless all three weeks are known
    base = grid.window_mean[row_series, np.clip(row_origin - YEAR_WEEKS, 0, None)]
    base = np.where(row_origin - YEAR_WEEKS >= LEVEL_WEEKS, base, np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        change = np.where(base > 0, last_year_3 / base, np.nan)
    calendar = grid.calendar[np.clip(target_week, 0, len(grid.calendar) - 1)]
    target = np.column_stack([ahead.astype(float), last_year / level, last_year_3 / level, change, calendar])
    matrix = np.concatenate([grid.origin[row_series, row_origin], target], axis=1)
    matrix[~np.isfinite(matrix)] = np.nan
    return matrix.astype(np.float32), row_series, target_week, level


def training_pairs(grid: FeatureGrid, series: np.ndarray, cutoff: int) -> tuple[np.ndarray, np.ndarray]:
    """Return the (series, origin) pairs the model may learn from before `cutoff`: every
    TRAINING_ORIGIN_STRIDE-th origin back from the cutoff, each with at least MIN_TRAINING_HISTORY_WEEKS
    weeks behind it."""
    firsts = grid.starts[series] + MIN_TRAINING_HISTORY_WEEKS
    counts = np.clip(-(-(cutoff - firsts) // TRAINING_ORIGIN_STRIDE), 0, None)
    pairs_series = np.repeat(series, counts)
    # Within each series, origins run back from cutoff - 1 in strides.
    steps = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    return pairs_series.astype(np.int64), (cutoff - 1 - steps * TRAINING_ORIGIN_STRIDE).astype(np.int64)


def training_rows(grid: FeatureGrid, series: np.ndarray, cutoff: int, horizon: int) -> tuple[np.ndarray, np.ndarray]:
    """Return the features and scaled targets of every row whose target week lies before `cutoff`."""
    pairs_series, pairs_origin = training_pairs(grid, series, cutoff)
    matrix, row_series, target_week, level = expand_rows(grid, pairs_series, pairs_origin, horizon)
    keep = target_week < cutoff
    target = grid.values[row_series[keep], target_week[keep]] / level[keep]
    return matrix[keep], target
