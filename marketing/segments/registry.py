"""The registry of segment rule types: what a rule can test, how it compiles, how it is checked."""

from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any, ClassVar

from django.db.models import Q

# True for every customer, and false once negated: an empty Q() would stay empty under ~.
EVERYONE = Q(pk__isnull=False)


class RuleError(ValueError):
    """A rule's configuration is wrong; `field` names the key of the config at fault."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True)
class OrderFact:
    placed_at: datetime
    total: Decimal
    status: str
    skus: frozenset[str] = frozenset()
    categories: frozenset[str] = frozenset()


@dataclass(frozen=True)
class EventFact:
    name: str
    occurred_at: datetime
    properties: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Facts:
    """One customer as the reference evaluator sees it: plain rows, no database."""

    customer: dict[str, Any]
    orders: tuple[OrderFact, ...] = ()
    events: tuple[EventFact, ...] = ()
    suppressed: bool = False
    segments: frozenset[int] = frozenset()  # ids of the segments it is a stored member of
    scores: dict[str, tuple[float, int]] = field(default_factory=dict)  # task → (probability, decile), active model


class RuleType(ABC):
    """A kind of condition. Subclasses register with `@rule_types.register`."""

    key: ClassVar[str]
    label: ClassVar[str]
    example: ClassVar[dict[str, Any]]

    @abstractmethod
    def clean(self, config: dict[str, Any]) -> dict[str, Any]:
        """Return the config validated and normalised, or raise RuleError naming the bad key."""

    @abstractmethod
    def condition(self, config: dict[str, Any], now: datetime) -> Q:
        """Return the rule as a condition on Customer rows (one SQL expression, no query run)."""

    @abstractmethod
    def matches(self, config: dict[str, Any], facts: Facts, now: datetime) -> bool:
        """Return whether one customer satisfies the rule, computed in plain Python."""

    def nested_segments(self, config: dict[str, Any]) -> set[int]:
        """Return the ids of segments this rule depends on (for refusing cycles)."""
        return set()

    def event_names(self, config: dict[str, Any]) -> list[str]:
        """Return the event names the (cleaned) config refers to, so saving can warn of names never received."""
        return []


class Registry:
    """Rule types by key; registering a key twice, or asking for an unknown one, fails loudly."""

    def __init__(self) -> None:
        self._types: dict[str, RuleType] = {}

    def register(self, key: str):
        def decorate(cls: type[RuleType]) -> type[RuleType]:
            if key in self._types:
                raise ValueError(f"segment rule type {key!r} is registered twice")
            cls.key = key
            self._types[key] = cls()
            return cls

        return decorate

    def get(self, key: str) -> RuleType:
        try:
            return self._types[key]
        except KeyError:
            raise RuleError("type", f"unknown rule type {key!r}; known types: {', '.join(sorted(self._types))}") from None

    def __contains__(self, key: str) -> bool:
        return key in self._types

    def choices(self) -> list[tuple[str, str]]:
        return [(key, rule.label) for key, rule in sorted(self._types.items())]

    @contextmanager
    def temporarily(self, key: str, cls: type[RuleType]) -> Iterator[RuleType]:
        """Register a rule type for the duration of a block (tests)."""
        self.register(key)(cls)
        try:
            yield self._types[key]
        finally:
            del self._types[key]


rule_types = Registry()


def parse_day(value: Any, field_name: str) -> date:
    """Return an ISO date from a config value, or raise RuleError naming the field."""
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise RuleError(field_name, f"{value!r} is not a date such as 2024-12-31") from None


# The ranges every number in a rule is held to, checked at save with the key named: a value past
# them would overflow a date, the database or the time a refresh may take.
MAX_DAYS = 36_500  # a hundred years
MAX_COUNT = 1_000_000
MAX_AMOUNT = 10**12  # money and other measures, in the shop's currency
MAX_NUMBER_TEXT = 32  # characters of a number given as text


def whole_number(
    config: dict[str, Any], key: str, *, minimum: int = 0, maximum: int, required: bool = True
) -> int | None:
    """Return config[key] as an int from `minimum` to `maximum`, or raise RuleError naming the key."""
    value = config.get(key)
    if value is None:
        if required:
            raise RuleError(key, "is required")
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise RuleError(key, f"{value!r} is not a whole number")
    if value < minimum:
        raise RuleError(key, f"must be at least {minimum}")
    if value > maximum:
        raise RuleError(key, f"must be at most {maximum:,}")
    return value


def one_of(config: dict[str, Any], key: str, allowed: list[str] | tuple[str, ...]) -> str:
    """Return config[key] if it is one of `allowed`, or raise RuleError listing them."""
    value = config.get(key)
    if value not in allowed:
        raise RuleError(key, f"{value!r} is not one of {', '.join(allowed)}")
    return value


def only_keys(config: dict[str, Any], allowed: set[str]) -> None:
    """Refuse keys the rule type does not know, so a typo is not silently ignored."""
    unknown = sorted(set(config) - allowed)
    if unknown:
        raise RuleError(unknown[0], f"is not a setting of this rule; settings: {', '.join(sorted(allowed))}")
