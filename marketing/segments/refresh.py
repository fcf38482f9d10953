"""Storing segment membership as a diff computed in SQL, and previewing rules before they are saved.

A refresh runs in one transaction holding the segment's row lock: readers see the old membership
until it commits, a second refresh of the same segment skips instead of running alongside, and a
refresh that fails rolls back to the last good membership and records the error.
"""

import logging
from dataclasses import dataclass
from datetime import datetime

from django.db import connection, transaction
from django.db.models import Exists, F, OuterRef, QuerySet
from django.utils import timezone

from marketing.models import (
    Customer,
    Segment,
    SegmentChange,
    SegmentChangeKind,
    SegmentKind,
    SegmentMembership,
    SegmentSize,
)
from marketing.segments.compiler import RuleSpec, matching_customers
from marketing.segments.registry import rule_types

logger = logging.getLogger("kairos")

PREVIEW_SAMPLE_SIZE = 10


@dataclass(frozen=True)
class RefreshResult:
    segment_id: int
    refreshed: bool  # False when another refresh held the segment, or it is a static list
    size: int
    entered: int
    exited: int
    version: int


@dataclass(frozen=True)
class Preview:
    count: int
    entering: int
    leaving: int
    sample: list[dict]


def _insert_select(table: str, columns: str, select_sql: str, params: list) -> int:
    with connection.cursor() as cursor:
        cursor.execute(f"INSERT INTO {connection.ops.quote_name(table)} ({columns}) {select_sql}", params)
        return cursor.rowcount


def _record_changes(segment: Segment, kind: str, customer_ids: QuerySet, version: int, now: datetime) -> int:
    """Insert one SegmentChange per customer id the query yields, in one INSERT ... SELECT."""
    sql, params = customer_ids.query.sql_with_params()
    select = f"SELECT %s, picked.customer_id, %s, %s, %s FROM ({sql}) picked"
    return _insert_select(
        SegmentChange._meta.db_table, "segment_id, customer_id, kind, version, at", select,
        [segment.pk, kind, version, now, *params],
    )


def refresh_segment(segment_id: int, now: datetime | None = None) -> RefreshResult:
    """Bring the stored membership of one dynamic segment up to date with its rules."""
    now = now or timezone.now()
    try:
        with transaction.atomic():
            return _refresh_locked(segment_id, now)
    except Exception as error:
        Segment.objects.filter(pk=segment_id).update(
            errors_calculating=F("errors_calculating") + 1, last_error=f"{type(error).__name__}: {error}"[:2000],
            last_calculated_at=now,
        )
        logger.exception("refresh of segment %s failed; its last membership stays", segment_id)
        raise


def _refresh_locked(segment_id: int, now: datetime) -> RefreshResult:
    segment = Segment.objects.select_for_update(skip_locked=True).filter(pk=segment_id).first()
    if segment is None or segment.kind != SegmentKind.DYNAMIC:
        current = Segment.objects.filter(pk=segment_id).values_list("size", "version").first() or (0, 0)
        return RefreshResult(segment_id, False, current[0], 0, 0, current[1])
    specs = [RuleSpec.of(rule) for rule in segment.rules.all()]
    matching = matching_customers(segment.match, specs, now)
    members = SegmentMembership.objects.filter(segment=segment)
    version = segment.version + 1

    # order_by(): these run as subqueries of INSERT ... SELECT, where a sort would be wasted work.
    entering = matching.exclude(Exists(members.filter(customer_id=OuterRef("pk")))).order_by().values(customer_id=F("pk"))
    leaving = members.exclude(customer_id__in=matching.values("pk")).order_by().values("customer_id")
    entered = _record_changes(segment, SegmentChangeKind.ENTERED, entering, version, now)
    exited = _record_changes(segment, SegmentChangeKind.EXITED, leaving, version, now)

    this_run = SegmentChange.objects.filter(segment=segment, version=version)
    if exited:
        members.filter(customer_id__in=this_run.filter(kind=SegmentChangeKind.EXITED).values("customer_id")).delete()
    if entered:
        entries = this_run.filter(kind=SegmentChangeKind.ENTERED).order_by().values("segment_id", "customer_id", "at")
        sql, params = entries.query.sql_with_params()
        _insert_select(SegmentMembership._meta.db_table, "segment_id, customer_id, entered_at", sql, list(params))
    # Counted, not derived from the last size: deleting customers removes memberships without a refresh.
    size = members.count()
    changed = bool(entered or exited)
    Segment.objects.filter(pk=segment.pk).update(
        size=size, version=version if changed else segment.version, last_calculated_at=now,
        errors_calculating=0, last_error="",
    )
    SegmentSize.objects.create(segment=segment, at=now, size=size, entered=entered, exited=exited)
    return RefreshResult(segment.pk, True, size, entered, exited, version if changed else segment.version)


