"""Events: {"name": "product_viewed", "op": "at_least", "count": 2, "within_days": 30,
"property": {"key": "category", "value": "shoes"}}. "Did not do X" is at_most 0.

Events up to now count; a property filter compares one property to a text value.
"""

import re
from datetime import datetime
from typing import Any

from django.db.models import Exists, OuterRef, Q

from marketing.event_names import check_event_name
from marketing.models import Event
from marketing.segments.registry import (
    EVERYONE,
    MAX_COUNT,
    Facts,
    RuleError,
    RuleType,
    one_of,
    only_keys,
    rule_types,
    whole_number,
)
from marketing.segments.rule_types._windows import clean_window, in_window, window_start

OPS = ("at_least", "at_most")
PROPERTY_KEY = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")


@rule_types.register("event")
class EventRule(RuleType):
    label = "Did an event"
    example = {"name": "product_viewed", "op": "at_least", "count": 1, "within_days": 30}

    def clean(self, config: dict[str, Any]) -> dict[str, Any]:
        only_keys(config, {"name", "op", "count", "within_days", "property"})
        try:
            name = check_event_name(config.get("name") or "")
        except ValueError as error:
            raise RuleError("name", str(error)) from None
        cleaned: dict[str, Any] = {"name": name, "op": one_of(config, "op", OPS), "count": whole_number(config, "count", maximum=MAX_COUNT)}
        window = clean_window(config)
        if window is not None:
            cleaned["within_days"] = window
        prop = config.get("property")
        if prop is not None:
            if not isinstance(prop, dict) or set(prop) != {"key", "value"}:
                raise RuleError("property", 'must be {"key": ..., "value": ...}')
            if not isinstance(prop["key"], str) or not PROPERTY_KEY.match(prop["key"]) or "__" in prop["key"]:
                raise RuleError("property", f"key {prop['key']!r} must be letters, digits and single underscores")
            if not isinstance(prop["value"], str):
                raise RuleError("property", "value must be text")
            cleaned["property"] = {"key": prop["key"], "value": prop["value"]}
        return cleaned

    def event_names(self, config: dict[str, Any]) -> list[str]:
        return [config["name"]]

    def condition(self, config: dict[str, Any], now: datetime) -> Q:
        events = Event.objects.filter(name=config["name"], occurred_at__lte=now)
        start = window_start(config, now)
        if start is not None:
            events = events.filter(occurred_at__gte=start)
        if "property" in config:
            events = events.filter(**{f"properties__{config['property']['key']}": config["property"]["value"]})
        # "At least N": the customer's N-th matching event exists. Correlated EXISTS stop at that
        # row (an index probe per customer), where counting every customer's events would not.
        theirs = events.filter(customer_id=OuterRef("pk")).order_by()
        count = config["count"]
        if config["op"] == "at_least":
            return EVERYONE if count <= 0 else Q(Exists(theirs[count - 1 : count]))
        return ~Q(Exists(theirs[count : count + 1]))

    def matches(self, config: dict[str, Any], facts: Facts, now: datetime) -> bool:
        start = window_start(config, now)
        prop = config.get("property")
        times = sum(
            1
            for event in facts.events
            if event.name == config["name"]
            and in_window(event.occurred_at, start, now)
            and (prop is None or event.properties.get(prop["key"]) == prop["value"])
        )
        return times >= config["count"] if config["op"] == "at_least" else times <= config["count"]
