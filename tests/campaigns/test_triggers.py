"""Every built-in polled trigger through the engine's tick, read after cursors; and the repair of lost event hand-overs."""

from datetime import date, datetime, timedelta

import pytest
from kombu.exceptions import OperationalError

from campaigns.engine import enroll_for_events, poll_triggers, run_recurring, tick
from campaigns.models import Enrollment, EnrollmentState, Message, MessageStatus
from marketing.enqueue import enqueue
from marketing.ingest import store_events
from marketing.models import Customer, Event, Segment, SegmentKind, SegmentMembership, SegmentRule
from marketing.segments.refresh import refresh_segment
from ml.models import PURCHASE_PROPENSITY, ModelStatus, ModelVersion, RunStatus, Score, ScoringRun
from tests.campaigns.test_engine import T0, Clock, make_campaign, received
from tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db

TAG = ("tag", "update_attribute", {"field": "attributes.tagged", "value": True})


@pytest.fixture
def clock(monkeypatch) -> Clock:
    from django.utils import timezone

    clock = Clock(T0)
    monkeypatch.setattr(timezone, "now", clock)
    return clock


def at(clock: Clock, function, moment: datetime):
    """Call an engine function with every part of Kairos, the workers' tasks included, reading `moment` as now."""
    clock.now = moment
    return function()


def germans() -> Segment:
    segment = Segment.objects.create(name="Germans", kind=SegmentKind.DYNAMIC)
    SegmentRule.objects.create(segment=segment, type="attribute", config={"field": "country", "op": "equals", "value": "DE"})
    return segment


def entered(campaign) -> list[tuple]:
    return list(
        Enrollment.objects.filter(campaign=campaign).order_by("customer_id").values_list("customer_id", "state", "trigger_data")
    )


# --- segment_entered / segment_left --------------------------------------------------------------


def test_a_segment_entry_stamped_before_a_tick_and_committed_after_it_is_enrolled_at_the_next_tick(clock, run):
    segment = germans()
    campaign = make_campaign("Welcome", "segment_entered", {"segment": segment.name}, [TAG])
    german, _french = CustomerFactory(country="DE"), CustomerFactory(country="FR")

    # The refresh is stamped when it starts (T0 + 1 s) and commits only after the tick of T0 + 5 s ran.
    run(at, clock, tick, T0 + timedelta(seconds=5))
    run(refresh_segment, segment.pk, T0 + timedelta(seconds=1))
    run(at, clock, tick, T0 + timedelta(seconds=10))
    run(at, clock, tick, T0 + timedelta(seconds=15))

    assert entered(campaign) == [(german.pk, EnrollmentState.COMPLETED, {"segment": segment.pk, "version": 1})]
    assert Customer.objects.get(pk=german.pk).attributes == {"tagged": True}


def test_a_segment_exit_enrolls_who_left_and_nobody_else(clock, run):
    segment = germans()
    leaving, staying = CustomerFactory(country="DE"), CustomerFactory(country="DE")
    refresh_segment(segment.pk, T0 - timedelta(hours=1))
    campaign = make_campaign("Goodbye", "segment_left", {"segment": segment.name}, [TAG])
    Customer.objects.filter(pk=leaving.pk).update(country="AT")

    run(refresh_segment, segment.pk, T0 + timedelta(seconds=1))
    run(at, clock, tick, T0 + timedelta(seconds=5))
    run(at, clock, tick, T0 + timedelta(seconds=10))

    assert entered(campaign) == [(leaving.pk, EnrollmentState.COMPLETED, {"segment": segment.pk, "version": 2})]
    assert Customer.objects.get(pk=staying.pk).attributes == {}


def test_a_segment_trigger_ignores_entries_from_before_its_launch(clock, run):
    segment = germans()
    CustomerFactory(country="DE")
    refresh_segment(segment.pk, T0 - timedelta(hours=1))
    campaign = make_campaign("Welcome", "segment_entered", {"segment": segment.name}, [TAG])

    run(at, clock, tick, T0 + timedelta(seconds=5))

    assert entered(campaign) == []
    assert campaign.__class__.objects.get(pk=campaign.pk).trigger_cursor == 1