def refresh_due_segments(now: datetime | None = None) -> list[RefreshResult]:
    """Refresh every dynamic segment whose interval has passed, nested ones after those they use."""
    now = now or timezone.now()
    # Segments number in the tens or hundreds: reading them all is cheaper than date arithmetic
    # that SQLite and PostgreSQL spell differently.
    due = [segment for segment in Segment.objects.dynamic().prefetch_related("rules") if segment.is_due(now)]
    return [refresh_segment(segment.pk, now) for segment in _dependencies_first(due)]


def refresh_all_segments(now: datetime | None = None) -> list[RefreshResult]:
    """Refresh every dynamic segment now (after an import, say), nested ones last."""
    now = now or timezone.now()
    segments = list(Segment.objects.dynamic().prefetch_related("rules"))
    return [refresh_segment(segment.pk, now) for segment in _dependencies_first(segments)]


def _dependencies_first(segments: list[Segment]) -> list[Segment]:
    by_id = {segment.pk: segment for segment in segments}
    needs = {
        segment.pk: {
            nested
            for rule in segment.rules.all()
            if rule.type in rule_types
            for nested in rule_types.get(rule.type).nested_segments(rule.config)
        }
        for segment in segments
    }
    ordered: list[Segment] = []
    placed: set[int] = set()

    def place(segment_id: int, path: frozenset[int]) -> None:
        if segment_id in placed or segment_id not in by_id or segment_id in path:
            return
        for nested in sorted(needs[segment_id]):
            place(nested, path | {segment_id})
        placed.add(segment_id)
        ordered.append(by_id[segment_id])

    for segment_id in sorted(by_id):
        place(segment_id, frozenset())
    return ordered


def preview(match: str, specs: list[RuleSpec], segment_id: int | None, now: datetime | None = None) -> Preview:
    """Count who the rules would select and how that differs from the stored membership."""
    now = now or timezone.now()
    matching = matching_customers(match, specs, now)
    count = matching.count()
    if segment_id is None:
        entering, leaving = count, 0
    else:
        members = SegmentMembership.objects.filter(segment_id=segment_id)
        entering = matching.exclude(Exists(members.filter(customer_id=OuterRef("pk")))).count()
        leaving = members.exclude(customer_id__in=matching.values("pk")).count()
    sample = list(
        matching.order_by("pk").values("pk", "external_id", "email", "first_name", "last_name", "country")[:PREVIEW_SAMPLE_SIZE]
    )
    return Preview(count, entering, leaving, sample)


def freeze_segment(segment: Segment, name: str, now: datetime | None = None) -> Segment:
    """Copy a segment's current members into a new static segment (a list)."""
    now = now or timezone.now()
    with transaction.atomic():
        frozen = Segment.objects.create(
            name=name, kind=SegmentKind.STATIC, match=segment.match, description=f"Frozen from {segment.name} at {now:%Y-%m-%d %H:%M} UTC",
            last_calculated_at=now,
        )
        sql, params = (
            SegmentMembership.objects.filter(segment=segment)
            .order_by()
            .values("customer_id")
            .query.sql_with_params()
        )
        size = _insert_select(
            SegmentMembership._meta.db_table, "segment_id, customer_id, entered_at",
            f"SELECT %s, frozen.customer_id, %s FROM ({sql}) frozen", [frozen.pk, now, *params],
        )
        Segment.objects.filter(pk=frozen.pk).update(size=size, version=1)
        SegmentSize.objects.create(segment=frozen, at=now, size=size, entered=size, exited=0)
    frozen.refresh_from_db()
    return frozen


def members_of(segment: Segment) -> QuerySet:
    """Return the segment's stored members as customers."""
    return Customer.objects.filter(Exists(SegmentMembership.objects.filter(segment=segment, customer_id=OuterRef("pk"))))
