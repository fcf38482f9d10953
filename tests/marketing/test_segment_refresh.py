"""Refreshing segments: only the diff is written, entries and exits are recorded, failures keep the last membership."""

import threading
from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import CommandError, call_command
from django.db import connection, transaction

from marketing.models import (
    Customer,
    Segment,
    SegmentChange,
    SegmentKind,
    SegmentMembership,
    SegmentRule,
    SegmentSize,
)
from marketing.segments.compiler import RuleSpec
from marketing.segments.refresh import (
    due_segments,
    freeze_segment,
    preview,
    refresh_all_segments,
    refresh_due_segments,
    refresh_segment,
)
from tests.factories import CustomerFactory, EventFactory

pytestmark = pytest.mark.django_db

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)


def segment_of(name: str, *rules: tuple[str, dict], kind: str = SegmentKind.DYNAMIC, match: str = "all") -> Segment:
    segment = Segment.objects.create(name=name, kind=kind, match=match)
    for position, (rule_type, config) in enumerate(rules):
        SegmentRule.objects.create(segment=segment, position=position, type=rule_type, config=config)
    return segment


def members(segment: Segment) -> list[str]:
    return sorted(
        Customer.objects.filter(memberships__segment=segment).values_list("external_id", flat=True)
    )


def changes(segment: Segment) -> list[tuple[str, str, int]]:
    return sorted(
        SegmentChange.objects.filter(segment=segment).values_list("customer__external_id", "kind", "version")
    )


def test_first_refresh_enters_every_match_and_records_it():
    CustomerFactory(external_id="DE1", country="DE")
    CustomerFactory(external_id="DE2", country="DE")
    CustomerFactory(external_id="FR1", country="FR")
    germans = segment_of("Germans", ("attribute", {"field": "country", "op": "equals", "value": "DE"}))

    result = refresh_segment(germans.pk, NOW)

    assert (result.refreshed, result.size, result.entered, result.exited, result.version) == (True, 2, 2, 0, 1)
    assert members(germans) == ["DE1", "DE2"]
    assert changes(germans) == [("DE1", "entered", 1), ("DE2", "entered", 1)]
    germans.refresh_from_db()
    assert (germans.size, germans.version, germans.last_calculated_at, germans.last_error) == (2, 1, NOW, "")
    assert list(SegmentSize.objects.filter(segment=germans).values_list("size", "entered", "exited")) == [(2, 2, 0)]


def test_a_later_refresh_writes_only_who_entered_and_who_left():
    stays = CustomerFactory(external_id="STAY", country="DE")
    leaves = CustomerFactory(external_id="LEAVE", country="DE")
    joins = CustomerFactory(external_id="JOIN", country="FR")
    germans = segment_of("Germans", ("attribute", {"field": "country", "op": "equals", "value": "DE"}))
    refresh_segment(germans.pk, NOW)
    first_entry = SegmentMembership.objects.get(segment=germans, customer=stays).entered_at
    Customer.objects.filter(pk=leaves.pk).update(country="FR")
    Customer.objects.filter(pk=joins.pk).update(country="DE")

    result = refresh_segment(germans.pk, NOW + timedelta(hours=1))

    assert (result.size, result.entered, result.exited, result.version) == (2, 1, 1, 2)
    assert members(germans) == ["JOIN", "STAY"]
    assert SegmentMembership.objects.get(segment=germans, customer=stays).entered_at == first_entry
    assert changes(germans) == [("JOIN", "entered", 2), ("LEAVE", "entered", 1), ("LEAVE", "exited", 2), ("STAY", "entered", 1)]


def test_a_refresh_with_nothing_changed_keeps_the_version_and_writes_no_change():
    CustomerFactory(country="DE")
    germans = segment_of("Germans", ("attribute", {"field": "country", "op": "equals", "value": "DE"}))
    refresh_segment(germans.pk, NOW)

    result = refresh_segment(germans.pk, NOW + timedelta(hours=1))

    assert (result.entered, result.exited, result.version) == (0, 0, 1)
    assert SegmentChange.objects.filter(segment=germans).count() == 1
    assert SegmentSize.objects.filter(segment=germans).count() == 2


def test_a_failing_refresh_keeps_the_last_membership_and_records_the_error():
    CustomerFactory(external_id="DE1", country="DE")
    germans = segment_of("Germans", ("attribute", {"field": "country", "op": "equals", "value": "DE"}))
    refresh_segment(germans.pk, NOW)
    SegmentRule.objects.filter(segment=germans).update(type="no_such_rule")
    CustomerFactory(external_id="DE2", country="DE")

    with pytest.raises(ValueError, match="unknown rule type 'no_such_rule'"):
        refresh_segment(germans.pk, NOW + timedelta(hours=1))

    germans.refresh_from_db()
    assert members(germans) == ["DE1"]
    assert (germans.size, germans.version, germans.errors_calculating) == (1, 1, 1)
    assert germans.last_error.startswith("RuleError: type: unknown rule type 'no_such_rule'")
    assert changes(germans) == [("DE1", "entered", 1)]


