"""The forecast itself: backtest each target, then fit each series' chosen method on its whole history.

Units and revenue are forecast the same way and independently, each with its own backtest and its
own choice per series: a category's revenue can follow its prices (sales, a new premium line) as
much as its units. The whole shop (`ALL_SERIES`) is forecast as a series of its own, so its interval
is its own too, not a sum of intervals.
"""

import time
from dataclasses import dataclass
from datetime import date

import lightgbm as lgb
import numpy as np

from ml.forecast.backtest import Backtest, overall_figures, run_backtest, series_figures
from ml.forecast.calendar import calendar_matrix
from ml.forecast.features import build_grid, expand_rows, training_rows
from ml.forecast.history import TARGETS, ForecastOptions, NotEnoughHistory, SalesHistory, unmet_minimums
from ml.forecast.methods import (
    AUTO_ETS,
    MODEL,
    SEASONAL_NAIVE,
    PointsAndInterval,
    auto_ets,
    fit_global_model,
    predict_global_model,
    seasonal_naive,
)
from ml.forecast.metrics import naive_scale

NO_SALES = "none"


@dataclass(frozen=True)
class TargetForecast:
    target: str
    methods: list[str]  # per series: the method whose forecast this is
    points: list[PointsAndInterval]  # per series
    booster: lgb.Booster | None  # the global model fitted on the whole history, if any series may use it
    notes: list[str]  # per series: why its method differs from the backtest's choice, or ""


@dataclass(frozen=True)
class SalesForecast:
    names: tuple[str, ...]
    weeks: list[date]  # the forecast's Mondays
    targets: dict[str, TargetForecast]
    backtests: dict[str, Backtest]
    figures: dict[str, dict]  # per target: "series" and "overall" backtest figures
    timings: dict[str, float]

    @property
    def beats_seasonal_naive(self) -> bool:
        return bool(self.figures["units"]["overall"]["beats_seasonal_naive"])


def forecast_sales(history: SalesHistory, options: ForecastOptions) -> SalesForecast:
    """Backtest and forecast units and revenue of every series; refuse a history too short for it."""
    reasons = unmet_minimums(history, options)
    if reasons:
        raise NotEnoughHistory(reasons)
    backtests, targets, timings = {}, {}, {"backtest_s": 0.0, "train_s": 0.0}
    for target in TARGETS:
        started = time.perf_counter()
        backtests[target] = run_backtest(history, target, options)
        timings["backtest_s"] += time.perf_counter() - started
        started = time.perf_counter()
        targets[target] = fit_forecast(history, backtests[target], options)
        timings["train_s"] += time.perf_counter() - started
    figures = {
        target: {"series": series_figures(backtest), "overall": overall_figures(backtest)}
        for target, backtest in backtests.items()
    }
    for target, result in targets.items():
        for row, method, note in zip(figures[target]["series"], result.methods, result.notes, strict=True):
            row["forecast_method"], row["note"] = method, note
    weeks = history.mondays(options.horizon_weeks)[history.weeks :]
    return SalesForecast(history.names, weeks, targets, backtests, figures, timings)


def fit_forecast(history: SalesHistory, backtest: Backtest, options: ForecastOptions) -> TargetForecast:
    """Fit each series' chosen method on its whole history and forecast the horizon."""
    values = history.target(backtest.target)
    weeks, horizon = history.weeks, options.horizon_weeks
    starts = backtest.starts
    model_points = _model_forecasts(history, backtest, options)
    methods, points, notes = [], [], []
    for s in range(len(history.names)):
        if starts[s] >= weeks:
            zeros = np.zeros(horizon)
            methods.append(NO_SALES)
            points.append(PointsAndInterval(zeros, zeros, zeros))
            notes.append("")
            continue
        past = values[s, starts[s] :]
        chosen, note, forecast = backtest.chosen[s], "", None
        if chosen == MODEL:
            forecast = model_points[1].get(s)
        elif chosen == AUTO_ETS:
            forecast = auto_ets(past, horizon, options.level)
        if chosen != SEASONAL_NAIVE and forecast is None:
            note = f"{chosen} could not forecast the whole history; the seasonal naive stands in"
            chosen = SEASONAL_NAIVE
        if forecast is None:
            forecast = seasonal_naive(past, horizon, options.level)
        methods.append(chosen)
        points.append(forecast)
        notes.append(note)
    return TargetForecast(backtest.target, methods, points, model_points[0], notes)


def _model_forecasts(
    history: SalesHistory, backtest: Backtest, options: ForecastOptions
) -> tuple[lgb.Booster | None, dict[int, PointsAndInterval]]:
    """Fit the global model on the whole history of every series it learns from; return it and its
    forecast of the series that chose it."""
    teachers = np.array([s for s, profile in enumerate(backtest.profiles) if profile.teaches], dtype=np.int64)
    if not len(teachers):
        return None, {}
    values = history.target(backtest.target)
    weeks, horizon = history.weeks, options.horizon_weeks
    grid = build_grid(values, backtest.starts, calendar_matrix(history.mondays(horizon)))
    features, scaled = training_rows(grid, teachers, weeks, horizon)
    if not len(scaled):
        return None, {}
    booster = fit_global_model(features, scaled, options.threads, options.seed)
    users = np.array([s for s, method in enumerate(backtest.chosen) if method == MODEL], dtype=np.int64)
    if not len(users):
        return booster, {}
    matrix, _, _, level = expand_rows(grid, users, np.full(len(users), weeks), horizon)
    means = predict_global_model(booster, matrix, level, options.threads).reshape(len(users), horizon)
    quantiles = backtest.residual_quantiles
    forecasts = {}
    for s, mean in zip(users.tolist(), means, strict=True):
        scale = naive_scale(values[s, backtest.starts[s] :]) or 0.0
        width = quantiles * scale if quantiles is not None else np.zeros(horizon)
        width = np.where(np.isfinite(width), width, 0.0)
        forecasts[s] = PointsAndInterval(mean, np.clip(mean - width, 0.0, None), mean + width)
    return booster, forecasts
