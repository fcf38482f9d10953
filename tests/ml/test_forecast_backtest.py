"""The rolling-origin backtest, the choice of a method per series, and the forecast on a synthetic shop."""

from datetime import date, timedelta

import numpy as np
import pytest

from ml.forecast import ALL_SERIES, ForecastOptions, NotEnoughHistory, SalesHistory, backtest_origins, choose_method
from ml.forecast.backtest import overall_figures, run_backtest
from ml.forecast.methods import AUTO_ETS, BASELINES, MODEL, SEASONAL_NAIVE, seasonal_naive, seasonal_season
from ml.forecast.sales import forecast_sales

MONDAY = date(2023, 1, 2)
NAN = np.nan


def synthetic_shop(categories: int, weeks: int, seed: int = 3) -> SalesHistory:
    """Categories with their own level, trend and yearly season, a Black Friday week, and Poisson noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(weeks)
    level = rng.lognormal(3.5, 0.6, categories)
    trend = rng.normal(0, 0.25, categories)
    swing, peak = rng.uniform(0.2, 0.6, categories), rng.uniform(0, 52, categories)
    mean = level[:, None] * np.exp(trend[:, None] * (t - weeks)[None] / 52)
    mean = mean * (1 + swing[:, None] * np.cos(2 * np.pi * (t[None] - peak[:, None]) / 52))
    mean = mean * np.where(t % 52 == 47, 1.8, 1.0)[None]
    units = rng.poisson(mean).astype(float)
    revenue = units * rng.uniform(10, 60, categories)[:, None]
    names = (ALL_SERIES, *[f"category {k:02d}" for k in range(categories)])
    return SalesHistory(names, MONDAY, np.vstack([units.sum(0), units]), np.vstack([revenue.sum(0), revenue]))


@pytest.mark.parametrize(
    ("weeks", "origins"),
    [(104, [72, 80, 88, 96]), (20, [3, 6, 9, 12]), (12, [1, 2, 3, 4])],
)
def test_origins_tile_the_last_weeks_and_crowd_together_on_a_short_history(weeks, origins):
    assert backtest_origins(weeks, ForecastOptions(horizon_weeks=8, origins=4)) == origins


def test_a_history_without_room_for_every_origin_is_refused():
    with pytest.raises(NotEnoughHistory) as refused:
        backtest_origins(11, ForecastOptions(horizon_weeks=8, origins=4))

    assert refused.value.reasons == ["a backtest of 4 origins of 8 weeks needs 12 weeks; the store has 11"]


def test_the_method_with_the_lowest_mase_where_all_allowed_methods_forecast_is_chosen():
    # origins x (seasonal naive, AutoETS, model); the model did not forecast the second origin
    mase = np.array([[1.0, 0.8, 0.6], [1.2, 0.9, NAN]])
    smape = np.full((2, 3), 50.0)

    assert choose_method(mase, smape, (0, 1, 2)) == MODEL  # compared on the first origin only
    assert choose_method(mase, smape, (0, 1)) == AUTO_ETS  # 0.85 against 1.1 over both


def test_without_any_mase_the_choice_falls_to_smape_then_to_the_seasonal_naive():
    no_scale = np.full((2, 3), NAN)

    assert choose_method(no_scale, np.array([[40.0, 30.0, 35.0], [40.0, 32.0, 20.0]]), (0, 1, 2)) == MODEL
    assert choose_method(no_scale, np.full((2, 3), NAN), (0, 1, 2)) == SEASONAL_NAIVE


def test_a_tie_goes_to_the_simpler_method():
    assert choose_method(np.array([[0.9, 0.9, 0.9]]), np.full((1, 3), 10.0), (0, 1, 2)) == SEASONAL_NAIVE


@pytest.mark.parametrize(("weeks", "season"), [(60, 52), (52, 52), (51, 4), (3, 3), (1, 1)])
def test_the_seasonal_naive_repeats_last_year_or_falls_back_to_the_last_four_weeks(weeks, season):
    assert seasonal_season(weeks) == season


def test_the_seasonal_naive_fallback_repeats_the_last_four_weeks():
    history = np.array([9, 9, 1, 2, 3, 4], dtype=float)

    points = seasonal_naive(history, 6, 80)

    assert points.mean.tolist() == [1, 2, 3, 4, 1, 2]
    assert (points.low <= points.mean).all() and (points.mean <= points.high).all()


@pytest.fixture(scope="module")
def shop_forecast():
    history = synthetic_shop(categories=24, weeks=156)
    return history, forecast_sales(history, ForecastOptions(horizon_weeks=8, origins=4, threads=1))


def test_on_a_seasonal_shop_the_model_and_the_selected_forecasts_beat_both_baselines(shop_forecast):
    _, forecast = shop_forecast
    overall = forecast.figures["units"]["overall"]
    methods = overall["methods"]

    assert overall["categories_evaluated"] == 24
    assert overall["origins_evaluated"] == 3
    assert methods["model"]["mase"] < methods["seasonal_naive"]["mase"]
    assert methods["model"]["mase"] < methods["auto_ets"]["mase"]
    assert methods["selected"]["mase"] < methods["seasonal_naive"]["mase"]
    assert overall["beats_seasonal_naive"] is True
    assert forecast.beats_seasonal_naive is True


def test_every_method_is_backtested_on_history_only(shop_forecast):
    history, forecast = shop_forecast
    backtest = forecast.backtests["units"]

    assert backtest.origins == [124, 132, 140, 148]
    for k, origin in enumerate(backtest.origins):
        np.testing.assert_array_equal(backtest.actual[k], history.units[:, origin : origin + 8])
        # The seasonal naive at each origin is the same weeks a year before it.
        np.testing.assert_array_equal(backtest.forecasts[k, 1, 0, 0], history.units[1, origin - 52 : origin - 44])


def test_the_forecast_covers_the_weeks_after_the_history_for_every_series(shop_forecast):
    history, forecast = shop_forecast
    units = forecast.targets["units"]

    assert forecast.weeks == [MONDAY + timedelta(weeks=156 + k) for k in range(8)]
    assert len(units.points) == len(history.names) == 25
    for points in units.points:
        assert points.mean.shape == (8,)
        assert (points.low >= 0).all()
        assert (points.low <= points.mean + 1e-9).all() and (points.mean <= points.high + 1e-9).all()
    assert units.methods == forecast.backtests["units"].chosen
    assert forecast.targets["revenue"].methods == forecast.backtests["revenue"].chosen


def test_the_models_interval_covers_about_its_level_in_the_backtest(shop_forecast):
    _, forecast = shop_forecast
    coverage = [row["figures"]["model"]["coverage"] for row in forecast.figures["units"]["series"][1:]]

    assert 0.65 <= float(np.mean(coverage)) <= 0.95


def test_a_short_or_intermittent_category_falls_back_to_a_baseline_and_says_so():
    history = synthetic_shop(categories=6, weeks=104, seed=5)
    units = history.units.copy()
    units[1, :90] = 0  # a category launched 14 weeks ago
    units[2] = np.where(np.arange(104) % 3 == 0, units[2], 0)  # sells one week in three
    history = SalesHistory(history.names, history.first_week, units, history.revenue)

    forecast = forecast_sales(history, ForecastOptions(threads=1))

    rows = {row["series"]: row for row in forecast.figures["units"]["series"]}
    assert rows["category 00"]["fallback"] == "14 weeks of history, under the 26 a model needs"
    assert rows["category 01"]["fallback"].startswith("69 of 104 weeks without sales")
    assert rows["category 00"]["method"] in BASELINES
    assert rows["category 01"]["method"] in BASELINES
    assert forecast.targets["units"].methods[1] in BASELINES
    assert rows["category 02"]["fallback"] == ""


def test_overall_figures_compare_every_method_on_the_same_windows():
    backtest = run_backtest(synthetic_shop(categories=8, weeks=80, seed=9), "units", ForecastOptions(threads=1))

    overall = overall_figures(backtest)

    assert set(overall["methods"]) == {"seasonal_naive", "auto_ets", "model", "selected"}
    assert overall["categories_evaluated"] == 8
    assert (backtest.rolling_choice[0] == -1).all()
    assert (backtest.rolling_choice[1:] >= 0).all()


def test_a_store_of_exactly_the_minimum_is_forecast_by_baselines_alone():
    history = synthetic_shop(categories=3, weeks=12, seed=2)

    forecast = forecast_sales(history, ForecastOptions(threads=1))

    units = forecast.figures["units"]
    assert forecast.backtests["units"].origins == [1, 2, 3, 4]
    assert {row["method"] for row in units["series"]} <= set(BASELINES)
    assert {row["fallback"] for row in units["series"]} == {"12 weeks of history, under the 26 a model needs"}
    assert units["overall"]["methods"]["model"]["mase"] is None  # too little for it to learn at any origin
    assert units["overall"]["methods"]["selected"]["mase"] is not None
    assert forecast.targets["units"].booster is not None  # it learns from all 12 weeks for the next version
    assert all(row["note"] == "" for row in units["series"])
