"""Purchase behaviour: {"measure": "order_count", "op": "at_least", "value": 3, "within_days": 90}.

Measures: order_count, revenue, average_order_value, days_since_last_order. Only completed
orders placed up to now count. A customer without such orders has 0 orders and 0 revenue, and
no average order value or days since the last order, so rules on those two never select them.
Order counts compile to a correlated EXISTS of the customer's N-th order; sums, averages and the
last order to `id IN (SELECT customer_id ... GROUP BY customer_id HAVING ...)`.
"""

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db.models import Count, Exists, F, Max, OuterRef, Q, QuerySet, Sum

from marketing.models import Order, OrderStatus
from marketing.segments.registry import (
    EVERYONE,
    MAX_AMOUNT,
    MAX_COUNT,
    MAX_DAYS,
    MAX_NUMBER_TEXT,
    Facts,
    RuleError,
    RuleType,
    one_of,
    only_keys,
    rule_types,
)
from marketing.segments.rule_types._windows import clean_window, in_window, window_start

MEASURES = ("order_count", "revenue", "average_order_value", "days_since_last_order")
OPS = ("at_least", "at_most")


def _orders(start: datetime | None, now: datetime) -> QuerySet:
    orders = Order.objects.filter(status=OrderStatus.COMPLETED, placed_at__lte=now)
    return orders.filter(placed_at__gte=start) if start is not None else orders


def _customers_where(start: datetime | None, now: datetime, **having: Any) -> Q:
    grouped = _orders(start, now).order_by().values("customer_id").annotate(
        orders=Count("id"), revenue=Sum("total"), last_order=Max("placed_at")
    )
    return Q(pk__in=grouped.filter(**having).values("customer_id"))


@rule_types.register("purchase")
class PurchaseRule(RuleType):
    label = "Purchase behaviour"
    example = {"measure": "order_count", "op": "at_least", "value": 3, "within_days": 90}

    def clean(self, config: dict[str, Any]) -> dict[str, Any]:
        only_keys(config, {"measure", "op", "value", "within_days"})
        measure = one_of(config, "measure", MEASURES)
        cleaned: dict[str, Any] = {"measure": measure, "op": one_of(config, "op", OPS)}
        value = config.get("value")
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise RuleError("value", f"{value!r} is not a number")
        if len(str(value)) > MAX_NUMBER_TEXT:
            raise RuleError("value", f"must be a number of at most {MAX_NUMBER_TEXT} characters")
        try:
            number = Decimal(str(value))
        except ArithmeticError:
            raise RuleError("value", f"{value!r} is not a number") from None
        if not number.is_finite() or number < 0:
            raise RuleError("value", "must be a number of at least 0")
        # Compared before any arithmetic: "1e999999" is short, but its integral value is not.
        maximum = {"order_count": MAX_COUNT, "days_since_last_order": MAX_DAYS}.get(measure, MAX_AMOUNT)
        if number > maximum:
            raise RuleError("value", f"must be at most {maximum:,}")
        if measure in ("order_count", "days_since_last_order") and number != number.to_integral_value():
            raise RuleError("value", "must be a whole number")
        cleaned["value"] = int(number) if measure in ("order_count", "days_since_last_order") else str(number)
        window = clean_window(config)
        if window is not None:
            if measure == "days_since_last_order":
                raise RuleError("within_days", "does not apply to days_since_last_order")
            cleaned["within_days"] = window
        return cleaned

    def condition(self, config: dict[str, Any], now: datetime) -> Q:
        measure, op, start = config["measure"], config["op"], window_start(config, now)
        value = Decimal(str(config["value"]))
        if measure == "order_count":
            # The customer's N-th order exists: an index probe that stops there (see the event rule).
            theirs = _orders(start, now).filter(customer_id=OuterRef("pk")).order_by()
            count = int(value)
            if op == "at_least":
                return EVERYONE if count <= 0 else Q(Exists(theirs[count - 1 : count]))
            return ~Q(Exists(theirs[count : count + 1]))
        if measure == "revenue":
            if op == "at_least":
                return EVERYONE if value <= 0 else _customers_where(start, now, revenue__gte=value)
            return ~_customers_where(start, now, revenue__gt=value)
        if measure == "average_order_value":
            # revenue / orders compared as revenue against value × orders: exact, no division.
            if op == "at_least":
                return _customers_where(start, now, revenue__gte=F("orders") * value)
            return _customers_where(start, now, revenue__lte=F("orders") * value)
        threshold = now - timedelta(days=int(value))
        if op == "at_least":
            return _customers_where(None, now, last_order__lte=threshold)
        return _customers_where(None, now, last_order__gte=threshold)

    def matches(self, config: dict[str, Any], facts: Facts, now: datetime) -> bool:
        measure, op, start = config["measure"], config["op"], window_start(config, now)
        value = Decimal(str(config["value"]))
        orders = [o for o in facts.orders if o.status == OrderStatus.COMPLETED and in_window(o.placed_at, start, now)]
        if measure == "order_count":
            amount = Decimal(len(orders))
        elif measure == "revenue":
            amount = sum((o.total for o in orders), Decimal(0))
        elif measure == "average_order_value":
            if not orders:
                return False
            revenue = sum((o.total for o in orders), Decimal(0))
            return revenue >= value * len(orders) if op == "at_least" else revenue <= value * len(orders)
        else:
            if not orders:
                return False
            last = max(o.placed_at for o in orders)
            threshold = now - timedelta(days=int(value))
            return last <= threshold if op == "at_least" else last >= threshold
        return amount >= value if op == "at_least" else amount <= value
