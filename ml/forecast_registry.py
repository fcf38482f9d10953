"""Train, register, activate and roll back sales-forecast versions.

The Django shell around `ml.forecast`: it reads the weekly sales through `ml.forecast_queries`,
refuses a history too short for a forecast, runs the backtest and the forecast, and stores it all
as a `ModelVersion` of the `sales_forecast` task: the figures, parameters, both global models, a
model card, every forecast week (`Forecast`) and the weekly sales it learned from (`WeeklySales`).
A version becomes active only if its selected forecasts beat the seasonal naive on overall MASE in
the backtest, unless forced; activation and rollback are those of every model (`ml.registry`).
"""

import json
from dataclasses import dataclass
from datetime import datetime, time
from zoneinfo import ZoneInfo

import numpy as np
from django.conf import settings
from django.db import transaction

from ml.forecast import (
    ForecastOptions,
    NotEnoughHistory,
    SalesForecast,
    forecast_sales,
    history_from_frame,
    required_weeks,
)
from ml.forecast.card import forecast_card
from ml.forecast.features import FEATURE_NAMES, TRAINING_ORIGIN_STRIDE
from ml.forecast.history import SalesHistory, unmet_minimums
from ml.forecast.methods import BOOST_ROUNDS, LIGHTGBM_PARAMS, METHODS
from ml.forecast_queries import WeeklySalesRead, read_weekly_sales
from ml.models import SALES_FORECAST, Forecast, ModelStatus, ModelVersion, WeeklySales
from ml.registry import ActivationRefused, activate_version, roll_back

ROW_BATCH = 5_000


@dataclass(frozen=True)
class ForecastTrainingOptions:
    as_of: datetime
    weeks: int
    activate: bool = False
    force: bool = False


def forecast_options(weeks: int) -> ForecastOptions:
    """Return the pure module's options from the settings, for a horizon of `weeks`."""
    return ForecastOptions(
        horizon_weeks=weeks,
        origins=settings.FORECAST_BACKTEST_ORIGINS,
        level=settings.FORECAST_INTERVAL_LEVEL,
        min_history_weeks=settings.FORECAST_MIN_HISTORY_WEEKS,
        model_min_weeks=settings.FORECAST_MODEL_MIN_WEEKS,
        threads=settings.FORECAST_THREADS,
    )


def shop_zone() -> ZoneInfo:
    return ZoneInfo(settings.TIME_ZONE)


def train_forecast(options: ForecastTrainingOptions) -> ModelVersion:
    """Forecast from the sales before `options.as_of`, register the version, and activate it if asked and earned."""
    pure_options = forecast_options(options.weeks)
    read = read_weekly_sales(options.as_of, shop_zone())
    if read.first_week is None:
        raise NotEnoughHistory(
            [f"the store has no kept orders before {read.end_week}; at least {required_weeks(pure_options)} complete "
             "weeks of orders are needed"]
        )  # fmt: skip
    history = history_from_frame(read.frame, read.first_week, read.end_week)
    reasons = unmet_minimums(history, pure_options)
    if reasons:
        raise NotEnoughHistory(reasons)
    forecast = forecast_sales(history, pure_options)
    version = register_forecast(options, read, history, forecast, pure_options)
    if options.activate:
        activate_forecast(version, force=options.force)
    return version


