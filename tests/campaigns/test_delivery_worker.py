"""Delivery in a real Celery worker on Redis, killed mid-send: nothing doubled, nothing left unaccounted for."""

from collections import Counter
from datetime import timedelta

import pytest
from django.utils import timezone

from campaigns.delivery import dispatch_due_messages, mark_stalled_messages, queue_broadcast
from campaigns.models import Broadcast, Message, MessageStatus
from marketing.models import Consent, Customer
from marketing.suppression import email_hash
from tests.fixtures.services import wait_until

RECIPIENTS = 5_000
# The worker is killed while it waits on this recipient: the 101st of the sixth batch of 200.
HELD_RECIPIENT = 1_100
BATCH = 200
# Safety bounds for waiting on another process, not performance figures.
PROGRESS_TIMEOUT_S = 180


@pytest.fixture
def worker_mail(smtp_server, monkeypatch):
    """Make the worker process (started after this fixture) send through the test's SMTP server."""
    monkeypatch.setenv("EMAIL_URL", f"smtp://{smtp_server.host}:{smtp_server.port}")
    monkeypatch.setenv("EMAIL_TIMEOUT", str(PROGRESS_TIMEOUT_S))  # the held recipient must not time out first
    # The worker reads its own clock: quiet hours off, so a run at night measures delivery, not the morning.
    monkeypatch.setenv("QUIET_HOURS_START_HOUR", "0")
    monkeypatch.setenv("QUIET_HOURS_END_HOUR", "0")
    return smtp_server


@pytest.mark.postgres_only
def test_a_worker_killed_mid_send_sends_nothing_twice_and_leaves_every_row_final(
    worker_mail, welcome_template, celery_worker_process, settings
):
    settings.SEND_BATCH_SIZE = BATCH
    addresses = [f"killed-{number:05d}@example.com" for number in range(RECIPIENTS)]
    Customer.objects.bulk_create(
        Customer(
            external_id=f"K{number:05d}", email=address, email_hash=email_hash(address), consent_state=Consent.OPTED_IN
        )
        for number, address in enumerate(addresses)
    )
    broadcast = Broadcast.objects.create(name="Killed mid-send", template=welcome_template)

    worker_mail.hold(addresses[HELD_RECIPIENT])

    queue_broadcast(broadcast.pk)  # commits, then publishes the batches to Redis
    assert worker_mail.wait_until_held(PROGRESS_TIMEOUT_S), "the worker never reached the held recipient"
    celery_worker_process.kill()
    in_flight = set(Message.objects.filter(status=MessageStatus.SENDING).values_list("pk", flat=True))
    received_before_restart = len(worker_mail.messages)

    celery_worker_process.restart()
    # The killed worker's reserved task stays unacknowledged in Redis; the next tick re-finds its rows in the database.
    dispatch_due_messages()
    unfinished = Message.objects.filter(status__in=[MessageStatus.QUEUED, MessageStatus.SENDING]).exclude(
        pk__in=in_flight
    )
    wait_until(
        lambda: not unfinished.exists(),
        "every message but the killed batch to be sent",
        PROGRESS_TIMEOUT_S,
        state=lambda: Counter(unfinished.values_list("status", "error")),
    )
    stalled = mark_stalled_messages(timezone.now() + timedelta(days=1))

    received = Counter(address for message in worker_mail.messages for address in message.rcpt_tos)
    statuses = Counter(Message.objects.values_list("status", flat=True))
    first_of_batch = HELD_RECIPIENT - HELD_RECIPIENT % BATCH
    assert in_flight == set(
        Message.objects.filter(to_email__in=addresses[first_of_batch : first_of_batch + BATCH]).values_list(
            "pk", flat=True
        )
    )
    assert received_before_restart == HELD_RECIPIENT
    assert max(received.values()) == 1, "an address received the same broadcast twice"
    assert stalled == len(in_flight)
    assert statuses == {MessageStatus.SENT: RECIPIENTS - len(in_flight), MessageStatus.UNKNOWN: len(in_flight)}
    sent = set(Message.objects.filter(status=MessageStatus.SENT).values_list("to_email", flat=True))
    unknown = set(Message.objects.filter(status=MessageStatus.UNKNOWN).values_list("to_email", flat=True))
    assert sent <= set(received), "a row says sent but the server never got it"
    # Half the killed batch went out before the worker died: those rows are unknown, never resent.
    assert set(received) - sent == set(addresses[first_of_batch:HELD_RECIPIENT])
    assert set(received) - sent <= unknown
    assert all(
        error.startswith("the worker stopped while sending")
        for error in Message.objects.filter(pk__in=in_flight).values_list("error", flat=True)
    )
