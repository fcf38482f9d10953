"""Weekly sales as the forecasts read them, the minimum history they need, and each series' profile.

A `SalesHistory` holds one row per series (every category, and `ALL_SERIES` for the whole shop)
and one column per week, oldest first, ending with the last complete week before the forecast.
A series starts at its first week with a sale; weeks before it are not zeros but "not sold yet",
so a category launched last spring is not read as a year of empty shelves.
"""

from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd

from ml.forecast.calendar import WEEK, monday_of, week_starts

ALL_SERIES = "__all__"
TARGETS = ("units", "revenue")
# Syntetos, Boylan and Croston (2005): an average inter-demand interval above 1.32 weeks (about one
# week in four without sales) is intermittent demand, where smoothing models misread the zeros.
INTERMITTENT_ADI = 1.32
MAX_HORIZON_WEEKS = 26


class NotEnoughHistory(Exception):
    """The store's history cannot support a forecast; `reasons` names every unmet minimum."""

    def __init__(self, reasons: list[str]):
        self.reasons = reasons
        super().__init__("; ".join(reasons))


@dataclass(frozen=True)
class ForecastOptions:
    horizon_weeks: int = 8
    origins: int = 4  # rolling origins of the backtest
    level: int = 80  # prediction interval, percent
    min_history_weeks: int = 12  # the store as a whole
    model_min_weeks: int = 26  # a series shorter than this falls back to the best baseline
    intermittent_adi: float = INTERMITTENT_ADI
    threads: int = 1
    seed: int = 7

    def __post_init__(self) -> None:
        if not 1 <= self.horizon_weeks <= MAX_HORIZON_WEEKS:
            raise ValueError(f"the horizon is 1 to {MAX_HORIZON_WEEKS} weeks, not {self.horizon_weeks}")
        if self.origins < 2:
            raise ValueError(f"a rolling backtest needs at least 2 origins, not {self.origins}")
        if not 50 <= self.level < 100:
            raise ValueError(f"the interval level is a percentage from 50 to 99, not {self.level}")


@dataclass(frozen=True)
class SalesHistory:
    names: tuple[str, ...]
    first_week: date  # the Monday of column 0
    units: np.ndarray  # (series, weeks)
    revenue: np.ndarray  # (series, weeks)

    @property
    def weeks(self) -> int:
        return self.units.shape[1]

    def target(self, name: str) -> np.ndarray:
        if name not in TARGETS:
            raise ValueError(f"no target {name!r}; the targets are {', '.join(TARGETS)}")
        return self.units if name == "units" else self.revenue

    def mondays(self, extra_weeks: int = 0) -> list[date]:
        """Return the Monday of every history week, then of `extra_weeks` weeks after it."""
        return week_starts(self.first_week, self.weeks + extra_weeks)


def history_from_frame(frame: pd.DataFrame, first_week: date, end_week: date) -> SalesHistory:
    """Return the history of the weeks from `first_week` up to `end_week` (excluded) from rows of
    (series, week_start, units, revenue); weeks without a row are weeks without sales."""
    missing = {"series", "week_start", "units", "revenue"} - set(frame.columns)
    if missing:
        raise ValueError(f"weekly sales lack the columns {', '.join(sorted(missing))}")
    for name, moment in (("first_week", first_week), ("end_week", end_week)):
        if monday_of(moment) != moment:
            raise ValueError(f"{name} {moment} is not a Monday")
    weeks = (end_week - first_week).days // 7
    if weeks < 0:
        raise ValueError(f"end_week {end_week} is before first_week {first_week}")
    names = sorted({str(name) for name in frame["series"]} - {ALL_SERIES})
    names = (ALL_SERIES, *names)
    units, revenue = np.zeros((len(names), weeks)), np.zeros((len(names), weeks))
    if len(frame):
        row = pd.Series(range(len(names)), index=names)[frame["series"].astype(str)].to_numpy()
        column = np.array([(week - first_week).days // 7 for week in frame["week_start"]], dtype=np.int64)
        outside = (column < 0) | (column >= weeks)
        if outside.any():
            week = frame["week_start"].iloc[int(np.flatnonzero(outside)[0])]
            raise ValueError(f"week {week} is outside the history {first_week} to {end_week - WEEK}")
        np.add.at(units, (row, column), frame["units"].to_numpy(dtype=float))
        np.add.at(revenue, (row, column), frame["revenue"].to_numpy(dtype=float))
    return SalesHistory(names=names, first_week=first_week, units=units, revenue=revenue)


def required_weeks(options: ForecastOptions) -> int:
    """Return the weeks of history a forecast with these options needs: the store minimum, and room
    for every backtest origin to see at least one week before its window."""
    return max(options.min_history_weeks, options.horizon_weeks + options.origins)


def unmet_minimums(history: SalesHistory, options: ForecastOptions) -> list[str]:
    """Return one sentence per minimum the history does not reach."""
    needed = required_weeks(options)
    if history.weeks >= needed:
        return []
    backtest = options.horizon_weeks + options.origins
    why = (
        f" (a backtest of {options.origins} origins of {options.horizon_weeks} weeks needs {backtest})"
        if backtest > options.min_history_weeks
        else ""
    )
    return [f"the store has {history.weeks} complete weeks of orders; at least {needed} are needed{why}"]


def series_starts(values: np.ndarray) -> np.ndarray:
    """Return each series' first week with a sale; a series that never sold starts after the history."""
    sold = values > 0
    return np.where(sold.any(axis=1), sold.argmax(axis=1), values.shape[1])


@dataclass(frozen=True)
class SeriesProfile:
    name: str
    history_weeks: int  # from the first sale to the end of the history
    zero_weeks: int
    adi: float | None  # average weeks between weeks with sales; None if it never sold
    fallback: str  # why the series may not use the model; "" when it may
    intermittent: bool

    @property
    def eligible(self) -> bool:
        """Tell whether the series may use the global model's forecast."""
        return not self.fallback

    @property
    def teaches(self) -> bool:
        """Tell whether the global model learns from the series: any series that sells regularly, however
        short its history, since its weeks still show how series like it move."""
        return self.adi is not None and not self.intermittent


def profile_series(name: str, values: np.ndarray, start: int, options: ForecastOptions) -> SeriesProfile:
    """Return the series' profile and, if it has too short a history or too many zero weeks, the reason
    it falls back to the best baseline."""
    history = values[start:]
    weeks, selling = int(history.size), int((history > 0).sum())
    adi = weeks / selling if selling else None
    intermittent = adi is not None and adi > options.intermittent_adi
    if not selling:
        fallback = "no sales in the history"
    elif weeks < options.model_min_weeks:
        fallback = f"{weeks} weeks of history, under the {options.model_min_weeks} a model needs"
    elif intermittent:
        fallback = (
            f"{weeks - selling} of {weeks} weeks without sales (one sale every {adi:.2f} weeks, "
            f"intermittent above {options.intermittent_adi})"
        )
    else:
        fallback = ""
    return SeriesProfile(name, weeks, weeks - selling, round(adi, 4) if adi else None, fallback, intermittent)
