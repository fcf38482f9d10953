"""Compiling a segment's rules into one condition on customers, and checking them at save time."""

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db.models import Q, QuerySet

from marketing.models import Customer, Match, Segment, SegmentRule
from marketing.segments.registry import RuleError, rule_types

# Never true, and true once negated; Q(pk__in=[]) would make the whole query fail to compile.
NOTHING = Q(pk__isnull=True)


@dataclass(frozen=True)
class RuleSpec:
    """A rule as data, saved or not: the admin previews rules before they are stored."""

    type: str
    config: dict[str, Any] = field(default_factory=dict)
    negate: bool = False

    @classmethod
    def of(cls, rule: SegmentRule) -> "RuleSpec":
        return cls(rule.type, rule.config, rule.negate)


def rule_condition(spec: RuleSpec, now: datetime) -> Q:
    condition = rule_types.get(spec.type).condition(spec.config, now)
    return ~condition if spec.negate else condition


def compile_rules(match: str, specs: Iterable[RuleSpec], now: datetime) -> Q:
    """Return one Q for the whole segment; a segment without rules matches no one."""
    conditions = [rule_condition(spec, now) for spec in specs]
    if not conditions:
        return NOTHING
    combined = conditions[0]
    for condition in conditions[1:]:
        combined = combined & condition if match == Match.ALL else combined | condition
    return combined


def matching_customers(match: str, specs: Iterable[RuleSpec], now: datetime) -> QuerySet:
    """Return the customers the rules select, as one lazy query."""
    return Customer.objects.filter(compile_rules(match, specs, now))


@dataclass(frozen=True)
class RuleProblem:
    index: int  # position of the rule in the list given
    field: str
    message: str


def check_rules(segment_id: int | None, specs: list[RuleSpec]) -> tuple[list[RuleSpec], list[RuleProblem]]:
    """Return the rules with cleaned configs and every problem found, each naming its rule and key."""
    cleaned, problems = [], []
    for index, spec in enumerate(specs):
        try:
            rule_type = rule_types.get(spec.type)
            cleaned.append(RuleSpec(spec.type, rule_type.clean(dict(spec.config or {})), spec.negate))
        except RuleError as error:
            problems.append(RuleProblem(index, error.field, error.message))
            cleaned.append(spec)
    if segment_id is not None and not problems:
        for index, spec in enumerate(cleaned):
            cycle = _cycle_through(segment_id, spec)
            if cycle:
                problems.append(RuleProblem(index, "segment", f"would make a cycle: {' → '.join(cycle)}"))
    return cleaned, problems


def _cycle_through(segment_id: int, spec: RuleSpec) -> list[str]:
    """Return the names along a cycle that this rule would close back to `segment_id`, or []."""
    names = dict(Segment.objects.values_list("id", "name"))
    edges: dict[int, set[int]] = {}
    for rule in SegmentRule.objects.exclude(segment_id=segment_id).only("segment_id", "type", "config"):
        if rule.type in rule_types:
            try:
                edges.setdefault(rule.segment_id, set()).update(rule_types.get(rule.type).nested_segments(rule.config))
            except RuleError:
                continue
    start = rule_types.get(spec.type).nested_segments(spec.config)
    stack = [(target, [segment_id, target]) for target in start]
    seen: set[int] = set()
    while stack:
        node, path = stack.pop()
        if node == segment_id:
            return [names.get(n, f"#{n}") for n in path]
        if node in seen:
            continue
        seen.add(node)
        stack.extend((nxt, [*path, nxt]) for nxt in edges.get(node, ()))
    return []
