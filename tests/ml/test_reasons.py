"""Reasons in plain words, with the customer's own value: what a marketer reads on a customer's page."""

import pytest

from ml.features import FEATURE_NAMES, NEVER_DAYS, NO_EVENT_DAYS
from ml.reasons import describe, worded


@pytest.mark.parametrize(
    ("feature", "value", "text"),
    [
        ("days_since_last_order", 8.8274, "last order 8 days ago"),
        ("days_since_last_order", 0.4, "last order today"),
        ("days_since_last_order", 1.2, "last order 1 day ago"),
        ("days_since_first_order", NEVER_DAYS, "no order yet"),
        ("days_since_product_viewed", 2.5, "last product view 2 days ago"),
        ("days_since_email_clicked", NO_EVENT_DAYS, "no e-mail click in the last 365 days"),
        ("orders_90d", 3, "3 orders in the last 90 days"),
        ("orders_30d", 1, "1 order in the last 30 days"),
        ("revenue_365d", 1234.5, "1,234.50 spent in the last 365 days"),
        ("cart_added_7d", 2, "2 items added to the cart in the last 7 days"),
        ("session_started_30d", 1, "1 visit in the last 30 days"),
        ("tenure_days", 412.7, "known for 413 days"),
        ("mean_days_between_orders", NEVER_DAYS, "no repeat order yet"),
        ("mean_days_between_orders", 34.6, "an order every 35 days on average"),
        ("spend_trend", 0.7, "spending up over the last 90 days against the 90 before"),
        ("spend_trend", 0.0, "spending steady over the last 90 days against the 90 before"),
        ("top_category_share", 0.62, "62% of spending in one category"),
        ("returned_share", 0.125, "12% of orders cancelled or refunded"),
        ("bgnbd_p_alive", 0.641, "64% chance of still being an active customer (BG/NBD)"),
        ("bgnbd_p_order", 0.31, "31% chance of an order within 90 days by buying history alone (BG/NBD)"),
    ],
)
def test_a_feature_value_reads_as_plain_words(feature, value, text):
    assert describe(feature, value) == text


def test_every_feature_has_words_of_its_own():
    # No feature falls back to its column name with underscores.
    for name in FEATURE_NAMES:
        assert "_" not in describe(name, 3.0), name


def test_reasons_say_which_way_they_move_the_score_and_keep_their_figures():
    reasons = [
        {"feature": "days_since_last_order", "value": 8.8274, "effect": 0.81},
        {"feature": "orders_90d", "value": 0.0, "effect": -0.25},
    ]

    assert worded(reasons, horizon_days=60) == [
        {**reasons[0], "text": "last order 8 days ago raises the score"},
        {**reasons[1], "text": "0 orders in the last 90 days lowers the score"},
    ]
