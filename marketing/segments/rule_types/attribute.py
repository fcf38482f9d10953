"""A customer attribute: {"field": "country", "op": "in", "value": ["DE", "AT"]}.

Fields come from a whitelist, each with the operators its type allows. Custom attributes are
named "attributes.<key>" with an "attribute_type" of text (default), number or boolean; a rule
on one only selects customers whose value has that JSON type, so "2" (text) is not 2 (number).
"""

import re
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from django.db.models import BooleanField, Case, CharField, F, FloatField, Func, Q, Value, When
from django.db.models.fields.json import KT
from django.db.models.functions import Cast, Upper
from django.db.models.lookups import Contains, Exact, GreaterThan, In, LessThan

from marketing.segments.registry import (
    MAX_AMOUNT,
    MAX_DAYS,
    Facts,
    RuleError,
    RuleType,
    one_of,
    only_keys,
    parse_day,
    rule_types,
    whole_number,
)

FIELDS = {
    "email": "text", "first_name": "text", "last_name": "text", "locale": "text", "timezone": "text",
    "country": "text", "city": "text", "gender": "text", "birth_date": "date", "created_at": "moment",
}
OPERATORS = {
    "text": ("equals", "in", "contains", "is_set"),
    "number": ("equals", "greater_than", "less_than", "is_set"),
    "boolean": ("equals", "is_set"),
    "date": ("before", "after", "within_last_days", "is_set"),
    "moment": ("before", "after", "within_last_days", "is_set"),
}
ATTRIBUTE_KEY = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")


class JsonKind(Func):
    """The JSON type of one key of `attributes`: string, number, true, false, null, object, array."""

    def __init__(self, key: str) -> None:
        super().__init__(F("attributes"), Value(key), output_field=CharField())

    def as_postgresql(self, compiler, connection, **extra):
        column, key = (compiler.compile(expression) for expression in self.source_expressions)
        sql = (
            f"CASE jsonb_typeof({column[0]} -> {key[0]}) WHEN 'boolean' THEN ({column[0]} -> {key[0]})::text "
            f"ELSE jsonb_typeof({column[0]} -> {key[0]}) END"
        )
        return sql, (*column[1], *key[1], *column[1], *key[1], *column[1], *key[1])

    def as_sqlite(self, compiler, connection, **extra):
        column, key = (compiler.compile(expression) for expression in self.source_expressions)
        path = f"'$.\"' || {key[0]} || '\"'"
        sql = (
            f"CASE json_type({column[0]}, {path}) WHEN 'text' THEN 'string' WHEN 'integer' THEN 'number' "
            f"WHEN 'real' THEN 'number' ELSE json_type({column[0]}, {path}) END"
        )
        return sql, (*column[1], *key[1], *column[1], *key[1])


def _kind_of(value: Any) -> str:
    if value is None:
        return "null"
    if value is True or value is False:
        return "true" if value else "false"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (int, float)):
        return "number"
    return "object" if isinstance(value, dict) else "array"


def _text_matches(op: str, stored: str, value: Any) -> bool:
    """Apply a text operator in Python; `contains` ignores case (SQLite folds ASCII letters only)."""
    if op == "equals":
        return stored == value
    if op == "in":
        return stored in value
    if op == "contains":
        return value.upper() in stored.upper()
    return stored != ""


def _never_null(condition: Q) -> Q:
    """Make a JSON condition true or false, never NULL, so that negating it is exact."""
    return Q(Case(When(condition, then=Value(True)), default=Value(False), output_field=BooleanField()))


def _day_start(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=UTC)


