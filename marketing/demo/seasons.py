"""The demo shop's calendar: how busy each day is, which days are on sale, when newsletters go out,
and how each category's demand moves against the shop's (its own trend and season).

Days are UTC dates; day 0 is the first day of the generated history.
"""

import math
from dataclasses import dataclass
from datetime import date, timedelta
from functools import cached_property

import numpy as np

# Monday first: online shops are quietest on Friday and Saturday and busiest on Sunday evening.
WEEKDAY_DEMAND = (1.05, 1.0, 0.95, 0.95, 0.9, 0.9, 1.25)
NEWSLETTER_WEEKDAY = 1  # every other Tuesday, in even ISO weeks
YEARLY_PEAK_DAY = 350  # mid-December; the trough falls in mid-June
YEARLY_SWING = 0.25
CYBER_WEEK_DEMAND = 2.0
GIFT_SEASON_DEMAND = 1.35
CHRISTMAS_DEMAND = 0.6
ACQUISITION_CAMPAIGN_DAYS = {(3, 10), (9, 15)}  # (month, day) the spring and autumn ad campaigns start
# Each category's own movement on top of the shop's: (growth per year, seasonal swing, peak day of the
# year). Electronics grow and peak at Black Friday, outdoor gear sells in summer, books are in decline.
CATEGORY_TRENDS = {
    "apparel": (0.0, 0.2, 270),
    "shoes": (0.05, 0.15, 110),
    "home": (0.08, 0.2, 340),
    "beauty": (0.12, 0.1, 345),
    "electronics": (0.3, 0.3, 330),
    "outdoor": (0.0, 0.45, 175),
    "kids": (0.0, 0.15, 350),
    "books": (-0.3, 0.1, 355),
}


@dataclass(frozen=True)
class Calendar:
    start: date
    demand: tuple[float, ...]
    on_sale: tuple[bool, ...]
    campaigns: tuple[str, ...]  # the newsletter sent that day, "" when none
    acquisition_bursts: tuple[int, ...] = ()  # first days of the shop's acquisition pushes
    category_demand: tuple[tuple[float, ...], ...] = ()  # per CATEGORIES entry, per day (category_demand)

    @property
    def days(self) -> int:
        return len(self.demand)

    @property
    def last_day(self) -> date:
        return self.start + timedelta(days=self.days - 1)

    @cached_property
    def category_matrix(self) -> np.ndarray:
        """Return `category_demand` as a (categories, days) array."""
        return np.array(self.category_demand, dtype=float).reshape(len(self.category_demand), self.days)


def black_friday(year: int) -> date:
    """Return the day after the fourth Thursday of November."""
    first = date(year, 11, 1)
    first_thursday = first + timedelta(days=(3 - first.weekday()) % 7)
    return first_thursday + timedelta(days=22)


def is_cyber_week(day: date) -> bool:
    """Tell whether the day falls between the Tuesday before Black Friday and Cyber Monday."""
    return abs((day - black_friday(day.year)).days) <= 3


def is_on_sale(day: date) -> bool:
    """Tell whether the shop runs a sale that day: Cyber Week, January sales, the summer sale."""
    january_sale = day.month == 1 and 2 <= day.day <= 15
    summer_sale = (day.month, day.day) >= (6, 20) and (day.month, day.day) <= (7, 5)
    return january_sale or summer_sale or is_cyber_week(day)


def seasonal_demand(day: date) -> float:
    """Return the day's shopping demand relative to an average day."""
    yearly = 1 + YEARLY_SWING * math.cos(2 * math.pi * (day.timetuple().tm_yday - YEARLY_PEAK_DAY) / 365.25)
    if is_cyber_week(day):
        yearly *= CYBER_WEEK_DEMAND
    elif day.month == 12 and day.day <= 20:
        yearly *= GIFT_SEASON_DEMAND
    elif day.month == 12 and 24 <= day.day <= 26:
        yearly *= CHRISTMAS_DEMAND
    return yearly * WEEKDAY_DEMAND[day.weekday()]


def category_demand(category: str, day: date, end: date) -> float:
    """Return the category's demand on the day relative to the shop's: its growth compounded back from
    `end` (where it is 1) times its own yearly swing, which averages 1 over a year."""
    growth, swing, peak_day = CATEGORY_TRENDS.get(category, (0.0, 0.0, 0))
    years_before_end = (end - day).days / 365.25
    season = 1 + swing * math.cos(2 * math.pi * (day.timetuple().tm_yday - peak_day) / 365.25)
    return (1 + growth) ** -years_before_end * season


def campaign_name(day: date) -> str:
    """Return the name of the newsletter sent that day, or "" when none goes out."""
    if is_cyber_week(day):
        return f"cyber-week-{day.isoformat()}"
    if day.weekday() == NEWSLETTER_WEEKDAY and day.isocalendar().week % 2 == 0:
        return f"newsletter-{day.isoformat()}"
    return ""


def build_calendar(end: date, days: int, categories: tuple[str, ...] = ()) -> Calendar:
    """Return the calendar of the `days` days before `end` (which is not included), with the daily
    demand of each of `categories`."""
    dates = [end - timedelta(days=days - offset) for offset in range(days)]
    return Calendar(
        start=dates[0],
        demand=tuple(seasonal_demand(day) for day in dates),
        on_sale=tuple(is_on_sale(day) for day in dates),
        campaigns=tuple(campaign_name(day) for day in dates),
        acquisition_bursts=acquisition_bursts(dates),
        category_demand=tuple(tuple(category_demand(name, day, end) for day in dates) for name in categories),
    )


def acquisition_bursts(dates: list[date]) -> tuple[int, ...]:
    """Return the days the shop pushes for new customers: each Cyber Week, and spring and autumn ad campaigns."""
    starts = [
        offset
        for offset, day in enumerate(dates)
        if (is_cyber_week(day) and not is_cyber_week(day - timedelta(days=1)))
        or (day.month, day.day) in ACQUISITION_CAMPAIGN_DAYS
    ]
    return tuple(starts)
