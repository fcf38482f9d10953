"""The forecasting methods: one global LightGBM model across series, and the standard baselines.

The baselines are statsforecast's own implementations, fitted per series on its history alone:
- seasonal naive: each week sells what the same week sold a year (52 weeks) before; a series with
  less than a year of history repeats its last 4 weeks instead (all of them, if it has fewer);
- AutoETS: exponential smoothing whose error, trend and damping are chosen by AICc. Its seasonal
  forms accept periods of at most 24 (as in R's forecast::ets, which statsforecast follows), so on
  weekly data it models level and trend, and the yearly pattern is left to the other two methods.
Both give their own prediction intervals. The global model's intervals come from the backtest.
"""

import warnings
from dataclasses import dataclass

import lightgbm as lgb
import numpy as np

from ml.forecast.features import FEATURE_NAMES, YEAR_WEEKS

SEASONAL_NAIVE, AUTO_ETS, MODEL = "seasonal_naive", "auto_ets", "model"
METHODS = (SEASONAL_NAIVE, AUTO_ETS, MODEL)
BASELINES = (SEASONAL_NAIVE, AUTO_ETS)
METHOD_LABELS = {SEASONAL_NAIVE: "Seasonal naive", AUTO_ETS: "AutoETS", MODEL: "LightGBM"}
FALLBACK_SEASON_WEEKS = 4

LIGHTGBM_PARAMS = {
    # MASE and sMAPE judge absolute errors: an L1 objective aims at the median week, which also
    # keeps a promotion spike in one category from pulling every forecast up.
    "objective": "l1",
    "learning_rate": 0.1,
    # Small leaves on purpose: a shop has one Black Friday a year, and a leaf must be able to hold the
    # few dozen rows of that week across categories (LightGBM's default of 20 does; 50 did not).
    "num_leaves": 15,
    "min_data_in_leaf": 20,
    "feature_fraction": 0.8,
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
    "lambda_l2": 1.0,
    "max_bin": 63,
    "verbose": -1,
    "deterministic": True,
    "force_row_wise": True,
}
BOOST_ROUNDS = 150


@dataclass(frozen=True)
class PointsAndInterval:
    mean: np.ndarray
    low: np.ndarray
    high: np.ndarray


def fit_global_model(features: np.ndarray, target: np.ndarray, threads: int, seed: int) -> lgb.Booster:
    """Fit the global model on the scaled rows of every series it learns from."""
    params = {**LIGHTGBM_PARAMS, "num_threads": threads, "seed": seed}
    data = lgb.Dataset(features, target, feature_name=list(FEATURE_NAMES), free_raw_data=True)
    return lgb.train(params, data, num_boost_round=BOOST_ROUNDS)


def predict_global_model(booster: lgb.Booster, features: np.ndarray, level: np.ndarray, threads: int) -> np.ndarray:
    """Return the model's forecasts, scaled back to each row's series and never below zero."""
    if booster.feature_name() != list(FEATURE_NAMES):
        raise ValueError("the forecast model was trained on other features than this code builds")
    if not len(features):
        return np.empty(0)
    return np.clip(booster.predict(features, num_threads=threads), 0.0, None) * level


def seasonal_season(history_weeks: int) -> int:
    """Return the season the seasonal naive repeats for a history of this many weeks."""
    return YEAR_WEEKS if history_weeks >= YEAR_WEEKS else max(1, min(FALLBACK_SEASON_WEEKS, history_weeks))


def _statsforecast():
    # statsforecast brings numba and statsmodels, over a second to import: only forecasting pays for
    # it, not every web request's or worker's start-up through the admin and the campaign triggers.
    from statsforecast import models

    return models


def seasonal_naive(history: np.ndarray, horizon: int, level: int) -> PointsAndInterval:
    """Return statsforecast's seasonal naive forecast of the history, with its interval."""
    result = _statsforecast().SeasonalNaive(season_length=seasonal_season(len(history))).forecast(
        y=history.astype(float), h=horizon, level=[level]
    )
    return _points(result, level)


def auto_ets(history: np.ndarray, horizon: int, level: int) -> PointsAndInterval | None:
    """Return statsforecast's AutoETS forecast of the history, or None when the history is too short to fit."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # optimiser chatter on near-flat series
            result = _statsforecast().AutoETS(season_length=1, model="ZZN").forecast(y=history.astype(float), h=horizon, level=[level])
    except NotImplementedError:
        return None  # "tiny datasets": fewer weeks than the smallest model has parameters plus four
    except Exception:  # noqa: BLE001 - statsforecast raises a bare Exception when no model fits, IndexError on degenerate fits
        return None
    points = _points(result, level)
    return points if np.isfinite(points.mean).all() else None


def _points(result: dict, level: int) -> PointsAndInterval:
    mean = np.clip(np.asarray(result["mean"], dtype=float), 0.0, None)
    low = np.asarray(result.get(f"lo-{level}", mean), dtype=float)
    high = np.asarray(result.get(f"hi-{level}", mean), dtype=float)
    # One week of history leaves no residual to size an interval: it collapses to the forecast.
    low, high = np.where(np.isfinite(low), low, mean), np.where(np.isfinite(high), high, mean)
    return PointsAndInterval(mean, np.clip(np.minimum(low, mean), 0.0, None), np.maximum(high, mean))
