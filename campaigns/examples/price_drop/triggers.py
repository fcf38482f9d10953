"""A polled trigger: the price of a product the customer viewed has dropped since they saw it.

The event contract: the shop sends a `product_viewed` event whenever a customer sees a product
page, with the product's `sku` and the `price` it showed (a decimal string such as "19.90", or a
number), and optionally its `currency`:

    {"name": "product_viewed", "properties": {"sku": "P00042", "price": "19.90", "currency": "EUR"}}

Views without a price, with an unknown sku, or in another currency than the product's are ignored.
The current price is `Product.price`, which the product import keeps up to date (and which bumps
`Product.updated_at`, the moment this trigger watches).
"""

from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from campaigns.triggers import Candidate, TriggerError, TriggerType, triggers
from marketing.models import Event, Product

VIEWED_EVENT = "product_viewed"
DEFAULT_VIEWED_WITHIN_DAYS = 30
MAX_VIEWED_WITHIN_DAYS = 365
# Skus per `IN (...)` lookup: far below SQLite's limit on bound parameters (32,766).
SKU_BATCH_SIZE = 1_000
EVENT_CHUNK_SIZE = 5_000


@triggers.register("price_dropped")
class PriceDropped(TriggerType):
    label = "The price of a product the customer viewed dropped"
    example = {"min_drop_percent": 10, "viewed_within_days": 30}
    polled = True

    def clean(self, config: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(config) - set(self.example))
        if unknown:
            raise TriggerError(unknown[0], f"is not a setting of this trigger; it takes {', '.join(self.example)}")
        percent = config.get("min_drop_percent")
        if isinstance(percent, bool) or not isinstance(percent, int | float) or not 0 < percent < 100:
            raise TriggerError("min_drop_percent", "must be a number above 0 and below 100, e.g. 10 for a tenth off")
        days = config.get("viewed_within_days", DEFAULT_VIEWED_WITHIN_DAYS)
        if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= MAX_VIEWED_WITHIN_DAYS:
            raise TriggerError(
                "viewed_within_days", f"must be a whole number of days from 1 to {MAX_VIEWED_WITHIN_DAYS}"
            )
        return {"min_drop_percent": percent, "viewed_within_days": days}

    def candidates(self, config: dict[str, Any], since: datetime | None, now: datetime) -> Iterable[Candidate]:
        views = list(recent_views(now - timedelta(days=config["viewed_within_days"]), since, now))
        products = current_products({sku for sku, *_ in views})
        threshold = Decimal(str(config["min_drop_percent"]))
        best: dict[int, tuple[Decimal, datetime, dict[str, Any]]] = {}
        for sku, customer_id, viewed_at, seen, currency in views:
            product = products.get(sku)
            if product is None or (currency and currency != product["currency"]):
                continue
            drop = (seen - product["price"]) * 100 / seen
            if drop < threshold:
                continue
            # One enrollment per customer: the largest drop, then the latest view, says what to show.
            if customer_id in best and (best[customer_id][0], best[customer_id][1]) >= (drop, viewed_at):
                continue
            best[customer_id] = (
                drop,
                viewed_at,
                {
                    "sku": sku,
                    "name": product["name"],
                    "url": product["url"],
                    "currency": product["currency"],
                    "old_price": f"{seen:.2f}",
                    "new_price": f"{product['price']:.2f}",
                    "drop_percent": float(round(drop, 1)),
                    "viewed_at": viewed_at.isoformat(),
                },
            )
        for customer_id in sorted(best):
            yield Candidate(customer_id, best[customer_id][2])


def recent_views(window_start: datetime, since: datetime | None, now: datetime) -> Iterator[tuple]:
    """Yield (sku, customer_id, viewed_at, price seen, currency) for views in the window that may qualify anew.

    Since the last check, a customer qualifies anew when they viewed a product (new views), or when a
    product they viewed earlier in the window changed; views and changes after `now` wait for the next
    check, so none is counted twice or missed.
    """
    in_window = Event.objects.filter(name=VIEWED_EVENT, occurred_at__gt=window_start, occurred_at__lte=now)
    if since is None:
        yield from _parsed(in_window)
        return
    yield from _parsed(in_window.filter(occurred_at__gt=since))
    changed = list(Product.objects.filter(updated_at__gt=since, updated_at__lte=now).values_list("sku", flat=True))
    for start in range(0, len(changed), SKU_BATCH_SIZE):
        yield from _parsed(
            in_window.filter(occurred_at__lte=since, properties__sku__in=changed[start : start + SKU_BATCH_SIZE])
        )


def _parsed(events) -> Iterator[tuple]:
    rows = events.values_list("customer_id", "occurred_at", "properties").iterator(chunk_size=EVENT_CHUNK_SIZE)
    for customer_id, occurred_at, properties in rows:
        properties = properties if isinstance(properties, dict) else {}
        sku, seen = properties.get("sku"), seen_price(properties.get("price"))
        if isinstance(sku, str) and sku and seen is not None:
            yield sku, customer_id, occurred_at, seen, str(properties.get("currency") or "")


def seen_price(value: Any) -> Decimal | None:
    """Return the price an event says the customer saw, or None when it carries no usable price."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return None
    try:
        price = Decimal(str(value))
    except InvalidOperation:
        return None
    return price if price.is_finite() and price > 0 else None


def current_products(skus: set[str]) -> dict[str, dict[str, Any]]:
    """Return the current name, url, price and currency of each known sku."""
    ordered = sorted(skus)
    products: dict[str, dict[str, Any]] = {}
    for start in range(0, len(ordered), SKU_BATCH_SIZE):
        for row in Product.objects.filter(sku__in=ordered[start : start + SKU_BATCH_SIZE]).values(
            "sku", "name", "url", "price", "currency"
        ):
            products[row["sku"]] = row
    return products
