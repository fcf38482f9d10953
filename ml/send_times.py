"""Each customer's best time to receive e-mail: the local hour they most often open or click.

Pure: engagements come in as local hours of the week (0 = Monday 00:00 ... 167 = Sunday 23:00), opens by
machines already left out. A customer's counts are shrunk towards the shop-wide pattern, as if they had
`prior_strength` extra engagements spread like everyone's, so two opens do not decide a week. With fewer
than `weekly_minimum` engagements the hour of the day is used instead of the hour of the week.

`best_moment` turns a ranking into a moment: the start of the best-ranked allowed local hour within a
24-hour window, computed in UTC steps so clock changes neither skip nor repeat an hour.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

HOURS_PER_WEEK = 168
HOURS_PER_DAY = 24
STORED_WEEKLY_HOURS = 48  # enough for two of them to fall in any 24-hour window, most of the time
WINDOW_HOURS = 24
DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def hour_label(hour_of_week: int) -> str:
    """Return "Tue 08:00" for an hour of the week."""
    return f"{DAYS[hour_of_week // HOURS_PER_DAY]} {hour_of_week % HOURS_PER_DAY:02d}:00"


@dataclass(frozen=True)
class SendTimes:
    """Per customer: hours best first (of the week when `weekly`, else of the day), and how many engagements."""

    customers: np.ndarray
    hours: list[list[int]]
    weekly: np.ndarray  # bool
    engagements: np.ndarray
    shop_hours: list[int]  # shop-wide hours of the week, best first


def local_hours_of_week(moments_utc: pd.Series, zones: pd.Series) -> np.ndarray:
    """Return the local hour of the week of each UTC moment in its customer's zone."""
    result = np.zeros(len(moments_utc), dtype=np.int64)
    moments = pd.to_datetime(moments_utc, utc=True)
    for zone, index in zones.groupby(zones, sort=False).groups.items():
        local = pd.DatetimeIndex(moments.loc[index]).tz_convert(zone)
        result[moments.index.get_indexer(index)] = local.day_of_week * HOURS_PER_DAY + local.hour
    return result


def shop_pattern(hours: np.ndarray) -> np.ndarray:
    """Return the shop-wide share of engagements in each hour of the week (add-one smoothed)."""
    counts = np.bincount(hours, minlength=HOURS_PER_WEEK).astype(np.float64) + 1.0
    return counts / counts.sum()


def fit_send_times(
    customers: np.ndarray, hours: np.ndarray, prior_strength: float, weekly_minimum: int
) -> SendTimes:
    """Rank each customer's hours from their engagements (`customers[i]` engaged at local hour `hours[i]`)."""
    shop = shop_pattern(hours)
    shop_daily = shop.reshape(7, HOURS_PER_DAY).sum(axis=0)
    ids, rows = np.unique(customers, return_inverse=True)
    counts = np.zeros((len(ids), HOURS_PER_WEEK))
    np.add.at(counts, (rows, hours), 1.0)
    totals = counts.sum(axis=1)
    weekly = totals >= weekly_minimum
    ranked: list[list[int]] = []
    weekly_scores = counts + prior_strength * shop
    daily_scores = counts.reshape(len(ids), 7, HOURS_PER_DAY).sum(axis=1) + prior_strength * shop_daily
    # Ties (a customer's two equal hours) go to the hour the shop as a whole prefers.
    weekly_order = np.lexsort((-np.broadcast_to(shop, weekly_scores.shape), -weekly_scores), axis=1)
    daily_order = np.lexsort((-np.broadcast_to(shop_daily, daily_scores.shape), -daily_scores), axis=1)
    for row in range(len(ids)):
        if weekly[row]:
            ranked.append(weekly_order[row, :STORED_WEEKLY_HOURS].tolist())
        else:
            ranked.append(daily_order[row].tolist())
    shop_order = np.argsort(-shop, kind="stable").tolist()
    return SendTimes(ids, ranked, weekly, totals.astype(np.int64), shop_order)


def rank_of(hours: list[int], weekly: bool, shop_hours: list[int]) -> Callable[[int], int]:
    """Return a function giving a local hour of the week its rank: the customer's own first, then the shop's."""
    own = {hour: position for position, hour in enumerate(hours)}
    shop = {hour: position for position, hour in enumerate(shop_hours)}
    fallback = len(hours)

    def rank(hour_of_week: int) -> int:
        key = hour_of_week if weekly else hour_of_week % HOURS_PER_DAY
        if key in own:
            return own[key]
        return fallback + shop[hour_of_week]

    return rank


def best_moment(
    now: datetime,
    zone: ZoneInfo,
    rank: Callable[[int], int],
    window_start: datetime | None = None,
    allowed: Callable[[datetime], bool] = lambda local: True,
) -> datetime:
    """Return the start of the best-ranked allowed local hour in the 24 hours from `window_start`, never before now.

    The hour `now` falls in counts as starting now. When no allowed hour is left in the window, return now:
    the caller's own rules (quiet hours) then decide.
    """
    start = (window_start or now).astimezone(UTC)
    end = start + timedelta(hours=WINDOW_HOURS)
    local_now = now.astimezone(zone)
    current = local_now.replace(minute=0, second=0, microsecond=0).astimezone(UTC)
    best, best_rank = None, None
    moment = current
    while moment < end:
        local = moment.astimezone(zone)
        if allowed(local):
            value = rank(local.weekday() * HOURS_PER_DAY + local.hour)
            if best_rank is None or value < best_rank:
                best, best_rank = moment, value
        moment += timedelta(hours=1)
    if best is None:
        return now
    return max(best, now)


@dataclass(frozen=True)
class SendTimeJudgement:
    customers: int
    model_hits: int
    shop_hits: int

    @property
    def model_rate(self) -> float:
        return self.model_hits / self.customers if self.customers else 0.0

    @property
    def shop_rate(self) -> float:
        return self.shop_hits / self.customers if self.customers else 0.0

    def as_dict(self) -> dict:
        return {
            "customers": self.customers,
            "model": round(self.model_rate, 4),
            "shop_wide": round(self.shop_rate, 4),
        }


def judge_send_times(fitted: SendTimes, next_customers: np.ndarray, next_hours: np.ndarray) -> SendTimeJudgement:
    """Count how often the chosen hour falls within one hour of each customer's next engagement.

    The decision is simulated as a send would make it: on the day of the engagement, the best hour of
    that local day by the customer's ranking, against the shop-wide best hour of the same day.
    """
    own = {customer: row for row, customer in enumerate(fitted.customers.tolist())}
    model_hits = shop_hits = 0
    for customer, hour in zip(next_customers.tolist(), next_hours.tolist(), strict=True):
        day = hour // HOURS_PER_DAY
        row = own.get(customer)
        ranking = rank_of(fitted.hours[row], bool(fitted.weekly[row]), fitted.shop_hours) if row is not None else (
            rank_of([], True, fitted.shop_hours)
        )
        day_hours = range(day * HOURS_PER_DAY, (day + 1) * HOURS_PER_DAY)
        chosen = min(day_hours, key=ranking)
        shop_choice = min(day_hours, key=rank_of([], True, fitted.shop_hours))
        model_hits += _within_an_hour(chosen, hour)
        shop_hits += _within_an_hour(shop_choice, hour)
    return SendTimeJudgement(len(next_customers), model_hits, shop_hits)


def _within_an_hour(chosen: int, actual: int) -> bool:
    difference = abs(chosen - actual) % HOURS_PER_WEEK
    return min(difference, HOURS_PER_WEEK - difference) <= 1
