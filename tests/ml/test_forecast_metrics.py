"""Forecast accuracy measures against values worked out by hand."""

import pytest

from ml.forecast.metrics import coverage, mase, mean_or_none, naive_scale, smape


def test_naive_scale_is_the_mean_absolute_week_to_week_change():
    # |4 - 2| + |1 - 4| + |1 - 1| = 5 over three changes
    assert naive_scale([2, 4, 1, 1]) == pytest.approx(5 / 3)


@pytest.mark.parametrize("history", [[], [7], [3, 3, 3]])
def test_naive_scale_is_undefined_for_under_two_weeks_or_a_flat_history(history):
    assert naive_scale(history) is None


def test_mase_divides_the_mean_absolute_error_by_the_scale():
    # errors 1 and 2: mean 1.5, over a scale of 5/3
    assert mase([3, 5], [2, 7], 5 / 3) == pytest.approx(0.9)


def test_mase_without_a_scale_is_undefined():
    assert mase([3, 5], [2, 7], None) is None


def test_smape_is_the_mean_symmetric_percentage_error():
    # week 1: 2 * |3 - 1| / (3 + 1) = 1; week 2 sold nothing and none was forecast: 0; week 3 exact: 0
    assert smape([3, 0, 2], [1, 0, 2]) == pytest.approx(100 / 3)


def test_smape_of_a_forecast_of_nothing_for_a_week_that_sold_is_the_maximum():
    assert smape([4], [0]) == pytest.approx(200.0)


def test_coverage_is_the_share_of_weeks_inside_the_interval_bounds_included():
    assert coverage([1, 5, 3], [0, 6, 3], [2, 7, 3]) == pytest.approx(2 / 3)


def test_mean_or_none_skips_missing_values():
    assert mean_or_none([1.0, None, 2.0]) == pytest.approx(1.5)
    assert mean_or_none([None, None]) is None
