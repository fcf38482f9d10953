"""Storing segment membership as a diff computed in SQL, and previewing rules before they are saved.

A refresh runs in one transaction holding the segment's row lock: readers see the old membership
until it commits, a second refresh of the same segment skips instead of running alongside, and a
refresh that fails rolls back to the last good membership and records the error.
"""

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import connection, transaction
from django.db.models import Exists, OuterRef, QuerySet
from django.db.models.expressions import RawSQL
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
# A failing segment is tried again after 1, 2, 4 … minutes, at most every 6 hours, never blocking another.
SEGMENT_RETRY_BASE_S = 60
SEGMENT_RETRY_MAX_S = 6 * 3600


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


MATCH_TABLE = "kairos_segment_match"


def _execute(sql: str, params: list | tuple = ()) -> int:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount


def _table(model) -> str:
    return connection.ops.quote_name(model._meta.db_table)


def _insert_select(table: str, columns: str, select_sql: str, params: list) -> int:
    return _execute(f"INSERT INTO {connection.ops.quote_name(table)} ({columns}) {select_sql}", params)


@contextmanager
def _materialized(matching: QuerySet) -> Iterator[str]:
    """Run the segment's query once, into a temporary table of customer ids, inside the transaction.

    Entries, exits and counts are then joins against this table: the rules are evaluated once per
    refresh, and the planner sees real row counts instead of guessing them for a subquery.
    """
    if connection.vendor == "postgresql":
        # Compiling these one-off queries costs seconds at a million customers and saves nothing.
        _execute("SET LOCAL jit = off")
    sql, params = matching.order_by().values("pk").query.sql_with_params()
    _execute(f"DROP TABLE IF EXISTS {MATCH_TABLE}")
    _execute(f"CREATE TEMPORARY TABLE {MATCH_TABLE} (customer_id bigint PRIMARY KEY)")
    _execute(f"INSERT INTO {MATCH_TABLE} (customer_id) {sql}", params)
    if connection.vendor == "postgresql":
        _execute(f"ANALYZE {MATCH_TABLE}")
    yield MATCH_TABLE
    # Dropped only on success: on an error the transaction rolls back, and the table with it.
    _execute(f"DROP TABLE {MATCH_TABLE}")


def _entering_sql(table: str) -> str:
    return (
        f"SELECT m.customer_id FROM {table} m WHERE NOT EXISTS (SELECT 1 FROM {_table(SegmentMembership)} sm "
        "WHERE sm.segment_id = %s AND sm.customer_id = m.customer_id)"
    )


def _leaving_sql(table: str) -> str:
    return (
        f"SELECT sm.customer_id FROM {_table(SegmentMembership)} sm WHERE sm.segment_id = %s "
        f"AND NOT EXISTS (SELECT 1 FROM {table} m WHERE m.customer_id = sm.customer_id)"
    )


def _record_changes(segment: Segment, kind: str, customers_sql: str, version: int, now: datetime) -> int:
    """Insert one SegmentChange per customer id the SQL yields, in one INSERT ... SELECT."""
    select = f"SELECT %s, picked.customer_id, %s, %s, %s FROM ({customers_sql}) picked"
    return _insert_select(
        SegmentChange._meta.db_table, "segment_id, customer_id, kind, version, at", select,
        [segment.pk, kind, version, now, segment.pk],
    )


def refresh_segment(segment_id: int, now: datetime | None = None) -> RefreshResult:
    """Bring the stored membership of one dynamic segment up to date with its rules."""
    now = now or timezone.now()
    try:
        with transaction.atomic():
            return _refresh_locked(segment_id, now)
    except Exception as error:
        failures = (Segment.objects.filter(pk=segment_id).values_list("errors_calculating", flat=True).first() or 0) + 1
        Segment.objects.filter(pk=segment_id).update(
            errors_calculating=failures,
            last_error=f"{type(error).__name__}: {error}"[:2000],
            retry_at=now + retry_delay(failures),
        )
        logger.exception("refresh of segment %s failed; its last membership stays", segment_id)
        raise


