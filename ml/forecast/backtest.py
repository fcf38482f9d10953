"""The rolling-origin backtest, and the choice of a method per series.

Origins are spaced `horizon` weeks apart, the last one `horizon` weeks before the end of the
history, so their windows tile the most recent weeks without overlapping (a short history spaces
them closer, down to a week). At each origin every method sees only the weeks before it: the global
model is retrained on rows whose target weeks lie before the origin, from every series that sold
regularly until then, and each baseline is refitted on the series' weeks before the origin.

Each series then uses the method with the lowest mean MASE over the origins where all its allowed
methods forecast; a series that falls back (too short, intermittent) chooses between the baselines
only. That choice is made on the same windows it is judged on, so the figure reported for "the
selected forecasts" is measured differently: at every origin after the first, each series uses the
method that did best on the origins before it, and those choices are scored on that origin alone.
"""

from dataclasses import dataclass, field

import numpy as np

from ml.forecast.calendar import calendar_matrix
from ml.forecast.features import build_grid, expand_rows, training_rows
from ml.forecast.history import (
    ALL_SERIES,
    ForecastOptions,
    NotEnoughHistory,
    SalesHistory,
    SeriesProfile,
    profile_series,
    series_starts,
)
from ml.forecast.methods import (
    AUTO_ETS,
    BASELINES,
    METHODS,
    MODEL,
    SEASONAL_NAIVE,
    auto_ets,
    fit_global_model,
    predict_global_model,
    seasonal_naive,
)
from ml.forecast.metrics import coverage, mase, mean_or_none, naive_scale, smape

SELECTED = "selected"
MEAN, LOW, HIGH = range(3)


@dataclass
class Backtest:
    target: str
    names: tuple[str, ...]
    origins: list[int]  # week indexes; origin o forecasts weeks o .. o + horizon - 1
    horizon: int
    level: int
    starts: np.ndarray  # (series,)
    profiles: list[SeriesProfile]  # as of the end of the history
    forecasts: np.ndarray  # (origins, series, methods, 3, horizon): mean, low, high; NaN where none
    actual: np.ndarray  # (origins, series, horizon)
    scale: np.ndarray  # (origins, series): naive scale of the history before the origin; NaN if none
    residual_quantiles: np.ndarray | None  # (horizon,) of the model's scaled errors, for its intervals
    mase: np.ndarray = field(init=False)  # (origins, series, methods), NaN where undefined
    smape: np.ndarray = field(init=False)
    chosen: list[str] = field(default_factory=list)  # per series, for the forecast
    rolling_choice: np.ndarray | None = None  # (origins, series): method index chosen from earlier origins

    def __post_init__(self) -> None:
        origins, series, methods = self.forecasts.shape[:3]
        self.mase = np.full((origins, series, methods), np.nan)
        self.smape = np.full((origins, series, methods), np.nan)
        for k, s, m in np.ndindex(origins, series, methods):
            points = self.forecasts[k, s, m, MEAN]
            if np.isnan(points).any() or np.isnan(self.actual[k, s]).any():
                continue
            value = mase(self.actual[k, s], points, _scale(self.scale[k, s]))
            self.mase[k, s, m] = np.nan if value is None else value
            self.smape[k, s, m] = smape(self.actual[k, s], points)


def _scale(value: float) -> float | None:
    return None if np.isnan(value) else float(value)