# --- schedule and recurring ------------------------------------------------------------------


def test_a_schedule_enrolls_its_audience_once_when_its_time_comes(clock, run):
    audience = Segment.objects.create(name="Newsletter", kind=SegmentKind.STATIC)
    members = [CustomerFactory(), CustomerFactory(), CustomerFactory()]
    CustomerFactory()  # not in the audience
    SegmentMembership.objects.bulk_create(SegmentMembership(segment=audience, customer=c, entered_at=T0) for c in members)
    fires = T0 + timedelta(hours=1)
    campaign = make_campaign("Spring", "schedule", {"at": fires.isoformat()}, [TAG], audience=audience)

    assert run(at, clock, poll_triggers, fires - timedelta(seconds=1)) == 0
    assert run(at, clock, poll_triggers, fires) == 3
    assert run(at, clock, poll_triggers, fires + timedelta(days=1)) == 0
    run(at, clock, tick, fires + timedelta(days=1))

    assert entered(campaign) == [
        (member.pk, EnrollmentState.COMPLETED, {"scheduled_at": fires.isoformat()}) for member in members
    ]


def test_a_recurring_campaign_enrolls_everyone_each_run_and_re_entry_decides(clock, run):
    customers = [CustomerFactory(), CustomerFactory()]
    once = make_campaign("Weekly once", "recurring", {"crontab": "0 9 * * 1"}, [TAG])
    again = make_campaign("Weekly", "recurring", {"crontab": "0 9 * * 1"}, [TAG], reentry="always")

    for campaign in (once, again):
        clock.now = T0
        assert run(run_recurring, campaign.pk) == 2
        clock.now = T0 + timedelta(days=7)
        assert run(run_recurring, campaign.pk) == (0 if campaign is once else 2)

    assert Enrollment.objects.filter(campaign=once).count() == 2
    assert sorted(Enrollment.objects.filter(campaign=again).values_list("customer_id", "trigger_data__at")) == sorted(
        (customer.pk, moment.isoformat()) for customer in customers for moment in (T0, T0 + timedelta(days=7))
    )
    assert set(Enrollment.objects.values_list("state", flat=True)) == {EnrollmentState.COMPLETED}


def test_the_holdout_of_a_set_based_enrollment_is_the_hash_of_campaign_and_customer(clock, run):
    from campaigns.admission import is_holdout

    customers = [CustomerFactory() for _ in range(60)]
    campaign = make_campaign("Held", "schedule", {"at": T0.isoformat()}, [TAG], holdout_percent=30)

    run(at, clock, poll_triggers, T0)

    held = set(Enrollment.objects.filter(state=EnrollmentState.HOLDOUT).values_list("customer_id", flat=True))
    assert held == {customer.pk for customer in customers if is_holdout(campaign, customer.pk)}
    assert 0 < len(held) < 60
    assert Enrollment.objects.filter(campaign=campaign).count() == 60


# --- date_attribute --------------------------------------------------------------------------


def test_a_birthday_enrolls_the_customer_on_their_day_once(clock, run):
    today = T0.date()
    birthday = CustomerFactory(birth_date=date(1990, today.month, today.day))
    tomorrow = today + timedelta(days=1)
    later = CustomerFactory(birth_date=date(1985, tomorrow.month, tomorrow.day))
    CustomerFactory(birth_date=None)
    campaign = make_campaign("Birthday", "date_attribute", {"field": "birth_date"}, [TAG], reentry="always")

    assert run(at, clock, poll_triggers, T0) == 1
    assert run(at, clock, poll_triggers, T0 + timedelta(hours=5)) == 0
    assert run(at, clock, poll_triggers, T0 + timedelta(days=1)) == 1

    assert [(customer_id, data) for customer_id, _, data in entered(campaign)] == [
        (birthday.pk, {"field": "birth_date", "date": f"1990-{today:%m-%d}"}),
        (later.pk, {"field": "birth_date", "date": f"1985-{tomorrow:%m-%d}"}),
    ]