def test_static_lists_are_not_refreshed():
    CustomerFactory(country="DE")
    vip = segment_of("VIP list", ("attribute", {"field": "country", "op": "equals", "value": "DE"}), kind=SegmentKind.STATIC)

    result = refresh_segment(vip.pk, NOW)

    assert (result.refreshed, result.size, result.entered) == (False, 0, 0)
    assert SegmentMembership.objects.count() == 0


def test_a_segment_without_rules_selects_no_one():
    CustomerFactory()
    empty = segment_of("Empty")

    assert refresh_segment(empty.pk, NOW).size == 0


def test_nested_segments_refresh_after_the_segments_they_use():
    CustomerFactory(external_id="DE-VIEWER", country="DE")
    viewer = CustomerFactory(external_id="FR-VIEWER", country="FR")
    EventFactory(customer=Customer.objects.get(external_id="DE-VIEWER"), name="product_viewed", occurred_at=NOW - timedelta(days=1))
    EventFactory(customer=viewer, name="product_viewed", occurred_at=NOW - timedelta(days=1))
    viewers = segment_of("Viewers", ("event", {"name": "product_viewed", "op": "at_least", "count": 1}))
    german_viewers = segment_of(
        "German viewers",
        ("segment", {"segment": viewers.pk}),
        ("attribute", {"field": "country", "op": "equals", "value": "DE"}),
    )
    # Created last, but used first: the order of refreshing must follow the nesting, not the ids.
    Segment.objects.filter(pk=german_viewers.pk).update(name="A German viewers")

    results = refresh_all_segments(NOW)

    assert [r.segment_id for r in results] == [viewers.pk, german_viewers.pk]
    assert members(german_viewers) == ["DE-VIEWER"]


def test_only_due_segments_refresh_on_schedule():
    CustomerFactory(country="DE")
    fresh = segment_of("Fresh", ("attribute", {"field": "country", "op": "equals", "value": "DE"}))
    stale = segment_of("Stale", ("attribute", {"field": "country", "op": "equals", "value": "DE"}))
    Segment.objects.filter(pk=fresh.pk).update(last_calculated_at=NOW - timedelta(minutes=10), refresh_every_minutes=60)
    Segment.objects.filter(pk=stale.pk).update(last_calculated_at=NOW - timedelta(minutes=90), refresh_every_minutes=60)

    results = refresh_due_segments(NOW)

    assert [r.segment_id for r in results] == [stale.pk]


def test_preview_counts_who_would_enter_and_leave_without_writing():
    CustomerFactory(external_id="DE1", country="DE")
    CustomerFactory(external_id="FR1", country="FR")
    germans = segment_of("Germans", ("attribute", {"field": "country", "op": "equals", "value": "DE"}))
    refresh_segment(germans.pk, NOW)
    french = [RuleSpec("attribute", {"field": "country", "op": "equals", "value": "FR"})]

    result = preview("all", french, germans.pk, NOW)

    assert (result.count, result.entering, result.leaving) == (1, 1, 1)
    assert [row["external_id"] for row in result.sample] == ["FR1"]
    assert members(germans) == ["DE1"]


def test_freezing_copies_the_members_into_a_static_list():
    CustomerFactory(external_id="DE1", country="DE")
    germans = segment_of("Germans", ("attribute", {"field": "country", "op": "equals", "value": "DE"}))
    refresh_segment(germans.pk, NOW)

    frozen = freeze_segment(germans, "Germans in June", NOW)

    assert (frozen.kind, frozen.size) == (SegmentKind.STATIC, 1)
    assert members(frozen) == ["DE1"]


def test_the_command_refreshes_one_segment_by_name(capsys):
    CustomerFactory(country="DE")
    segment_of("Germans", ("attribute", {"field": "country", "op": "equals", "value": "DE"}))

    call_command("refresh_segments", "--segment", "Germans")

    assert capsys.readouterr().out.strip() == "Germans: refreshed; 1 members, 1 entered, 0 left"


def test_the_command_names_the_segments_it_knows_when_one_is_missing():
    segment_of("Germans")

    with pytest.raises(CommandError, match="no segment named 'Gremans'; segments: Germans"):
        call_command("refresh_segments", "--segment", "Gremans")


def test_an_import_refreshes_dynamic_segments_once_committed(tmp_path, django_capture_on_commit_callbacks):
    germans = segment_of("Germans", ("attribute", {"field": "country", "op": "equals", "value": "DE"}))
    path = tmp_path / "c.csv"
    path.write_text("external_id,country\nC1,DE\nC2,FR\n")

    with django_capture_on_commit_callbacks(execute=False) as pending:
        call_command("import_data", "customers", str(path))
    assert members(germans) == []

    for callback in pending:
        callback()

    assert members(germans) == ["C1"]


