"""The global model's rows: values worked out by hand, and nothing from the origin on reaching a feature."""

from datetime import date

import numpy as np
import pytest

from ml.forecast.calendar import calendar_matrix, week_starts
from ml.forecast.features import FEATURE_NAMES, build_grid, expand_rows, training_rows
from ml.forecast.history import series_starts

MONDAY = date(2025, 1, 6)


def grid_of(values: list[list[float]], horizon: int = 2):
    array = np.array(values, dtype=float)
    mondays = week_starts(MONDAY, array.shape[1] + horizon)
    return build_grid(array, series_starts(array), calendar_matrix(mondays))


def row_of(grid, series: int, origin: int, horizon: int = 2) -> dict[str, list[float]]:
    matrix, _, weeks, level = expand_rows(grid, np.array([series]), np.array([origin]), horizon)
    return {name: matrix[:, k].tolist() for k, name in enumerate(FEATURE_NAMES)} | {"_weeks": weeks.tolist(), "_level": level.tolist()}


def test_origin_features_are_scaled_by_the_level_and_blank_before_the_first_sale():
    grid = grid_of([[0, 0, 2, 4, 6, 8, 10]])

    row = row_of(grid, 0, 5)

    # Known before origin 5: weeks 2-4 selling 2, 4 and 6; the level is their mean, 4.
    assert row["_level"] == [4.0, 4.0]
    assert row["lag_1"] == [1.5, 1.5]
    assert row["lag_2"] == [1.0, 1.0]
    assert row["lag_3"] == [0.5, 0.5]
    assert np.isnan(row["lag_4"]).all()  # week 1 is before the first sale: not a zero
    assert np.isnan(row["mean_4"]).all()  # three known weeks do not make a four-week mean
    assert row["history_weeks"] == [3.0, 3.0]
    assert row["zero_share_13"] == [0.0, 0.0]
    assert row["weeks_ahead"] == [1.0, 2.0]
    assert row["_weeks"] == [5, 6]
    assert row["log_level"] == pytest.approx([np.log1p(4.0)] * 2)


def test_full_windows_give_means_deviation_and_trend():
    grid = grid_of([[1, 3, 5, 7, 9, 11, 13, 15]])

    row = row_of(grid, 0, 8)

    level = np.mean([1, 3, 5, 7, 9, 11, 13, 15])  # fewer than 13 weeks known: all of them
    assert row["mean_4"] == pytest.approx([np.mean([9, 11, 13, 15]) / level] * 2)
    assert row["mean_8"] == pytest.approx([1.0, 1.0])
    assert row["std_8"] == pytest.approx([np.std([1, 3, 5, 7, 9, 11, 13, 15]) / level] * 2)
    assert np.isnan(row["trend_4_13"]).all()  # no full 13 weeks yet


def test_last_years_weeks_are_read_when_they_lie_before_the_origin():
    values = [float(week % 52 == 3) * 20 + 10 for week in range(60)]  # a peak in week 3 of each year
    grid = grid_of([values])

    row = row_of(grid, 0, 55)  # forecasts weeks 55 and 56; a year earlier: weeks 3 and 4

    level = np.mean(values[42:55])
    assert row["last_year"] == pytest.approx([30 / level, 10 / level])
    assert row["last_year_3"] == pytest.approx([np.mean(values[2:5]) / level, np.mean(values[3:6]) / level])


def test_no_feature_changes_when_the_origin_week_and_later_change():
    values = np.arange(1, 70, dtype=float)[None, :] % 7 + 1
    changed = values.copy()
    changed[:, 60:] = 1000.0
    before, after = grid_of(values.tolist()), grid_of(changed.tolist())

    first, *_ = expand_rows(before, np.array([0]), np.array([60]), 2)
    second, *_ = expand_rows(after, np.array([0]), np.array([60]), 2)

    np.testing.assert_array_equal(first, second)


def test_training_rows_only_target_weeks_before_the_cutoff():
    values = [[float(week + 1) for week in range(30)]]
    grid = grid_of(values, horizon=3)

    features, target = training_rows(grid, np.array([0]), cutoff=20, horizon=3)

    weeks_ahead = features[:, FEATURE_NAMES.index("weeks_ahead")]
    history = features[:, FEATURE_NAMES.index("history_weeks")]  # origin = weeks behind it, from week 0
    assert (history + weeks_ahead - 1 < 20).all()
    # The newest origin (19) forecasts week 19 one week ahead; older origins every other week.
    assert sorted(set(history.tolist()))[-3:] == [15.0, 17.0, 19.0]
    assert history.min() == 5.0  # at least four weeks behind an origin
    origin, ahead = history.astype(int), weeks_ahead.astype(int)
    level = np.array([np.mean(values[0][max(0, o - 13) : o]) for o in origin])
    np.testing.assert_allclose(target, np.array(values[0])[origin + ahead - 1] / level, rtol=1e-6)