# --- score_crossed ---------------------------------------------------------------------------


def scoring_run(version: ModelVersion, as_of: datetime, scores: dict[int, float], status=RunStatus.DONE) -> ScoringRun:
    run_row = ScoringRun.objects.create(model_version=version, as_of=as_of, status=status, chunk_customers=100)
    Score.objects.bulk_create(
        Score(customer_id=customer_id, model_version=version, probability=p, decile=1, scored_at=as_of)
        for customer_id, p in scores.items()
    )
    return run_row


def test_scores_of_a_run_stamped_before_a_tick_and_finished_after_it_are_enrolled_at_the_next_tick(clock, run):
    version = ModelVersion.objects.create(task=PURCHASE_PROPENSITY, version=1, status=ModelStatus.ACTIVE)
    likely, unlikely = CustomerFactory(), CustomerFactory()
    campaign = make_campaign("Likely", "score_crossed", {"task": PURCHASE_PROPENSITY, "at_least": 0.7}, [TAG])

    # The run reads features as of T0 + 1 s, is still running at the tick of T0 + 5 s, and finishes after it.
    pending = scoring_run(version, T0 + timedelta(seconds=1), {likely.pk: 0.8, unlikely.pk: 0.3}, RunStatus.RUNNING)
    run(at, clock, tick, T0 + timedelta(seconds=5))
    assert entered(campaign) == []
    ScoringRun.objects.filter(pk=pending.pk).update(status=RunStatus.DONE)
    run(at, clock, tick, T0 + timedelta(seconds=10))
    run(at, clock, tick, T0 + timedelta(seconds=15))

    assert entered(campaign) == [
        (
            likely.pk,
            EnrollmentState.COMPLETED,
            {"task": PURCHASE_PROPENSITY, "version": version.pk, "run": pending.pk, "probability": 0.8},
        )
    ]


def test_a_score_trigger_ignores_runs_before_its_launch_and_of_retired_versions(clock, run):
    retired = ModelVersion.objects.create(task=PURCHASE_PROPENSITY, version=1, status=ModelStatus.RETIRED)
    active = ModelVersion.objects.create(task=PURCHASE_PROPENSITY, version=2, status=ModelStatus.ACTIVE)
    early, late = CustomerFactory(), CustomerFactory()
    scoring_run(active, T0 - timedelta(days=1), {early.pk: 0.9})
    campaign = make_campaign("Likely", "score_crossed", {"task": PURCHASE_PROPENSITY, "at_least": 0.5}, [TAG])
    scoring_run(retired, T0, {late.pk: 0.9})

    assert run(at, clock, poll_triggers, T0 + timedelta(seconds=5)) == 0
    assert entered(campaign) == []


# --- event triggers: the tick repairs hand-overs the broker lost -----------------------------


def cart_added(customer, number: int) -> dict:
    return {"id": f"cart-{number}", "customer_id": customer.external_id, "name": "cart_added", "occurred_at": T0.isoformat()}


def test_an_event_stored_while_the_broker_refuses_is_enrolled_at_the_next_tick_exactly_once(
    clock, run, smtp_settings, welcome_template, settings, monkeypatch
):
    settings.ENGINE_EVENT_REPAIR_S = 60
    make_campaign("Cart", "event", {"event": "cart_added"}, [("send", "send_email", {"template": welcome_template.name})])
    customer, other = CustomerFactory(), CustomerFactory()

    def refused(name, *args, **kwargs):
        raise OperationalError("[Errno 111] Connection refused")

    monkeypatch.setattr("campaigns.engine.enqueue", refused)
    report = run(store_events, [cart_added(customer, 1)], T0)
    monkeypatch.setattr("campaigns.engine.enqueue", enqueue)
    assert report.stored_ids and Enrollment.objects.count() == 0

    clock.now = T0 + timedelta(seconds=59)
    run(tick)
    assert Enrollment.objects.count() == 0  # younger than ENGINE_EVENT_REPAIR_S: its fast path may still run
    clock.now = T0 + timedelta(seconds=60)
    run(tick)
    run(tick)
    # The fast path arriving late (a redelivered task) admits the event no second time.
    run(enroll_for_events, report.stored_ids)
    # An event whose fast path ran is not admitted again by the repair.
    second = run(store_events, [cart_added(other, 2)], clock.now)
    clock.now += timedelta(seconds=61)
    run(tick)

    assert sorted(Enrollment.objects.values_list("customer_id", "event_id")) == [
        (customer.pk, report.stored_ids[0]),
        (other.pk, second.stored_ids[0]),
    ]
    assert received(smtp_settings) == {customer.email: 1, other.email: 1}
    assert set(Message.objects.values_list("status", flat=True)) == {MessageStatus.SENT}


