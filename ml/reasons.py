"""A score's reasons in plain words: "last order 8 days ago raises the score", not `days_since_last_order = 8.8`.

Pure. A reason is one feature's SHAP contribution to a customer's score with the customer's own
value of that feature; `describe` says what the value means for a marketer, with units, counts
and "never" spelt out.
"""

import re
from typing import Any

from ml.features import EVENT_LOOKBACK_DAYS, NEVER_DAYS, NO_EVENT_DAYS

# Per engagement event: (one, many) for counts, and what "the last one" is called.
EVENT_WORDS = {
    "session_started": ("visit", "visits", "last visit"),
    "product_viewed": ("product view", "product views", "last product view"),
    "cart_added": ("item added to the cart", "items added to the cart", "last item added to the cart"),
    "checkout_started": ("checkout started", "checkouts started", "last checkout started"),
    "email_opened": ("e-mail opened", "e-mails opened", "last e-mail opened"),
    "email_clicked": ("e-mail click", "e-mail clicks", "last e-mail click"),
}
_WINDOW = re.compile(r"^(?P<what>.+)_(?P<days>\d+)d$")


def describe(feature: str, value: float, horizon_days: int = 90) -> str:
    """Return what a feature's value says about the customer, in a few plain words."""
    if feature.startswith("days_since_"):
        return _since(feature.removeprefix("days_since_"), value)
    window = _WINDOW.match(feature)
    if window and window["what"] in EVENT_WORDS:
        one, many, _ = EVENT_WORDS[window["what"]]
        return f"{_count(value, one, many)} in the last {window['days']} days"
    if window and window["what"] == "orders":
        return f"{_count(value, 'order', 'orders')} in the last {window['days']} days"
    if window and window["what"] == "revenue":
        return f"{_money(value)} spent in the last {window['days']} days"
    return _plain(feature, value, horizon_days)


def _since(what: str, days: float) -> str:
    if what in ("first_order", "last_order"):
        if days >= NEVER_DAYS:
            return "no order yet"
        return f"{what.replace('_', ' ')} {_days_ago(days)}"
    _, _, last = EVENT_WORDS.get(what, (what, what, f"last {what.replace('_', ' ')}"))
    if days >= NO_EVENT_DAYS:
        return f"no {last.removeprefix('last ')} in the last {EVENT_LOOKBACK_DAYS} days"
    return f"{last} {_days_ago(days)}"


def _plain(feature: str, value: float, horizon_days: int) -> str:
    phrases = {
        "tenure_days": lambda: f"known for {_count(round(value), 'day', 'days')}",
        "orders_total": lambda: f"{_count(value, 'order', 'orders')} in all",
        "order_days_total": lambda: f"ordered on {_count(value, 'day', 'different days')}",
        "revenue_total": lambda: f"{_money(value)} spent in all",
        "avg_order_value": lambda: f"average order {_money(value)}",
        "mean_days_between_orders": lambda: (
            "no repeat order yet" if value >= NEVER_DAYS else f"an order every {value:.0f} days on average"
        ),
        "std_days_between_orders": lambda: f"time between orders varies by {value:.0f} days",
        "spend_trend": lambda: _trend(value),
        "items_per_order": lambda: f"{value:.1f} items per order",
        "categories_bought": lambda: f"bought from {_count(value, 'category', 'categories')}",
        "top_category_share": lambda: f"{value:.0%} of spending in one category",
        "returned_share": lambda: f"{value:.0%} of orders cancelled or refunded",
        "bgnbd_p_alive": lambda: f"{value:.0%} chance of still being an active customer (BG/NBD)",
        "bgnbd_p_order": lambda: f"{value:.0%} chance of an order within {horizon_days} days by buying history alone (BG/NBD)",
        "season_index": lambda: (
            f"the next {horizon_days} days sold {value:.2f}× an average stretch of the shop's year, a year ago"
        ),
    }
    phrase = phrases.get(feature)
    return phrase() if phrase else f"{feature.replace('_', ' ')} {value:g}"


def _trend(value: float) -> str:
    if abs(value) < 0.05:
        return "spending steady over the last 90 days against the 90 before"
    return f"spending {'up' if value > 0 else 'down'} over the last 90 days against the 90 before"


def _days_ago(days: float) -> str:
    whole = int(days)
    if whole == 0:
        return "today"
    return f"{_count(whole, 'day', 'days')} ago"


def _count(value: float, one: str, many: str) -> str:
    number = int(round(value))
    return f"{number:,} {one if number == 1 else many}"


def _money(value: float) -> str:
    return f"{value:,.2f}"


def worded(reasons: list[dict[str, Any]], horizon_days: int) -> list[dict[str, Any]]:
    """Return the reasons with their plain-word `text`: "last order 8 days ago raises the score"."""
    return [
        {
            **reason,
            "text": f"{describe(reason['feature'], reason['value'], horizon_days)} "
            f"{'raises' if reason['effect'] > 0 else 'lowers'} the score",
        }
        for reason in reasons
    ]