def backtest_origins(weeks: int, options: ForecastOptions) -> list[int]:
    """Return the backtest's origins, oldest first."""
    horizon, count = options.horizon_weeks, options.origins
    last = weeks - horizon
    step = min(horizon, (last - 1) // (count - 1)) if last > 0 else 0
    if step < 1:
        raise NotEnoughHistory(
            [f"a backtest of {count} origins of {horizon} weeks needs {horizon + count} weeks; the store has {weeks}"]
        )
    return [last - step * (count - 1 - k) for k in range(count)]


def run_backtest(history: SalesHistory, target: str, options: ForecastOptions) -> Backtest:
    """Forecast every series from every origin with every method, and choose each series' method."""
    values = history.target(target)
    series, weeks = values.shape
    horizon = options.horizon_weeks
    origins = backtest_origins(weeks, options)
    starts = series_starts(values)
    grid = build_grid(values, starts, calendar_matrix(history.mondays(horizon)))
    forecasts = np.full((len(origins), series, len(METHODS), 3, horizon), np.nan)
    actual = np.full((len(origins), series, horizon), np.nan)
    scale = np.full((len(origins), series), np.nan)
    teaches_at = np.zeros((len(origins), series), dtype=bool)
    for k, origin in enumerate(origins):
        known = np.flatnonzero(starts < origin)
        for s in known:
            past = values[s, starts[s] : origin]
            actual[k, s] = values[s, origin : origin + horizon]
            scale[k, s] = naive_scale(past) or np.nan
            _put(forecasts, k, s, SEASONAL_NAIVE, seasonal_naive(past, horizon, options.level))
            _put(forecasts, k, s, AUTO_ETS, auto_ets(past, horizon, options.level))
            teaches_at[k, s] = profile_series(history.names[s], values[s, :origin], starts[s], options).teaches
        trained = np.flatnonzero(teaches_at[k])
        if len(trained) and len(known):
            features, scaled = training_rows(grid, trained, origin, horizon)
            if len(scaled):
                booster = fit_global_model(features, scaled, options.threads, options.seed)
                matrix, _, _, level = expand_rows(grid, known, np.full(len(known), origin), horizon)
                points = predict_global_model(booster, matrix, level, options.threads).reshape(len(known), horizon)
                forecasts[k, known, METHODS.index(MODEL), MEAN] = points
    profiles = [profile_series(name, values[s], starts[s], options) for s, name in enumerate(history.names)]
    backtest = Backtest(
        target=target,
        names=history.names,
        origins=origins,
        horizon=horizon,
        level=options.level,
        starts=starts,
        profiles=profiles,
        forecasts=forecasts,
        actual=actual,
        scale=scale,
        residual_quantiles=None,
    )
    _size_model_intervals(backtest, np.array([profile.eligible for profile in profiles]))
    backtest.chosen = [
        choose_method(backtest.mase[:, s], backtest.smape[:, s], _allowed(profiles[s])) for s in range(series)
    ]
    backtest.rolling_choice = _rolling_choices(backtest.mase, backtest.smape, profiles)
    return backtest


def _put(forecasts: np.ndarray, k: int, s: int, method: str, points) -> None:
    if points is not None:
        forecasts[k, s, METHODS.index(method)] = np.stack([points.mean, points.low, points.high])


def _allowed(profile: SeriesProfile) -> tuple[int, ...]:
    methods = METHODS if profile.eligible else BASELINES
    return tuple(METHODS.index(method) for method in methods)


def _size_model_intervals(backtest: Backtest, eligible: np.ndarray) -> None:
    """Give the model's backtest forecasts intervals from the other origins' errors, and keep the
    quantiles of all origins' errors for the forecast itself.

    Errors are divided by the series' naive scale, so one quantile per week ahead serves every series:
    a volatile category gets a wide interval, a steady one a narrow one. Sizing each origin's interval
    without its own errors (cross-conformal) keeps its coverage an honest estimate.
    """
    model = METHODS.index(MODEL)
    points = backtest.forecasts[:, :, model, MEAN]
    with np.errstate(invalid="ignore"):
        ratio = np.abs(backtest.actual - points) / backtest.scale[:, :, None]
    usable = eligible[None, :, None] & np.isfinite(ratio)
    share = backtest.level / 100
    if not usable.any():
        return
    for k in range(len(backtest.origins)):
        others = np.delete(ratio, k, axis=0)
        mask = np.delete(usable, k, axis=0)
        quantiles = np.array(
            [np.quantile(others[:, :, j][mask[:, :, j]], share) if mask[:, :, j].any() else np.nan
             for j in range(backtest.horizon)]
        )  # fmt: skip
        width = quantiles[None, :] * backtest.scale[k][:, None]
        width = np.where(np.isfinite(width), width, 0.0)
        backtest.forecasts[k, :, model, LOW] = np.clip(points[k] - width, 0.0, None)
        backtest.forecasts[k, :, model, HIGH] = points[k] + width
        backtest.forecasts[k, :, model, LOW][np.isnan(points[k])] = np.nan
        backtest.forecasts[k, :, model, HIGH][np.isnan(points[k])] = np.nan
    backtest.residual_quantiles = np.array(
        [np.quantile(ratio[:, :, j][usable[:, :, j]], share) for j in range(backtest.horizon)]
    )


def choose_method(mase_errors: np.ndarray, smape_errors: np.ndarray, allowed: tuple[int, ...]) -> str:
    """Return the allowed method with the lowest mean MASE over the origins where all allowed methods
    have one; without any, the lowest sMAPE the same way; without that either, the seasonal naive.

    `mase_errors` and `smape_errors` are (origins, methods). Ties go to the simpler method.
    """
    for errors in (mase_errors, smape_errors):
        candidates = errors[:, list(allowed)]
        common = ~np.isnan(candidates).any(axis=1)
        if common.any():
            means = candidates[common].mean(axis=0)
            return METHODS[allowed[int(np.argmin(means))]]  # argmin keeps the first, simplest, of equals
    return SEASONAL_NAIVE


def _rolling_choices(mase_errors: np.ndarray, smape_errors: np.ndarray, profiles: list[SeriesProfile]) -> np.ndarray:
    """Return, per origin after the first and per series, the method chosen from the origins before it."""
    origins, series, _ = mase_errors.shape
    choice = np.full((origins, series), -1)
    for k in range(1, origins):
        for s in range(series):
            method = METHODS.index(choose_method(mase_errors[:k, s], smape_errors[:k, s], _allowed(profiles[s])))
            # A method that cannot forecast this origin (a baseline on too short a history) gives way.
            if np.isnan(mase_errors[k, s, method]) and np.isnan(smape_errors[k, s, method]):
                method = METHODS.index(SEASONAL_NAIVE)
            choice[k, s] = method
    return choice


def series_figures(backtest: Backtest) -> list[dict]:
    """Return, per series, its profile, the chosen method and each method's MASE, sMAPE and interval coverage."""
    mase_errors, smape_errors = backtest.mase, backtest.smape
    rows = []
    for s, name in enumerate(backtest.names):
        profile = backtest.profiles[s]
        figures = {}
        for m, method in enumerate(METHODS):
            evaluated = ~np.isnan(backtest.forecasts[:, s, m, MEAN]).any(axis=1) & ~np.isnan(backtest.actual[:, s]).any(
                axis=1
            )
            figures[method] = {
                "mase": _rounded(mean_or_none([_scale(value) for value in mase_errors[:, s, m]])),
                "smape": _rounded(mean_or_none([_scale(value) for value in smape_errors[:, s, m]])),
                "coverage": _rounded(
                    mean_or_none(
                        [
                            coverage(
                                backtest.actual[k, s],
                                backtest.forecasts[k, s, m, LOW],
                                backtest.forecasts[k, s, m, HIGH],
                            )
                            for k in np.flatnonzero(evaluated)
                        ]
                    )
                ),  # fmt: skip
                "origins": int(evaluated.sum()),
            }
        rows.append(
            {
                "series": name,
                "history_weeks": profile.history_weeks,
                "zero_weeks": profile.zero_weeks,
                "adi": profile.adi,
                "fallback": profile.fallback,
                "method": backtest.chosen[s],
                "figures": figures,
            }
        )
    return rows


def overall_figures(backtest: Backtest) -> dict:
    """Return every method's and the selected forecasts' mean MASE and sMAPE over the categories, on the
    same windows: the origins after the first, where every method forecast and the scale is defined."""
    mase_errors, smape_errors = backtest.mase, backtest.smape
    categories = [s for s, name in enumerate(backtest.names) if name != ALL_SERIES]
    # A method that forecast nothing (no series the model could learn from) is left out, not held against the rest.
    columns = {
        method: m for m, method in enumerate(METHODS) if not np.isnan(backtest.forecasts[:, categories, m, MEAN]).all()
    }
    per_series: dict[str, dict[str, list[float]]] = {name: {"mase": [], "smape": []} for name in (*METHODS, SELECTED)}
    evaluated = 0
    for s in categories:
        windows = {name: {"mase": [], "smape": []} for name in per_series}
        for k in range(1, len(backtest.origins)):
            chosen = backtest.rolling_choice[k, s]
            row = mase_errors[k, s, list(columns.values())]
            if chosen < 0 or np.isnan(row).any() or np.isnan(mase_errors[k, s, chosen]):
                continue
            for name, column in (*columns.items(), (SELECTED, chosen)):
                windows[name]["mase"].append(mase_errors[k, s, column])
                windows[name]["smape"].append(smape_errors[k, s, column])
        if not windows[SELECTED]["mase"]:
            continue
        evaluated += 1
        for name, figures in windows.items():
            for metric, values in figures.items():
                if values:
                    per_series[name][metric].append(float(np.mean(values)))
    overall = {
        name: {metric: _rounded(mean_or_none(values)) for metric, values in figures.items()}
        for name, figures in per_series.items()
    }
    chosen_counts = {method: backtest.chosen.count(method) for method in METHODS}
    selected, naive = overall[SELECTED]["mase"], overall[SEASONAL_NAIVE]["mase"]
    return {
        "methods": overall,
        "categories_evaluated": evaluated,
        "origins_evaluated": max(len(backtest.origins) - 1, 0),
        "chosen": chosen_counts,
        "beats_seasonal_naive": selected is not None and naive is not None and selected < naive,
    }


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(float(value), 4)
