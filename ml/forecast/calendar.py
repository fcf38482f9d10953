"""The shop's weeks: Mondays, and the calendar and holiday features of a week.

A week is named by its Monday (in the shop's time zone, which the Django shell applies when it
buckets orders) and covers Monday to Sunday. The holidays are the ones that move online retail
across Europe and North America: Black Friday and Cyber Monday, the weeks before Christmas,
Christmas itself, New Year, Easter and Valentine's Day. Their dates follow fixed rules, so nothing
is looked up anywhere.
"""

from datetime import date, timedelta

import numpy as np
from dateutil.easter import easter

WEEK = timedelta(days=7)
# Beyond this, "weeks until Christmas" reads as "not yet in the gift season".
GIFT_SEASON_WEEKS = 8

CALENDAR_FEATURES = (
    "week_of_year",
    "month",
    "weeks_to_christmas",
    "black_friday_week",
    "cyber_monday_week",
    "christmas_week",
    "new_year_week",
    "easter_week",
    "valentines_week",
)


def monday_of(day: date) -> date:
    """Return the Monday of the week the day falls in."""
    return day - timedelta(days=day.weekday())


def week_starts(first: date, count: int) -> list[date]:
    """Return `count` consecutive Mondays from `first`, which must be a Monday."""
    if first.weekday() != 0:
        raise ValueError(f"{first} is not a Monday; weeks start on Mondays")
    return [first + k * WEEK for k in range(count)]


def black_friday(year: int) -> date:
    """Return the day after the fourth Thursday of November."""
    first = date(year, 11, 1)
    return first + timedelta(days=(3 - first.weekday()) % 7 + 22)


def _contains(monday: date, day: date) -> bool:
    return monday <= day < monday + WEEK


def week_features(monday: date) -> tuple[float, ...]:
    """Return the week's CALENDAR_FEATURES, in order."""
    thursday = monday + timedelta(days=3)  # the ISO rule: a week belongs to the year and month of its Thursday
    year = thursday.year
    christmas_eve = date(year, 12, 24)
    if christmas_eve < monday:
        christmas_eve = date(year + 1, 12, 24)
    weeks_to_christmas = min((christmas_eve - monday).days // 7, GIFT_SEASON_WEEKS)
    easter_sunday = easter(year)
    return (
        float(thursday.isocalendar().week),
        float(thursday.month),
        float(weeks_to_christmas),
        float(_contains(monday, black_friday(year))),
        float(_contains(monday, black_friday(year) + timedelta(days=3))),
        float(any(_contains(monday, date(year, 12, day)) for day in (24, 25, 26))),
        float(_contains(monday, date(year, 1, 1)) or _contains(monday, date(year + 1, 1, 1))),
        float(_contains(monday, easter_sunday)),  # Holy Week: Good Friday to Easter Sunday
        float(_contains(monday, date(year, 2, 14))),
    )


def calendar_matrix(mondays: list[date]) -> np.ndarray:
    """Return one row of CALENDAR_FEATURES per week."""
    if not mondays:
        return np.empty((0, len(CALENDAR_FEATURES)))
    return np.array([week_features(monday) for monday in mondays], dtype=float)