def retry_delay(failures: int) -> timedelta:
    """Wait before the next try after this many failed refreshes in a row: doubling from the base, capped."""
    return timedelta(seconds=min(SEGMENT_RETRY_BASE_S * 2 ** (failures - 1), SEGMENT_RETRY_MAX_S))


def _refresh_locked(segment_id: int, now: datetime) -> RefreshResult:
    segment = Segment.objects.select_for_update(skip_locked=True).filter(pk=segment_id).first()
    if segment is None or segment.kind != SegmentKind.DYNAMIC:
        current = Segment.objects.filter(pk=segment_id).values_list("size", "version").first() or (0, 0)
        return RefreshResult(segment_id, False, current[0], 0, 0, current[1])
    specs = [RuleSpec.of(rule) for rule in segment.rules.all()]
    members = SegmentMembership.objects.filter(segment=segment)
    version = segment.version + 1
    with _materialized(matching_customers(segment.match, specs, now)) as table:
        entered = _record_changes(segment, SegmentChangeKind.ENTERED, _entering_sql(table), version, now)
        exited = _record_changes(segment, SegmentChangeKind.EXITED, _leaving_sql(table), version, now)

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
        errors_calculating=0, last_error="", retry_at=None,
    )
    SegmentSize.objects.create(segment=segment, at=now, size=size, entered=entered, exited=exited)
    return RefreshResult(segment.pk, True, size, entered, exited, version if changed else segment.version)


def due_segments(now: datetime | None = None) -> list[int]:
    """Return the ids of the dynamic segments due now, the longest-waiting first, nested ones after those they use.

    The beat task queues one refresh task per id, so a slow or failing segment holds up no other.
    """
    now = now or timezone.now()
    # Segments number in the tens or hundreds: reading them all is cheaper than date arithmetic
    # that SQLite and PostgreSQL spell differently.
    due = [segment for segment in _dynamic_segments() if segment.is_due(now)]
    due.sort(key=lambda segment: (segment.next_refresh_at() is not None, segment.next_refresh_at() or now, segment.pk))
    return [segment.pk for segment in _dependencies_first(due)]


def refresh_due_segments(now: datetime | None = None) -> list[RefreshResult]:
    """Refresh, in this process, every dynamic segment due now; one that fails is recorded and skipped."""
    now = now or timezone.now()
    return _refresh_each(due_segments(now), now)


def refresh_all_segments(now: datetime | None = None) -> list[RefreshResult]:
    """Refresh every dynamic segment now (after an import, say), nested ones last; one that fails is skipped."""
    now = now or timezone.now()
    segments = sorted(_dynamic_segments(), key=lambda segment: segment.pk)
    return _refresh_each([segment.pk for segment in _dependencies_first(segments)], now)


def _dynamic_segments() -> list[Segment]:
    return list(Segment.objects.dynamic().prefetch_related("rules"))


def _refresh_each(segment_ids: list[int], now: datetime) -> list[RefreshResult]:
    results = []
    for segment_id in segment_ids:
        try:
            results.append(refresh_segment(segment_id, now))
        except Exception:  # recorded on the segment by refresh_segment, with its next try
            continue
    return results


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

    for segment in segments:  # in the order given: the longest-waiting first
        place(segment.pk, frozenset())
    return ordered


def preview(match: str, specs: list[RuleSpec], segment_id: int | None, now: datetime | None = None) -> Preview:
    """Count who the rules would select and how that differs from the stored membership; write nothing."""
    now = now or timezone.now()
    with transaction.atomic(), _materialized(matching_customers(match, specs, now)) as table:
        count = _count(f"SELECT count(*) FROM {table}")
        entering = _count(f"SELECT count(*) FROM ({_entering_sql(table)}) e", [segment_id or 0])
        leaving = _count(f"SELECT count(*) FROM ({_leaving_sql(table)}) l", [segment_id or 0])
        sample = list(
            Customer.objects.filter(pk__in=RawSQL(f"SELECT customer_id FROM {table}", ()))
            .order_by("pk")
            .values("pk", "external_id", "email", "first_name", "last_name", "country")[:PREVIEW_SAMPLE_SIZE]
        )
    return Preview(count, entering, leaving, sample)


def _count(sql: str, params: list | tuple = ()) -> int:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()[0]


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