def register_forecast(
    options: ForecastTrainingOptions,
    read: WeeklySalesRead,
    history: SalesHistory,
    forecast: SalesForecast,
    pure_options: ForecastOptions,
) -> ModelVersion:
    """Store the forecast as a new candidate version with its weeks, figures, models and card."""
    zone = shop_zone()
    figures = forecast.figures
    metrics = {
        "data": read.report(),
        "backtest": {
            "origins": [history.mondays()[origin].isoformat() for origin in forecast.backtests["units"].origins],
            "horizon_weeks": pure_options.horizon_weeks,
            "level": pure_options.level,
        },
        **{
            target: {
                "overall": figures[target]["overall"],
                "series": {row["series"]: row for row in figures[target]["series"]},
            }
            for target in figures
        },
        "timings": {name: round(seconds, 2) for name, seconds in forecast.timings.items()},
    }
    params = {
        "horizon_weeks": pure_options.horizon_weeks,
        "origins": pure_options.origins,
        "level": pure_options.level,
        "min_history_weeks": pure_options.min_history_weeks,
        "model_min_weeks": pure_options.model_min_weeks,
        "intermittent_adi": pure_options.intermittent_adi,
        "time_zone": settings.TIME_ZONE,
        "lightgbm": {**LIGHTGBM_PARAMS, "seed": pure_options.seed},
        "boost_rounds": BOOST_ROUNDS,
        "training_origin_stride": TRAINING_ORIGIN_STRIDE,
    }
    artifact = {
        target: result.booster.model_to_string() if result.booster is not None else None
        for target, result in forecast.targets.items()
    }
    with transaction.atomic():
        # Lock the task's versions (an aggregate cannot take FOR UPDATE) so two trainings number apart.
        taken = ModelVersion.objects.select_for_update().filter(task=SALES_FORECAST).values_list("version", flat=True)
        number = max(taken, default=0) + 1
        card = forecast_card(
            {"version": number, "as_of": options.as_of, "metrics": metrics, "params": params, "methods": METHODS}
        )
        version = ModelVersion.objects.create(
            task=SALES_FORECAST,
            version=number,
            horizon_days=7 * pure_options.horizon_weeks,
            as_of=options.as_of,
            training_from=datetime.combine(history.first_week, time(), tzinfo=zone),
            training_to=read.cutoff,
            feature_names=list(FEATURE_NAMES),
            params=params,
            metrics=metrics,
            beats_baselines=forecast.beats_seasonal_naive,
            artifact=json.dumps(artifact),
            card=card,
        )
        Forecast.objects.bulk_create(_forecast_rows(version, forecast), batch_size=ROW_BATCH)
        WeeklySales.objects.bulk_create(_history_rows(version, history, forecast), batch_size=ROW_BATCH)
    return version


def _forecast_rows(version: ModelVersion, forecast: SalesForecast):
    units, revenue = forecast.targets["units"], forecast.targets["revenue"]
    for s, name in enumerate(forecast.names):
        for week, values in enumerate(zip(*_arrays(units, s), *_arrays(revenue, s), strict=True)):
            mean, low, high, revenue_mean, revenue_low, revenue_high = (round(float(value), 4) for value in values)
            yield Forecast(
                model_version=version,
                category=name,
                week_start=forecast.weeks[week],
                units=mean,
                units_low=low,
                units_high=high,
                revenue=revenue_mean,
                revenue_low=revenue_low,
                revenue_high=revenue_high,
                method=units.methods[s],
                revenue_method=revenue.methods[s],
            )


def _arrays(target, s: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    points = target.points[s]
    return points.mean, points.low, points.high


def _history_rows(version: ModelVersion, history: SalesHistory, forecast: SalesForecast):
    mondays = history.mondays()
    starts = np.minimum(forecast.backtests["units"].starts, forecast.backtests["revenue"].starts)
    for s, name in enumerate(history.names):
        for week in range(int(starts[s]), history.weeks):
            yield WeeklySales(
                model_version=version,
                category=name,
                week_start=mondays[week],
                units=float(history.units[s, week]),
                revenue=round(float(history.revenue[s, week]), 2),
            )


def activate_forecast(version: ModelVersion, force: bool = False) -> ModelVersion:
    """Make `version` the forecast campaigns and exports read; refuse one that does not beat the seasonal naive."""
    if version.task != SALES_FORECAST:
        raise ActivationRefused(f"{version} is not a sales forecast")
    if version.status == ModelStatus.ACTIVE:
        return version
    if not force and not version.beats_baselines:
        overall = version.metrics.get("units", {}).get("overall", {}).get("methods", {})
        selected, naive = (overall.get(name, {}).get("mase") for name in ("selected", "seasonal_naive"))
        raise ActivationRefused(
            f"{version} does not beat the seasonal naive on overall MASE in the backtest (selected forecasts "
            f"{selected} vs seasonal naive {naive}); activate it with force to override"
        )
    return activate_version(version, force=True)


def roll_back_forecast() -> ModelVersion:
    """Re-activate the forecast that was active before the current one."""
    return roll_back(SALES_FORECAST)


def active_forecast() -> ModelVersion | None:
    return ModelVersion.objects.active(SALES_FORECAST).first()
