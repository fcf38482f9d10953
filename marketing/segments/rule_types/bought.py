"""Bought a product or a category: {"category": "shoes", "within_days": 30} or {"product": "SKU-1"}."""

from datetime import datetime
from typing import Any

from django.db.models import Q

from marketing.models import OrderLine, OrderStatus
from marketing.segments.registry import Facts, RuleError, RuleType, only_keys, rule_types
from marketing.segments.rule_types._windows import clean_window, in_window, window_start


@rule_types.register("bought")
class BoughtRule(RuleType):
    label = "Bought a product or category"
    example = {"category": "shoes", "within_days": 30}

    def clean(self, config: dict[str, Any]) -> dict[str, Any]:
        only_keys(config, {"product", "category", "within_days"})
        named = [key for key in ("product", "category") if config.get(key) not in (None, "")]
        if len(named) != 1:
            raise RuleError("product", "name exactly one of product (a SKU) or category")
        key = named[0]
        if not isinstance(config[key], str):
            raise RuleError(key, f"{config[key]!r} is not text")
        cleaned: dict[str, Any] = {key: config[key].strip()}
        window = clean_window(config)
        if window is not None:
            cleaned["within_days"] = window
        return cleaned

    def condition(self, config: dict[str, Any], now: datetime) -> Q:
        lines = OrderLine.objects.filter(order__status=OrderStatus.COMPLETED, order__placed_at__lte=now)
        start = window_start(config, now)
        if start is not None:
            lines = lines.filter(order__placed_at__gte=start)
        if "product" in config:
            lines = lines.filter(product__sku=config["product"])
        else:
            lines = lines.filter(product__category=config["category"])
        return Q(pk__in=lines.values("order__customer_id"))

    def matches(self, config: dict[str, Any], facts: Facts, now: datetime) -> bool:
        start = window_start(config, now)
        for order in facts.orders:
            if order.status != OrderStatus.COMPLETED or not in_window(order.placed_at, start, now):
                continue
            if ("product" in config and config["product"] in order.skus) or (
                "category" in config and config["category"] in order.categories
            ):
                return True
        return False