def test_the_repair_ignores_imported_history_and_events_from_before_the_launch(clock, run):
    customer = CustomerFactory()
    Event.objects.create(external_id="before", customer=customer, name="cart_added", occurred_at=T0, live=True)
    campaign = make_campaign("Cart", "event", {"event": "cart_added"}, [TAG])
    Event.objects.create(external_id="imported", customer=customer, name="cart_added", occurred_at=T0)

    run(at, clock, tick, T0 + timedelta(minutes=5))

    assert entered(campaign) == []
    assert campaign.__class__.objects.get(pk=campaign.pk).trigger_cursor == Event.objects.get(external_id="imported").pk


def test_the_repair_cursor_stops_before_the_first_event_younger_than_the_wait(clock, run, settings):
    settings.ENGINE_EVENT_REPAIR_S = 60
    campaign = make_campaign("Cart", "event", {"event": "cart_added"}, [TAG])
    first, second = CustomerFactory(), CustomerFactory()
    clock.now = T0 + timedelta(seconds=30)
    Event.objects.create(external_id="young", customer=first, name="cart_added", occurred_at=T0, live=True)
    clock.now = T0  # a lower id stamped later would be the reverse; a higher id stamped earlier must wait too
    old = Event.objects.create(external_id="old", customer=second, name="cart_added", occurred_at=T0, live=True)

    run(at, clock, tick, T0 + timedelta(seconds=61))
    assert entered(campaign) == []
    assert campaign.__class__.objects.get(pk=campaign.pk).trigger_cursor == 0  # as launched: no event before
    run(at, clock, tick, T0 + timedelta(seconds=91))

    assert [customer_id for customer_id, *_ in entered(campaign)] == sorted([first.pk, second.pk])
    assert campaign.__class__.objects.get(pk=campaign.pk).trigger_cursor == old.pk


def test_a_schedule_whose_time_passed_while_no_tick_ran_fires_at_the_next_one(clock, run):
    CustomerFactory()
    campaign = make_campaign("Late", "schedule", {"at": (T0 - timedelta(days=2)).isoformat()}, [TAG])

    assert run(at, clock, poll_triggers, T0) == 1
    assert campaign.__class__.objects.get(pk=campaign.pk).trigger_cursor == 1



@pytest.mark.parametrize("trigger", ["schedule", "segment_entered"])
def test_an_audience_enrolls_with_the_same_statements_for_ten_customers_as_for_a_hundred(
    clock, trigger
):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    segment = germans()
    config = {"at": T0.isoformat()} if trigger == "schedule" else {"segment": segment.name}
    counts = []
    for size in (10, 100):
        Customer.objects.all().delete()
        for _ in range(size):
            CustomerFactory(country="DE")
        campaign = make_campaign(f"{trigger} {size}", trigger, config, [TAG], holdout_percent=20)
        if trigger == "segment_entered":
            refresh_segment(segment.pk, T0 + timedelta(seconds=size))
        clock.now = T0 + timedelta(seconds=size + 1)
        with CaptureQueriesContext(connection) as statements:
            assert poll_triggers(clock.now) > 0
        campaign.status = "paused"
        campaign.save()
        counts.append(len(statements))
        assert Enrollment.objects.filter(campaign=campaign).count() == size

    assert counts[0] == counts[1]