@rule_types.register("attribute")
class AttributeRule(RuleType):
    label = "Customer attribute"
    example = {"field": "country", "op": "in", "value": ["DE", "AT"]}

    def clean(self, config: dict[str, Any]) -> dict[str, Any]:
        only_keys(config, {"field", "op", "value", "attribute_type"})
        name = config.get("field")
        if not isinstance(name, str):
            raise RuleError("field", f"{name!r} is not a field; fields: {', '.join(FIELDS)}, attributes.<key>")
        cleaned: dict[str, Any] = {"field": name}
        if name.startswith("attributes."):
            key = name.removeprefix("attributes.")
            if not ATTRIBUTE_KEY.match(key) or "__" in key:
                raise RuleError("field", f"custom attribute {key!r} must be letters, digits and single underscores")
            kind = config.get("attribute_type", "text")
            if kind not in ("text", "number", "boolean"):
                raise RuleError("attribute_type", f"{kind!r} is not one of text, number, boolean")
            cleaned["attribute_type"] = kind
        elif name in FIELDS:
            if "attribute_type" in config:
                raise RuleError("attribute_type", "applies to custom attributes only")
            kind = FIELDS[name]
        else:
            raise RuleError("field", f"{name!r} is not a field; fields: {', '.join(FIELDS)}, attributes.<key>")
        op = one_of(config, "op", OPERATORS[kind])
        cleaned["op"] = op
        value = config.get("value")
        if op == "is_set":
            if value is not None:
                raise RuleError("value", "is_set takes no value")
            return cleaned
        cleaned["value"] = self._clean_value(kind, op, value)
        return cleaned

    def _clean_value(self, kind: str, op: str, value: Any) -> Any:
        if op == "within_last_days":
            return whole_number({"value": value}, "value", minimum=0, maximum=MAX_DAYS)
        if op in ("before", "after"):
            return parse_day(value, "value").isoformat()
        if op == "in":
            if not isinstance(value, list) or not value or not all(isinstance(item, str) for item in value):
                raise RuleError("value", "in takes a non-empty list of text values")
            return value
        if kind == "number":
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise RuleError("value", f"{value!r} is not a number")
            if not -MAX_AMOUNT <= value <= MAX_AMOUNT:  # NaN compares false to everything, so it is refused too
                raise RuleError("value", f"must be a number from {-MAX_AMOUNT:,} to {MAX_AMOUNT:,}")
            return value
        if kind == "boolean":
            if not isinstance(value, bool):
                raise RuleError("value", f"{value!r} is not true or false")
            return value
        if not isinstance(value, str) or (op == "contains" and not value):
            raise RuleError("value", f"{value!r} is not text" if not isinstance(value, str) else "contains needs some text")
        return value

    def condition(self, config: dict[str, Any], now: datetime) -> Q:
        name, op, value = config["field"], config["op"], config.get("value")
        if name.startswith("attributes."):
            return _never_null(self._json_condition(name.removeprefix("attributes."), config["attribute_type"], op, value))
        kind = FIELDS[name]
        if kind == "text":
            return {
                "equals": lambda: Q(**{name: value}),
                "in": lambda: Q(**{f"{name}__in": value}),
                "contains": lambda: Q(**{f"{name}__icontains": value}),
                "is_set": lambda: ~Q(**{name: ""}),
            }[op]()
        if op == "is_set":
            return Q(**{f"{name}__isnull": False})
        if kind == "date":
            bounds = {
                "before": lambda: Q(**{f"{name}__lt": date.fromisoformat(value)}),
                "after": lambda: Q(**{f"{name}__gt": date.fromisoformat(value)}),
                "within_last_days": lambda: Q(**{f"{name}__gte": now.date() - timedelta(days=value), f"{name}__lte": now.date()}),
            }
            return bounds[op]()
        bounds = {
            "before": lambda: Q(**{f"{name}__lt": _day_start(date.fromisoformat(value))}),
            "after": lambda: Q(**{f"{name}__gte": _day_start(date.fromisoformat(value) + timedelta(days=1))}),
            "within_last_days": lambda: Q(**{f"{name}__gte": now - timedelta(days=value), f"{name}__lte": now}),
        }
        return bounds[op]()

    def _json_condition(self, key: str, kind: str, op: str, value: Any) -> Q:
        json_kind = JsonKind(key)
        text = KT(f"attributes__{key}")
        if kind == "boolean":
            if op == "is_set":
                return Q(In(json_kind, ["true", "false"]))
            return Q(Exact(json_kind, "true" if value else "false"))
        if kind == "text":
            condition = {
                "equals": lambda: Exact(text, value),
                "in": lambda: In(text, value),
                "contains": lambda: Contains(Upper(text), value.upper()),
                "is_set": lambda: ~Q(Exact(text, "")),
            }[op]()
            return Q(Exact(json_kind, "string")) & Q(condition)
        is_number = Q(Exact(json_kind, "number"))
        if op == "is_set":
            return is_number
        # Cast only values known to be numbers: PostgreSQL would fail on a text one.
        number = Case(When(is_number, then=Cast(text, FloatField())), default=None, output_field=FloatField())
        compare = {"equals": Exact, "greater_than": GreaterThan, "less_than": LessThan}[op]
        return is_number & Q(compare(number, float(value)))

    def matches(self, config: dict[str, Any], facts: Facts, now: datetime) -> bool:
        name, op, value = config["field"], config["op"], config.get("value")
        if name.startswith("attributes."):
            stored = facts.customer.get("attributes", {}).get(name.removeprefix("attributes."), None)
            present = name.removeprefix("attributes.") in facts.customer.get("attributes", {})
            kind = config["attribute_type"]
            if kind == "text":
                return present and _kind_of(stored) == "string" and _text_matches(op, stored, value)
            if kind == "boolean":
                if not present or _kind_of(stored) not in ("true", "false"):
                    return False
                return True if op == "is_set" else stored is value
            if not present or _kind_of(stored) != "number":
                return False
            if op == "is_set":
                return True
            return {"equals": float(stored) == float(value), "greater_than": float(stored) > float(value),
                    "less_than": float(stored) < float(value)}[op]
        stored = facts.customer.get(name)
        kind = FIELDS[name]
        if kind == "text":
            return _text_matches(op, stored, value)
        if op == "is_set":
            return stored is not None
        if stored is None:
            return False
        if kind == "date":
            today = now.date()
            return {
                "before": lambda: stored < date.fromisoformat(value),
                "after": lambda: stored > date.fromisoformat(value),
                "within_last_days": lambda: today - timedelta(days=value) <= stored <= today,
            }[op]()
        return {
            "before": lambda: stored < _day_start(date.fromisoformat(value)),
            "after": lambda: stored >= _day_start(date.fromisoformat(value) + timedelta(days=1)),
            "within_last_days": lambda: now - timedelta(days=value) <= stored <= now,
        }[op]()
