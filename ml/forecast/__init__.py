"""Weekly sales forecasts per category and for the whole shop, judged against the standard baselines.

Pure: weekly sales arrive as a `SalesHistory` (the Django shell in `ml/forecast_queries.py` reads
them), results leave as a `SalesForecast` of arrays, method names and plain-data figures. Nothing
here knows about Django.

- `history`: the weeks, the minimum history, and each series' profile (too short, intermittent).
- `calendar`: Mondays, and the calendar and holiday features of a week.
- `features`: the global model's rows, from each series' weeks before an origin.
- `methods`: the global LightGBM model and statsforecast's seasonal naive and AutoETS.
- `metrics`: MASE, sMAPE and interval coverage.
- `backtest`: the rolling-origin backtest and the choice of a method per series.
- `sales`: the backtest of each target, then the forecast of each series by its chosen method.
- `card`: the model card.
"""

from ml.forecast.backtest import Backtest, backtest_origins, choose_method
from ml.forecast.history import (
    ALL_SERIES,
    TARGETS,
    ForecastOptions,
    NotEnoughHistory,
    SalesHistory,
    history_from_frame,
    required_weeks,
)
from ml.forecast.methods import METHOD_LABELS, METHODS
from ml.forecast.sales import SalesForecast, TargetForecast, forecast_sales

__all__ = [
    "ALL_SERIES",
    "METHODS",
    "METHOD_LABELS",
    "TARGETS",
    "Backtest",
    "ForecastOptions",
    "NotEnoughHistory",
    "SalesForecast",
    "SalesHistory",
    "TargetForecast",
    "backtest_origins",
    "choose_method",
    "forecast_sales",
    "history_from_frame",
    "required_weeks",
]
