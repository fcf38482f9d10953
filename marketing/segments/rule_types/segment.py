"""Membership of another segment: {"segment": 12}. Uses the other segment's stored membership."""

from datetime import datetime
from typing import Any

from django.db.models import Q

from marketing.models import Segment, SegmentMembership
from marketing.segments.registry import Facts, RuleError, RuleType, only_keys, rule_types, whole_number


@rule_types.register("segment")
class SegmentRuleType(RuleType):
    label = "Member of another segment"
    example = {"segment": 12}

    def clean(self, config: dict[str, Any]) -> dict[str, Any]:
        only_keys(config, {"segment"})
        segment_id = whole_number(config, "segment", minimum=1, maximum=2**63 - 1)
        if not Segment.objects.filter(pk=segment_id).exists():
            raise RuleError("segment", f"there is no segment with id {segment_id}")
        return {"segment": segment_id}

    def condition(self, config: dict[str, Any], now: datetime) -> Q:
        return Q(pk__in=SegmentMembership.objects.filter(segment_id=config["segment"]).values("customer_id"))

    def matches(self, config: dict[str, Any], facts: Facts, now: datetime) -> bool:
        return config["segment"] in facts.segments

    def nested_segments(self, config: dict[str, Any]) -> set[int]:
        return {config["segment"]} if isinstance(config.get("segment"), int) else set()
