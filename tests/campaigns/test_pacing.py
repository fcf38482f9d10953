"""One respectful send path: every marketing message, from a broadcast or a campaign, meets the same cap and quiet hours."""

import threading
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection

from campaigns.delivery import dispatch_due_messages, queue_broadcast, queue_test_message, send_messages
from campaigns.models import Broadcast, Message, MessageKind, MessageStatus
from tests.campaigns.test_engine import Clock, make_campaign, received
from tests.factories import CustomerFactory

NIGHT_IN_BERLIN = datetime(2026, 3, 2, 22, 0, tzinfo=UTC)  # 23:00 in Berlin, where the factories' customers live
MORNING_IN_BERLIN = datetime(2026, 3, 3, 7, 0, tzinfo=UTC)  # 08:00 in Berlin
DAY_IN_BERLIN = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


@pytest.fixture
def clock(monkeypatch) -> Clock:
    from django.utils import timezone

    clock = Clock(DAY_IN_BERLIN)
    monkeypatch.setattr(timezone, "now", clock)
    return clock


@pytest.fixture
def broadcast_of(welcome_template):
    def create(name: str = "Winter sale") -> Broadcast:
        return Broadcast.objects.create(name=name, template=welcome_template)

    return create


def already_sent(customer, template, count: int, at: datetime) -> None:
    """Record `count` marketing messages sent to the customer at `at`, as earlier broadcasts would have."""
    for number in range(count):
        broadcast = Broadcast.objects.create(name=f"Earlier {number}", template=template)
        Message.objects.create(
            kind=MessageKind.MARKETING, broadcast=broadcast, customer=customer, template=template,
            to_email=customer.email, status=MessageStatus.SENT, claimed_at=at, sent_at=at, created_at=at,
        )  # fmt: skip


def test_a_broadcast_respects_the_frequency_cap_across_campaigns_and_broadcasts(
    clock, run, smtp_settings, broadcast_of, welcome_template, settings
):
    settings.FREQUENCY_CAP_MESSAGES, settings.FREQUENCY_CAP_WINDOW_HOURS = 2, 24
    busy, rested, long_ago = CustomerFactory(), CustomerFactory(), CustomerFactory()
    already_sent(busy, welcome_template, 2, clock.now - timedelta(hours=3))
    already_sent(long_ago, welcome_template, 2, clock.now - timedelta(hours=25))
    broadcast = broadcast_of()

    run(queue_broadcast, broadcast.pk)

    assert received(smtp_settings) == {rested.email: 1, long_ago.email: 1}
    capped = Message.objects.get(broadcast=broadcast, customer=busy)
    assert (capped.status, capped.error) == (
        MessageStatus.SUPPRESSED,
        "not sent: frequency cap: 2 marketing messages in the last 24 h (at most 2)",
    )
    assert Broadcast.objects.get(pk=broadcast.pk).status == "done"


def test_a_broadcast_waits_for_the_morning_in_each_customers_zone(clock, run, smtp_settings, broadcast_of):
    clock.now = NIGHT_IN_BERLIN
    berliner = CustomerFactory(timezone="Europe/Berlin")
    new_yorker = CustomerFactory(timezone="America/New_York")  # 17:00 there
    broadcast = broadcast_of()

    run(queue_broadcast, broadcast.pk)
    assert received(smtp_settings) == {new_yorker.email: 1}
    held = Message.objects.get(customer=berliner)
    assert (held.status, held.next_attempt_at, held.error) == (
        MessageStatus.QUEUED,
        MORNING_IN_BERLIN,
        "waits: quiet hours in Europe/Berlin until 2026-03-03 07:00 UTC",
    )

    clock.now = MORNING_IN_BERLIN - timedelta(minutes=1)
    run(dispatch_due_messages)
    assert received(smtp_settings) == {new_yorker.email: 1}
    clock.now = MORNING_IN_BERLIN
    run(dispatch_due_messages)
    run(dispatch_due_messages)

    assert received(smtp_settings) == {new_yorker.email: 1, berliner.email: 1}
    assert Message.objects.get(customer=berliner).sent_at == MORNING_IN_BERLIN


