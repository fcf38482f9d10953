"""The reference evaluator: segment rules computed in plain Python over in-memory rows.

It is slow and obvious on purpose. Tests generate random customers, orders, events and rules,
and assert that the one SQL query the compiler builds selects exactly who this selects.
"""

from collections.abc import Iterable, Mapping
from datetime import datetime

from marketing.models import Match
from marketing.segments.compiler import RuleSpec
from marketing.segments.registry import Facts, rule_types


def rule_holds(spec: RuleSpec, facts: Facts, now: datetime) -> bool:
    holds = rule_types.get(spec.type).matches(spec.config, facts, now)
    return not holds if spec.negate else holds


def evaluate(match: str, specs: Iterable[RuleSpec], customers: Mapping[int, Facts], now: datetime) -> set[int]:
    """Return the ids of the customers the rules select; no rules select no one."""
    specs = list(specs)
    if not specs:
        return set()
    combine = all if match == Match.ALL else any
    return {customer_id for customer_id, facts in customers.items() if combine(rule_holds(s, facts, now) for s in specs)}