@pytest.mark.postgres_only
@pytest.mark.django_db(transaction=True)
def test_a_second_refresh_of_the_same_segment_skips_while_the_first_holds_it():
    CustomerFactory(country="DE")
    germans = segment_of("Germans", ("attribute", {"field": "country", "op": "equals", "value": "DE"}))
    locked, release = threading.Event(), threading.Event()

    def hold_the_segment() -> None:
        with transaction.atomic():
            Segment.objects.select_for_update().get(pk=germans.pk)
            locked.set()
            release.wait(10)
        connection.close()

    holder = threading.Thread(target=hold_the_segment)
    holder.start()
    locked.wait(10)
    try:
        result = refresh_segment(germans.pk, NOW)
    finally:
        release.set()
        holder.join()

    assert (result.refreshed, result.entered) == (False, 0)
    assert SegmentMembership.objects.count() == 0
    assert refresh_segment(germans.pk, NOW).entered == 1


def test_size_is_counted_after_customers_were_deleted_between_refreshes():
    CustomerFactory(external_id="DE1", country="DE")
    gone = CustomerFactory(external_id="DE2", country="DE")
    germans = segment_of("Germans", ("attribute", {"field": "country", "op": "equals", "value": "DE"}))
    refresh_segment(germans.pk, NOW)
    gone.delete()

    result = refresh_segment(germans.pk, NOW + timedelta(hours=1))

    assert (result.size, result.entered, result.exited) == (1, 0, 0)
    assert members(germans) == ["DE1"]


def test_a_failing_segment_backs_off_doubling_up_to_a_cap_and_never_blocks_another():
    CustomerFactory(country="DE")
    broken = segment_of("Broken", ("attribute", {"field": "country", "op": "equals", "value": "DE"}))
    fine = segment_of("Fine", ("attribute", {"field": "country", "op": "equals", "value": "DE"}))
    SegmentRule.objects.filter(segment=broken).update(type="no_such_rule")

    moment, waits = NOW, []
    for _ in range(12):
        refresh_due_segments(moment)
        broken.refresh_from_db()
        waits.append((broken.retry_at - moment).total_seconds())
        early = refresh_due_segments(broken.retry_at - timedelta(seconds=1))
        assert broken.pk not in [result.segment_id for result in early]  # not before its next try
        moment = broken.retry_at

    assert waits == [60, 120, 240, 480, 960, 1920, 3840, 7680, 15360, 21600, 21600, 21600]
    assert broken.errors_calculating == 12
    assert broken.last_error.startswith("RuleError: type: unknown rule type 'no_such_rule'")
    fine.refresh_from_db()
    assert (fine.size, fine.errors_calculating) == (1, 0)
    assert SegmentSize.objects.filter(segment=fine).order_by("at").values_list("at", flat=True).first() == NOW


def test_a_repaired_segment_refreshes_at_its_next_try_and_forgets_its_errors():
    CustomerFactory(country="DE")
    germans = segment_of("Germans", ("attribute", {"field": "country", "op": "equals", "value": "DE"}))
    SegmentRule.objects.filter(segment=germans).update(type="no_such_rule")
    refresh_due_segments(NOW)
    SegmentRule.objects.filter(segment=germans).update(type="attribute")

    [result] = refresh_due_segments(NOW + timedelta(minutes=1))

    germans.refresh_from_db()
    assert (result.size, germans.errors_calculating, germans.last_error, germans.retry_at) == (1, 0, "", None)


def test_due_segments_are_listed_longest_waiting_first_nested_ones_after_those_they_use():
    never = segment_of("Never refreshed")
    old = segment_of("Old")
    recent = segment_of("Recent")
    Segment.objects.filter(pk=old.pk).update(last_calculated_at=NOW - timedelta(hours=5))
    Segment.objects.filter(pk=recent.pk).update(last_calculated_at=NOW - timedelta(hours=2))
    fresh = segment_of("Fresh")
    Segment.objects.filter(pk=fresh.pk).update(last_calculated_at=NOW - timedelta(minutes=10))
    outer = segment_of("Uses recent", ("segment", {"segment": recent.pk}))
    Segment.objects.filter(pk=outer.pk).update(last_calculated_at=NOW - timedelta(hours=9))

    assert due_segments(NOW) == [never.pk, recent.pk, outer.pk, old.pk]


def test_the_beat_task_queues_one_refresh_per_due_segment(monkeypatch):
    from marketing import tasks

    first, second = segment_of("First"), segment_of("Second")
    Segment.objects.filter(pk=second.pk).update(last_calculated_at=NOW - timedelta(days=1))
    queued: list[tuple] = []
    monkeypatch.setattr(tasks, "enqueue", lambda name, *args: queued.append((name, *args)))
    monkeypatch.setattr("marketing.segments.refresh.timezone.now", lambda: NOW)

    tasks.refresh_due_segments_task()

    assert queued == [("marketing.refresh_segment", first.pk), ("marketing.refresh_segment", second.pk)]