def test_a_broadcast_exempt_by_a_recorded_reason_ignores_the_cap_and_quiet_hours(
    clock, run, smtp_settings, broadcast_of, welcome_template, settings
):
    settings.FREQUENCY_CAP_MESSAGES = 1
    clock.now = NIGHT_IN_BERLIN
    customer = CustomerFactory()
    already_sent(customer, welcome_template, 1, clock.now - timedelta(hours=1))
    broadcast = broadcast_of("Product recall")
    broadcast.pacing_exemption = "Safety recall of batch 4411: customers must hear today"
    broadcast.save()

    run(queue_broadcast, broadcast.pk)

    assert received(smtp_settings) == {customer.email: 1}
    assert Message.objects.get(broadcast=broadcast).status == MessageStatus.SENT


def test_transactional_messages_are_exempt_and_never_count_towards_the_cap(
    time_machine, run, smtp_settings, welcome_template, settings
):
    settings.FREQUENCY_CAP_MESSAGES = 1
    time_machine.move_to(NIGHT_IN_BERLIN, tick=False)  # the test message's row takes its times from the real clock
    customer = CustomerFactory()
    already_sent(customer, welcome_template, 1, NIGHT_IN_BERLIN - timedelta(hours=1))

    run(queue_test_message, welcome_template.pk, "colleague@example.com", customer.pk)

    assert received(smtp_settings) == {"colleague@example.com": 1}
    assert Message.objects.get(kind=MessageKind.TEST).status == MessageStatus.SENT


def test_a_campaign_may_set_its_own_cap_and_turn_quiet_hours_off(clock, run, smtp_settings, welcome_template, settings):
    from campaigns.engine import enroll_by_hand

    settings.FREQUENCY_CAP_MESSAGES = 1
    clock.now = NIGHT_IN_BERLIN
    customer = CustomerFactory()
    already_sent(customer, welcome_template, 1, clock.now - timedelta(hours=1))
    campaign = make_campaign(
        "Night owls", "manual", {}, [("send", "send_email", {"template": welcome_template.name})],
        quiet_hours=False, frequency_cap=2, frequency_window_hours=12,
    )  # fmt: skip

    run(enroll_by_hand, campaign, [customer.pk])

    assert received(smtp_settings) == {customer.email: 1}


@pytest.mark.postgres_only
@pytest.mark.django_db(transaction=True)
def test_two_workers_claiming_messages_to_one_customer_at_once_let_only_the_cap_through(
    smtp_settings, welcome_template, settings, monkeypatch
):
    settings.FREQUENCY_CAP_MESSAGES, settings.FREQUENCY_CAP_WINDOW_HOURS = 1, 24
    from django.utils import timezone

    monkeypatch.setattr(timezone, "now", lambda: DAY_IN_BERLIN)
    customer = CustomerFactory()
    broadcasts = [Broadcast.objects.create(name=f"B{n}", template=welcome_template) for n in range(4)]
    messages = [
        Message.objects.create(
            broadcast=broadcast, customer=customer, template=welcome_template, to_email=customer.email,
            next_attempt_at=DAY_IN_BERLIN, created_at=DAY_IN_BERLIN,
        ).pk
        for broadcast in broadcasts
    ]  # fmt: skip
    barrier = threading.Barrier(len(messages))

    def worker(message_id: int) -> None:
        barrier.wait()
        try:
            send_messages([message_id], DAY_IN_BERLIN)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(message_id,)) for message_id in messages]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert Counter(Message.objects.values_list("status", flat=True)) == {MessageStatus.SENT: 1, MessageStatus.SUPPRESSED: 3}
    assert received(smtp_settings) == {customer.email: 1}
