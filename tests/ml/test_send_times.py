"""Send times without a database: shrinkage towards the shop, the daily fallback, moments across clock changes."""

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from ml.send_times import best_moment, fit_send_times, judge_send_times, local_hours_of_week, rank_of

MONDAY_9 = 9
TUESDAY_18 = 24 + 18


def engagements(pattern: dict[int, dict[int, int]]) -> tuple[np.ndarray, np.ndarray]:
    """Return (customers, hours) from {customer: {hour of week: count}}."""
    customers, hours = [], []
    for customer, counts in pattern.items():
        for hour, count in counts.items():
            customers += [customer] * count
            hours += [hour] * count
    return np.array(customers, dtype=np.int64), np.array(hours, dtype=np.int64)


def test_a_thin_history_is_shrunk_towards_the_shop_and_a_long_one_is_not():
    # given: the shop reads on Monday at 09:00; customer 1 clicked twice at Tuesday 18:00, customer 2 thirty times
    shop = {customer: {MONDAY_9: 10} for customer in range(10, 40)}
    customers, hours = engagements({1: {TUESDAY_18: 2}, 2: {TUESDAY_18: 30}, **shop})

    # when
    gentle = fit_send_times(customers, hours, prior_strength=1.0, weekly_minimum=20)
    strong = fit_send_times(customers, hours, prior_strength=50.0, weekly_minimum=20)

    # then
    row = {customer: index for index, customer in enumerate(gentle.customers.tolist())}
    assert gentle.hours[row[1]][0] == 18 and gentle.weekly[row[1]] == False  # noqa: E712 (NumPy bool)
    assert strong.hours[row[1]][0] == 9
    assert strong.hours[row[2]][0] == TUESDAY_18 and strong.weekly[row[2]] == True  # noqa: E712
    assert strong.shop_hours[0] == MONDAY_9


def test_local_hours_follow_each_customers_zone():
    moments = pd.Series([datetime(2026, 3, 2, 12, 0, tzinfo=UTC)] * 2)
    zones = pd.Series(["Asia/Tokyo", "America/New_York"])

    hours = local_hours_of_week(moments, zones)

    assert hours.tolist() == [21, 7]  # Monday 21:00 in Tokyo, Monday 07:00 in New York


def test_without_the_customers_hours_ahead_the_shops_best_hour_in_the_window_is_chosen():
    # given: the customer's hours are Tuesday 18:00 and Monday 09:00; the shop prefers later hours of the week
    rank = rank_of([TUESDAY_18, MONDAY_9], True, list(range(167, -1, -1)))
    zone = ZoneInfo("Europe/Berlin")

    # when: Monday 10:30 in Berlin, Monday 09:00 has passed and Tuesday 18:00 is more than 24 hours away
    at = best_moment(datetime(2026, 3, 2, 9, 30, tzinfo=UTC), zone, rank)

    # then: the latest hour of the week inside the window, Tuesday 10:00 local
    assert at == datetime(2026, 3, 3, 9, 0, tzinfo=UTC)


def test_the_customers_hour_wins_when_it_is_in_the_window():
    rank = rank_of([TUESDAY_18, MONDAY_9], True, list(range(167, -1, -1)))

    at = best_moment(datetime(2026, 3, 2, 20, 0, tzinfo=UTC), ZoneInfo("Europe/Berlin"), rank)

    assert at == datetime(2026, 3, 3, 17, 0, tzinfo=UTC)


def test_the_current_best_hour_means_now():
    rank = rank_of([9], False, list(range(168)))
    now = datetime(2026, 3, 2, 8, 40, tzinfo=UTC)  # 09:40 in Berlin

    assert best_moment(now, ZoneInfo("Europe/Berlin"), rank) == now


def test_hours_are_counted_in_real_time_across_the_spring_clock_change():
    # 29 March 2026: Berlin's clocks jump from 02:00 to 03:00; the daily 08:00 reader is found at 06:00 UTC.
    rank = rank_of([8], False, list(range(168)))

    at = best_moment(datetime(2026, 3, 28, 22, 0, tzinfo=UTC), ZoneInfo("Europe/Berlin"), rank)

    assert at == datetime(2026, 3, 29, 6, 0, tzinfo=UTC)


def test_judging_compares_with_the_shop_wide_hour_of_the_same_day():
    customers, hours = engagements({1: {TUESDAY_18: 30}, **{c: {24 + 9: 5} for c in range(10, 20)}})
    fitted = fit_send_times(customers, hours, prior_strength=5.0, weekly_minimum=20)

    judged = judge_send_times(fitted, np.array([1, 10]), np.array([TUESDAY_18 + 1, 24 + 9]))

    assert (judged.customers, judged.model_hits, judged.shop_hits) == (2, 2, 1)
