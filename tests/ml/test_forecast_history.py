"""Weekly histories, the minimum a forecast needs, each series' fallback rule, and the calendar of a week."""

from datetime import date

import numpy as np
import pandas as pd
import pytest

from ml.forecast import ALL_SERIES, ForecastOptions, NotEnoughHistory, history_from_frame, required_weeks
from ml.forecast.calendar import CALENDAR_FEATURES, black_friday, week_features
from ml.forecast.history import profile_series, series_starts, unmet_minimums
from ml.forecast.sales import forecast_sales

MONDAY = date(2026, 1, 5)


def frame(rows):
    return pd.DataFrame(rows, columns=["series", "week_start", "units", "revenue"])


def test_history_puts_the_whole_shop_first_and_weeks_without_rows_at_zero():
    rows = frame(
        [
            ("toys", date(2026, 1, 12), 3.0, 30.0),
            ("books", date(2026, 1, 5), 2.0, 20.0),
            (ALL_SERIES, date(2026, 1, 5), 2.0, 25.0),
            (ALL_SERIES, date(2026, 1, 12), 3.0, 30.0),
        ]
    )

    history = history_from_frame(rows, MONDAY, date(2026, 1, 26))

    assert history.names == (ALL_SERIES, "books", "toys")
    assert history.weeks == 3
    assert history.units.tolist() == [[2.0, 3.0, 0.0], [2.0, 0.0, 0.0], [0.0, 3.0, 0.0]]
    assert history.revenue.tolist() == [[25.0, 30.0, 0.0], [20.0, 0.0, 0.0], [0.0, 30.0, 0.0]]
    assert history.mondays(2) == [date(2026, 1, 5), date(2026, 1, 12), date(2026, 1, 19), date(2026, 1, 26), date(2026, 2, 2)]


def test_history_refuses_a_week_that_is_not_a_monday_or_outside_it():
    with pytest.raises(ValueError, match="first_week 2026-01-06 is not a Monday"):
        history_from_frame(frame([]), date(2026, 1, 6), date(2026, 1, 26))
    with pytest.raises(ValueError, match="week 2026-01-26 is outside the history 2026-01-05 to 2026-01-19"):
        history_from_frame(frame([("books", date(2026, 1, 26), 1.0, 1.0)]), MONDAY, date(2026, 1, 26))


def test_series_start_at_their_first_week_with_a_sale():
    assert series_starts(np.array([[0, 0, 3, 0], [1, 0, 0, 0], [0, 0, 0, 0]])).tolist() == [2, 0, 4]


def test_eleven_weeks_are_refused_with_the_minimum_of_twelve():
    history = history_from_frame(frame([("books", MONDAY, 1.0, 1.0)]), MONDAY, date(2026, 3, 23))

    assert history.weeks == 11
    assert unmet_minimums(history, ForecastOptions()) == [
        "the store has 11 complete weeks of orders; at least 12 are needed"
    ]
    with pytest.raises(NotEnoughHistory) as refused:
        forecast_sales(history, ForecastOptions())
    assert refused.value.reasons == ["the store has 11 complete weeks of orders; at least 12 are needed"]


def test_a_longer_horizon_needs_room_for_every_backtest_origin():
    options = ForecastOptions(horizon_weeks=10, origins=4)
    history = history_from_frame(frame([("books", MONDAY, 1.0, 1.0)]), MONDAY, date(2026, 3, 30))

    assert required_weeks(options) == 14
    assert unmet_minimums(history, options) == [
        "the store has 12 complete weeks of orders; at least 14 are needed "
        "(a backtest of 4 origins of 10 weeks needs 14)"
    ]
    assert unmet_minimums(history, ForecastOptions()) == []


@pytest.mark.parametrize(
    ("values", "fallback", "teaches"),
    [
        ([0, 0] + [4] * 30, "", True),
        ([0] * 20 + [4] * 12, "12 weeks of history, under the 26 a model needs", True),
        (
            [4, 0, 0] * 10,
            "20 of 30 weeks without sales (one sale every 3.00 weeks, intermittent above 1.32)",
            False,
        ),
        ([0] * 30, "no sales in the history", False),
    ],
)
def test_a_series_too_short_or_intermittent_falls_back_and_says_why(values, fallback, teaches):
    values = np.array(values, dtype=float)

    profile = profile_series("books", values, int(series_starts(values[None])[0]), ForecastOptions())

    assert profile.fallback == fallback
    assert profile.eligible is (fallback == "")
    assert profile.teaches is teaches


def test_one_week_without_sales_in_four_is_still_regular_demand():
    values = np.array([5, 5, 5, 0] * 8, dtype=float)  # 24 of 32 weeks sell: one sale every 1.33 weeks

    profile = profile_series("books", values, 0, ForecastOptions())

    assert profile.adi == pytest.approx(1.3333)
    assert profile.fallback == "8 of 32 weeks without sales (one sale every 1.33 weeks, intermittent above 1.32)"


@pytest.mark.parametrize(
    ("monday", "expected"),
    [
        (date(2026, 11, 23), {"black_friday_week": 1.0, "cyber_monday_week": 0.0, "weeks_to_christmas": 4.0}),
        (date(2026, 11, 30), {"black_friday_week": 0.0, "cyber_monday_week": 1.0, "weeks_to_christmas": 3.0}),
        (date(2026, 12, 21), {"christmas_week": 1.0, "weeks_to_christmas": 0.0, "new_year_week": 0.0}),
        (date(2025, 12, 29), {"new_year_week": 1.0, "week_of_year": 1.0, "month": 1.0, "christmas_week": 0.0}),
        (date(2026, 3, 30), {"easter_week": 1.0, "month": 4.0}),
        (date(2026, 2, 9), {"valentines_week": 1.0, "week_of_year": 7.0}),
        (date(2026, 7, 6), {"weeks_to_christmas": 8.0, "black_friday_week": 0.0, "easter_week": 0.0}),
    ],
)
def test_week_features_mark_the_retail_calendar(monday, expected):
    features = dict(zip(CALENDAR_FEATURES, week_features(monday), strict=True))

    assert {name: features[name] for name in expected} == expected


def test_black_friday_is_the_day_after_the_fourth_thursday_of_november():
    assert [black_friday(year) for year in (2024, 2025, 2026)] == [date(2024, 11, 29), date(2025, 11, 28), date(2026, 11, 27)]
