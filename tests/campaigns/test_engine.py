"""The campaign engine with a controllable clock: enrollments, waits, branches, sends, and the faults of RELIABILITY.md."""

import threading
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection, transaction
from django.utils import timezone

from campaigns.delivery import dispatch_due_messages, send_messages
from campaigns.engine import CampaignError, advance, dispatch_due, enroll_by_hand, enroll_for_events, launch, tick
from campaigns.models import Campaign, Enrollment, EnrollmentState, Message, MessageStatus, Step, StepVisit
from marketing.models import Consent, Event, Suppression, SuppressionReason
from tests.conftest import OFFICE_HOURS
from tests.factories import CustomerFactory, OrderFactory

# Outside quiet hours in Berlin (11:00 local).
T0 = OFFICE_HOURS


class Clock:
    """The time every part of Kairos reads (django.utils.timezone.now), moved by the test."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta) -> datetime:
        self.now += timedelta(**delta)
        return self.now


@pytest.fixture
def clock(monkeypatch) -> Clock:
    clock = Clock(T0)
    monkeypatch.setattr(timezone, "now", clock)
    return clock


def make_campaign(
    name: str, trigger_type: str, trigger_config: dict, steps: list[tuple[str, str, dict]], **fields
) -> Campaign:
    campaign = Campaign.objects.create(name=name, trigger_type=trigger_type, trigger_config=trigger_config, **fields)
    for position, (key, type_, config) in enumerate(steps):
        Step.objects.create(campaign=campaign, position=position, key=key, type=type_, config=config)
    return launch(campaign)


@pytest.fixture
def abandoned_cart(welcome_template, clock) -> Campaign:
    """Cart event, wait 1 hour, branch on "ordered since", send with recommendations, wait 1 day, second reminder."""
    return make_campaign(
        "Abandoned cart",
        "event",
        {"event": "cart_added"},
        [
            ("wait-hour", "wait", {"hours": 1}),
            ("ordered-yet", "branch", {"ordered_since_entry": True, "then": "done", "else": "reminder"}),
            ("reminder", "send_email", {"template": welcome_template.name}),
            ("wait-day", "wait", {"days": 1}),
            ("ordered-now", "branch", {"ordered_since_entry": True, "then": "done", "else": "second-reminder"}),
            ("second-reminder", "send_email", {"template": welcome_template.name}),
            ("done", "exit", {}),
        ],
    )


def cart_event(customer, at: datetime) -> Event:
    return Event.objects.create(
        external_id=f"cart-{customer.pk}-{at:%s}", customer=customer, name="cart_added", occurred_at=at
    )


def received(smtp_server) -> Counter:
    return Counter(address for message in smtp_server.messages for address in message.rcpt_tos)


def test_an_abandoned_cart_campaign_runs_end_to_end_on_the_clock(smtp_settings, settings, abandoned_cart, clock, run):
    settings.RECOMMENDATION_SOURCE = "tests.campaigns.conftest.three_recommendations"
    forgetful = CustomerFactory(timezone="Europe/Berlin")
    buyer = CustomerFactory(timezone="Europe/Berlin")
    events = [cart_event(forgetful, T0), cart_event(buyer, T0)]

    run(enroll_for_events, [event.pk for event in events])
    assert Enrollment.objects.filter(state=EnrollmentState.ACTIVE).count() == 2
    assert smtp_settings.messages == []

    clock.advance(minutes=30)
    OrderFactory(customer=buyer, placed_at=clock.now)
    run(tick)
    assert smtp_settings.messages == []  # the hour has not passed

    clock.advance(minutes=30)
    run(tick)
    assert received(smtp_settings) == {forgetful.email: 1}
    [first] = smtp_settings.messages
    assert "Pick 1" in first.message.get_body(("html",)).get_content()  # the recommendations are in
    assert Enrollment.objects.get(customer=buyer).state == EnrollmentState.EXITED

    clock.advance(hours=23, minutes=59)
    run(tick)
    assert received(smtp_settings) == {forgetful.email: 1}

    clock.advance(minutes=1)
    run(tick)
    run(tick)  # a second tick at the same moment changes nothing

    assert received(smtp_settings) == {forgetful.email: 2}
    enrollment = Enrollment.objects.get(customer=forgetful)
    assert (enrollment.state, enrollment.note) == (EnrollmentState.EXITED, "exited")
    assert list(StepVisit.objects.filter(enrollment=enrollment).values_list("step__key", flat=True)) == [
        "wait-hour", "wait-hour", "ordered-yet", "reminder", "wait-day", "wait-day", "ordered-now", "second-reminder", "done",
    ]  # fmt: skip
    assert list(Message.objects.filter(enrollment=enrollment).values_list("step__key", "status")) == [
        ("second-reminder", MessageStatus.SENT),
        ("reminder", MessageStatus.SENT),
    ]


def test_a_campaign_that_cannot_run_is_refused_at_launch_with_the_field(welcome_template):
    campaign = Campaign.objects.create(name="Broken", trigger_type="event", trigger_config={"event": "cart_added"})
    Step.objects.create(
        campaign=campaign,
        position=0,
        key="check",
        type="branch",
        config={"ordered_since_entry": True, "then": "nowhere", "else": "check"},
    )

    with pytest.raises(CampaignError) as refused:
        launch(campaign)

    assert refused.value.field == "step check: then"
    assert "must name a step of this campaign (check); got 'nowhere'" in refused.value.message
    assert Campaign.objects.get(pk=campaign.pk).status == "draft"


def test_an_event_that_does_not_match_the_trigger_enrolls_nobody(abandoned_cart, run):
    customer = CustomerFactory()
    viewed = Event.objects.create(external_id="v1", customer=customer, name="product_viewed", occurred_at=T0)

    assert run(enroll_for_events, [viewed.pk]) == 0
    assert Enrollment.objects.count() == 0


def test_re_entry_once_enrolls_a_customer_one_time_only(abandoned_cart, clock, run):
    customer = CustomerFactory()

    run(enroll_for_events, [cart_event(customer, T0).pk])
    clock.advance(days=3)
    run(enroll_for_events, [cart_event(customer, clock.now).pk])

    assert Enrollment.objects.filter(customer=customer).count() == 1


def test_a_holdout_gets_nothing_and_is_counted(welcome_template, clock, run, smtp_settings):
    campaign = make_campaign(
        "Half held out", "manual", {}, [("send", "send_email", {"template": welcome_template.name})], holdout_percent=50
    )
    customers = [CustomerFactory() for _ in range(40)]

    run(enroll_by_hand, campaign, [customer.pk for customer in customers])

    states = Counter(Enrollment.objects.values_list("state", flat=True))
    assert states[EnrollmentState.HOLDOUT] + states[EnrollmentState.COMPLETED] == 40
    assert 0 < states[EnrollmentState.HOLDOUT] < 40
    held = set(Enrollment.objects.filter(state=EnrollmentState.HOLDOUT).values_list("customer__email", flat=True))
    assert held.isdisjoint(received(smtp_settings))
    assert len(smtp_settings.messages) == states[EnrollmentState.COMPLETED]


def test_enrolling_inside_a_transaction_that_rolls_back_leaves_no_row_and_no_task(
    abandoned_cart, django_capture_on_commit_callbacks
):
    customer = CustomerFactory()
    event = cart_event(customer, T0)

    with django_capture_on_commit_callbacks() as callbacks, pytest.raises(RuntimeError), transaction.atomic():
        enroll_for_events([event.pk])
        raise RuntimeError("the request failed after enrolling")

    assert callbacks == []
    assert Enrollment.objects.count() == 0


def test_a_wait_of_days_runs_once_from_the_database_not_from_a_broker_countdown(
    welcome_template, clock, run, smtp_settings, monkeypatch
):
    published: list[dict] = []
    from celery.app.task import Task

    original = Task.apply_async

    def recording(self, args=None, kwargs=None, **options):
        published.append(options)
        return original(self, args, kwargs, **options)

    monkeypatch.setattr(Task, "apply_async", recording)
    campaign = make_campaign(
        "Three days later",
        "manual",
        {},
        [("wait", "wait", {"days": 3}), ("send", "send_email", {"template": welcome_template.name})],
    )
    customer = CustomerFactory()

    run(enroll_by_hand, campaign, [customer.pk])
    enrollment = Enrollment.objects.get()
    assert enrollment.next_run_at == T0 + timedelta(days=3)
    clock.advance(days=2, hours=23)
    run(tick)
    assert smtp_settings.messages == []
    clock.advance(hours=1)
    run(tick)
    run(tick)

    assert received(smtp_settings) == {customer.email: 1}
    assert all("countdown" not in options and "eta" not in options for options in published)


def test_work_handed_to_a_lost_task_is_found_again_in_the_database(
    welcome_template, clock, run, smtp_settings, settings, monkeypatch
):
    campaign = make_campaign("Lost", "manual", {}, [("send", "send_email", {"template": welcome_template.name})])
    customer = CustomerFactory()
    monkeypatch.setattr("campaigns.engine._advance_later", lambda ids: None)  # the broker loses every hand-over
    run(enroll_by_hand, campaign, [customer.pk])
    run(dispatch_due)
    assert Enrollment.objects.get().claimed_at == T0

    monkeypatch.undo()
    monkeypatch.setattr(timezone, "now", clock)
    clock.advance(seconds=settings.ENGINE_STALL_S)
    run(tick)
    assert smtp_settings.messages == []  # not longer than the stall time: its task may yet run
    clock.advance(seconds=1)
    run(tick)
    run(tick)

    assert received(smtp_settings) == {customer.email: 1}


def test_an_unsubscribe_after_enrolling_suppresses_the_message(welcome_template, clock, run, smtp_settings):
    campaign = make_campaign(
        "Later",
        "manual",
        {},
        [("wait", "wait", {"hours": 2}), ("send", "send_email", {"template": welcome_template.name})],
    )
    customer = CustomerFactory()
    run(enroll_by_hand, campaign, [customer.pk])

    Suppression.suppress(customer.email, SuppressionReason.UNSUBSCRIBED)
    clock.advance(hours=2)
    run(tick)

    assert Message.objects.get().status == MessageStatus.SUPPRESSED
    assert smtp_settings.messages == []


def test_the_frequency_cap_counts_every_campaign(welcome_template, clock, run, smtp_settings, settings):
    settings.FREQUENCY_CAP_MESSAGES, settings.FREQUENCY_CAP_WINDOW_HOURS = 2, 24
    campaigns = [
        make_campaign(f"C{n}", "manual", {}, [("send", "send_email", {"template": welcome_template.name})])
        for n in range(3)
    ]
    customer = CustomerFactory()

    for campaign in campaigns:
        run(enroll_by_hand, campaign, [customer.pk])
        clock.advance(hours=1)

    assert received(smtp_settings) == {customer.email: 2}
    capped = Message.objects.get(enrollment__campaign=campaigns[2])
    assert (capped.status, capped.error) == (
        MessageStatus.SUPPRESSED,
        "not sent: frequency cap: 2 marketing messages in the last 24 h (at most 2)",
    )
    assert StepVisit.objects.get(enrollment__campaign=campaigns[2]).outcome == f"queued message {capped.pk}"


@pytest.mark.parametrize(
    ("zone", "now", "sent_at"),
    [
        # 10:00 UTC is 23:00 in Apia (UTC+13): quiet until 08:00 local, 19:00 UTC.
        ("Pacific/Apia", datetime(2026, 3, 2, 10, 0, tzinfo=UTC), datetime(2026, 3, 2, 19, 0, tzinfo=UTC)),
        # 16:00 UTC is 21:45 in Kathmandu (UTC+5:45): quiet until 08:00 local, 02:15 UTC next day.
        ("Asia/Kathmandu", datetime(2026, 3, 2, 16, 0, tzinfo=UTC), datetime(2026, 3, 3, 2, 15, tzinfo=UTC)),
        # 02:30 UTC on 8 March 2026 is 21:30 EST; 08:00 local the next morning is EDT (after the DST jump): 12:00 UTC.
        ("America/New_York", datetime(2026, 3, 8, 2, 30, tzinfo=UTC), datetime(2026, 3, 8, 12, 0, tzinfo=UTC)),
        # 15:00 UTC is 10:00 EST: not quiet, sent at once.
        ("America/New_York", datetime(2026, 3, 2, 15, 0, tzinfo=UTC), datetime(2026, 3, 2, 15, 0, tzinfo=UTC)),
    ],
)
def test_quiet_hours_hold_messages_until_morning_in_the_customers_own_zone(
    welcome_template, clock, run, smtp_settings, zone, now, sent_at
):
    clock.now = now
    campaign = make_campaign("Quiet", "manual", {}, [("send", "send_email", {"template": welcome_template.name})])
    customer = CustomerFactory(timezone=zone)

    run(enroll_by_hand, campaign, [customer.pk])
    message = Message.objects.get()
    if sent_at > now:
        assert (message.status, message.next_attempt_at) == (MessageStatus.QUEUED, sent_at)
        clock.now = sent_at - timedelta(minutes=1)
        run(dispatch_due_messages)
        assert smtp_settings.messages == []
        clock.now = sent_at
        run(dispatch_due_messages)
    run(dispatch_due_messages)

    assert received(smtp_settings) == {customer.email: 1}
    assert Message.objects.get().sent_at == sent_at
    assert Enrollment.objects.get().state == EnrollmentState.COMPLETED  # the step queued it and moved on


def test_an_invalid_time_zone_falls_back_to_the_shops_and_is_reported_never_dropped(
    welcome_template, clock, run, smtp_settings, settings
):
    settings.TIME_ZONE = "UTC"
    clock.now = datetime(2026, 3, 2, 22, 0, tzinfo=UTC)  # quiet in UTC
    campaign = make_campaign("Bad zone", "manual", {}, [("send", "send_email", {"template": welcome_template.name})])
    customer = CustomerFactory(timezone="Mars/Olympus_Mons")

    run(enroll_by_hand, campaign, [customer.pk])
    assert Message.objects.get().error == (
        "waits: quiet hours in UTC until 2026-03-03 08:00 UTC; time zone 'Mars/Olympus_Mons' is not an IANA zone; used UTC"
    )
    clock.now = datetime(2026, 3, 3, 8, 0, tzinfo=UTC)
    run(dispatch_due_messages)

    assert received(smtp_settings) == {customer.email: 1}
    sent = Message.objects.get()
    assert (sent.status, sent.error) == (MessageStatus.SENT, "time zone 'Mars/Olympus_Mons' is not an IANA zone; used UTC")


def test_a_customer_without_consent_is_enrolled_but_never_mailed(welcome_template, clock, run, smtp_settings):
    campaign = make_campaign("Consent", "manual", {}, [("send", "send_email", {"template": welcome_template.name})])
    customer = CustomerFactory(consent_state=Consent.OPTED_OUT)

    run(enroll_by_hand, campaign, [customer.pk])

    assert Message.objects.get().status == MessageStatus.SUPPRESSED
    assert smtp_settings.messages == []


@pytest.mark.postgres_only
@pytest.mark.django_db(transaction=True)
def test_concurrent_ticks_and_duplicate_deliveries_send_each_step_once(smtp_settings, welcome_template, clock, monkeypatch):
    campaign = make_campaign("Concurrent", "manual", {}, [("send", "send_email", {"template": welcome_template.name})])
    customers = [CustomerFactory() for _ in range(30)]
    handed: list[list[int]] = []
    # Hold the engine's hand-overs, then deliver each twice, concurrently. Sends run in the calling
    # thread, not through in-process Celery, whose eager mode keeps a process-wide flag no thread may race on.
    monkeypatch.setattr("campaigns.engine._advance_later", handed.append)
    monkeypatch.setattr("campaigns.delivery.send_later", send_messages)
    enroll_by_hand(campaign, [customer.pk for customer in customers])
    ids = list(Enrollment.objects.values_list("pk", flat=True))
    barrier = threading.Barrier(6)

    def worker(action) -> None:
        barrier.wait()
        try:
            action()
        finally:
            connection.close()

    actions = [tick] * 4 + [lambda: advance(ids), lambda: advance(ids)]
    threads = [threading.Thread(target=worker, args=(action,)) for action in actions]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for batch in handed + handed:
        advance(batch)

    assert received(smtp_settings) == Counter({customer.email: 1 for customer in customers})
    assert Message.objects.count() == 30
    assert set(Enrollment.objects.values_list("state", flat=True)) == {EnrollmentState.COMPLETED}
