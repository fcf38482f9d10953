"""Delivery through a real SMTP server (aiosmtpd): headers, parts, links, suppression, and every fault of RELIABILITY.md's sending table that does not need a worker."""

import re
import socket
import threading
import time
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.utils import timezone

from campaigns.delivery import (
    dispatch_due_messages,
    mark_stalled_messages,
    queue_broadcast,
    queue_test_message,
    send_messages,
)
from campaigns.models import Broadcast, BroadcastStatus, Message, MessageKind, MessageStatus, TemplateVariant
from campaigns.tracking import unsubscribe_token
from campaigns.versions import publish_variant, save_template
from campaigns.webhooks import record_esp_event
from marketing.models import Consent, Suppression, SuppressionReason
from tests.campaigns.conftest import WELCOME_HTML
from tests.factories import CustomerFactory

BASE_URL = "https://mail.shop.example"


@pytest.fixture(autouse=True)
def public_links(settings):
    settings.PUBLIC_BASE_URL = BASE_URL
    settings.RECOMMENDATION_SOURCE = "tests.campaigns.conftest.three_recommendations"
    settings.SEND_RETRY_BASE_S = 60
    settings.SEND_MAX_ATTEMPTS = 3


def queue_and_send(broadcast: Broadcast, capture) -> int:
    """Queue the broadcast and run what it hands to workers after commit (tasks run in-process)."""
    with capture(execute=True):
        count = queue_broadcast(broadcast.pk)
    return count


def received_by(smtp_server, address: str):
    return [message for message in smtp_server.messages if address in message.rcpt_tos]


def test_broadcast_arrives_with_unsubscribe_headers_both_parts_and_tracked_links(
    smtp_settings, customers, broadcast_to, django_capture_on_commit_callbacks
):
    broadcast = broadcast_to()

    queued = queue_and_send(broadcast, django_capture_on_commit_callbacks)

    assert queued == 3
    assert sorted(address for message in smtp_settings.messages for address in message.rcpt_tos) == sorted(
        customer.email for customer in customers
    )
    first = customers[0]
    row = Message.objects.get(customer=first)
    received = received_by(smtp_settings, first.email)[0].message
    assert row.status == MessageStatus.SENT and row.attempts == 1 and row.error == ""
    assert received["Subject"] == f"Hello {first.first_name}"
    assert received["Message-ID"] == row.message_id
    assert re.fullmatch(rf"<kairos\.{row.pk}\.[0-9a-f]{{12}}@localhost>", row.message_id)
    token = unsubscribe_token(row.pk)
    # Long headers may be folded; unfolded, the value is exactly this.
    assert " ".join(received["List-Unsubscribe"].split()) == (
        f"<{BASE_URL}/u/{token}/>, <mailto:unsubscribe@localhost?subject=unsubscribe%20{token.replace(':', '%3A')}>"
    )
    assert received["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert [part.get_content_type() for part in received.iter_parts()] == ["text/plain", "text/html"]
    text = received.get_body(("plain",)).get_content()
    html = received.get_body(("html",)).get_content()
    assert row.links == [
        "https://shop.example.com/sale?from=mail&x=1",
        "https://shop.example.com/p/R1",
        "https://shop.example.com/p/R2",
        "https://shop.example.com/p/R3",
    ]
    # Every recorded link is replaced by its click URL; the raw targets never appear as hrefs.
    hrefs = re.findall(r'href="([^"]+)"', html)
    assert "https://shop.example.com/sale?from=mail&amp;x=1" not in hrefs
    assert sum(href.startswith(f"{BASE_URL}/t/c/{row.pk}-0:") for href in hrefs) == 1
    # The picks have no image, so only their names link (an image link needs an image).
    assert sum(href.startswith(f"{BASE_URL}/t/c/{row.pk}-1:") for href in hrefs) == 1
    # The unsubscribe link is visible and not tracked.
    assert f'href="{BASE_URL}/u/{token}/"' in html
    assert f"Unsubscribe ({BASE_URL}/u/{token}/)" in text
    assert f"winter sale ({BASE_URL}/t/c/{row.pk}-0:" in text
    # The layout's CSS arrives inlined.
    assert '<h1 style="font-size: 22px;line-height: 28px;margin: 0 0 16px 0;color: #111827;">' in html
    assert Broadcast.objects.get(pk=broadcast.pk).status == BroadcastStatus.DONE


def test_queueing_twice_adds_no_message(smtp_settings, customers, broadcast_to, django_capture_on_commit_callbacks):
    broadcast = broadcast_to()
    queue_and_send(broadcast, django_capture_on_commit_callbacks)

    Broadcast.objects.filter(pk=broadcast.pk).update(status=BroadcastStatus.DRAFT)
    again = queue_and_send(broadcast, django_capture_on_commit_callbacks)

    assert again == 0
    assert Message.objects.count() == 3
    assert len(smtp_settings.messages) == 3


def test_customers_without_consent_or_suppressed_are_never_queued(
    smtp_settings, broadcast_to, django_capture_on_commit_callbacks
):
    mailable = CustomerFactory()
    CustomerFactory(consent_state=Consent.OPTED_OUT)
    suppressed = CustomerFactory()
    Suppression.suppress(suppressed.email, SuppressionReason.BOUNCED)

    queued = queue_and_send(broadcast_to(), django_capture_on_commit_callbacks)

    assert queued == 1
    assert [message.rcpt_tos for message in smtp_settings.messages] == [[mailable.email]]


def _one_click(client, message: Message) -> None:
    response = client.post(f"/u/{unsubscribe_token(message.pk)}/", {"List-Unsubscribe": "One-Click"})
    assert response.status_code == 200


@pytest.mark.parametrize(
    "withdraw",
    [
        pytest.param(lambda client, message: client.post(f"/u/{unsubscribe_token(message.pk)}/"), id="link"),
        pytest.param(_one_click, id="one-click"),
        pytest.param(
            lambda client, message: record_esp_event("bounced", message.to_email, esp_name="postmark"), id="bounce"
        ),
        pytest.param(
            lambda client, message: record_esp_event("complained", message.to_email, esp_name="postmark"),
            id="complaint",
        ),
    ],
)
def test_unsubscribe_between_queueing_and_sending_suppresses_the_message(
    smtp_settings, customers, broadcast_to, client, withdraw
):
    broadcast = broadcast_to()
    queue_broadcast(broadcast.pk)  # the hand-over to workers waits for a commit that never comes here
    leaving = Message.objects.get(customer=customers[1])

    withdraw(client, leaving)
    report = send_messages(list(Message.objects.values_list("pk", flat=True)))

    leaving.refresh_from_db()
    assert leaving.status == MessageStatus.SUPPRESSED
    assert leaving.error == "the address is on the suppression list"
    assert received_by(smtp_settings, customers[1].email) == []
    assert report.outcomes == {MessageStatus.SENT: 2, MessageStatus.SUPPRESSED: 1}


def test_consent_withdrawn_after_queueing_suppresses_the_message(smtp_settings, customers, broadcast_to):
    queue_broadcast(broadcast_to().pk)
    type(customers[0]).objects.filter(pk=customers[0].pk).update(consent_state=Consent.OPTED_OUT)

    send_messages(list(Message.objects.values_list("pk", flat=True)))

    message = Message.objects.get(customer=customers[0])
    assert (message.status, message.error) == (MessageStatus.SUPPRESSED, "no consent to marketing e-mail (opted_out)")
    assert received_by(smtp_settings, customers[0].email) == []


def test_one_rejected_recipient_fails_alone_with_the_reason(
    smtp_settings, broadcast_to, django_capture_on_commit_callbacks
):
    everyone = [CustomerFactory() for _ in range(100)]
    refused = everyone[41]
    smtp_settings.reject(refused.email, 554, "5.7.1 Mailbox unavailable")

    queue_and_send(broadcast_to(), django_capture_on_commit_callbacks)

    failed = Message.objects.get(customer=refused)
    assert failed.status == MessageStatus.FAILED
    assert failed.error == f"RCPT TO {refused.email}: 554 5.7.1 Mailbox unavailable"
    assert Message.objects.filter(status=MessageStatus.SENT).count() == 99
    assert len(smtp_settings.messages) == 99
    assert dispatch_due_messages(timezone.now() + timedelta(days=1)) == 0


def test_smtp_down_defers_with_back_off_then_sends_each_once(smtp_settings, settings, customers, broadcast_to):
    live_port = settings.EMAIL_PORT
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        settings.EMAIL_PORT = probe.getsockname()[1]  # nothing listens once the probe closes
    queue_broadcast(broadcast_to().pk)
    ids = list(Message.objects.values_list("pk", flat=True))
    start = timezone.now()

    send_messages(ids, now=start)

    assert set(Message.objects.values_list("status", "attempts", "next_attempt_at")) == {
        (MessageStatus.QUEUED, 1, start + timedelta(seconds=60))
    }
    assert all(error.startswith("connect: ") for error in Message.objects.values_list("error", flat=True))
    assert Message.objects.due(start + timedelta(seconds=59)).count() == 0

    settings.EMAIL_PORT = live_port
    send_messages(ids, now=start + timedelta(seconds=59))  # not due yet: nothing is claimed
    assert smtp_settings.messages == []
    report = send_messages(ids, now=start + timedelta(seconds=60))

    assert report.outcomes == {MessageStatus.SENT: 3}
    assert sorted(address for message in smtp_settings.messages for address in message.rcpt_tos) == sorted(
        c.email for c in customers
    )
    assert set(Message.objects.values_list("attempts", flat=True)) == {2}


def test_back_off_doubles_and_gives_up_after_the_last_attempt(settings, customers, broadcast_to):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", port, 2
    queue_broadcast(broadcast_to().pk)
    ids = list(Message.objects.values_list("pk", flat=True))
    now = timezone.now()

    send_messages(ids, now=now)
    second = now + timedelta(seconds=60)
    send_messages(ids, now=second)
    assert set(Message.objects.values_list("next_attempt_at", flat=True)) == {second + timedelta(seconds=120)}
    send_messages(ids, now=second + timedelta(seconds=120))

    assert set(Message.objects.values_list("status", "attempts")) == {(MessageStatus.FAILED, 3)}
    assert all(
        error.startswith("gave up after 3 attempts: connect: ")
        for error in Message.objects.values_list("error", flat=True)
    )


@pytest.fixture
def silent_server():
    """A server that accepts connections and never says a word."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    accepted = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join()
    for peer in accepted:
        peer.close()
    listener.close()


def test_smtp_server_that_hangs_times_out_and_the_row_is_retried(settings, silent_server, customers, broadcast_to):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", silent_server, 1
    queue_broadcast(broadcast_to().pk)
    started = time.monotonic()

    send_messages(list(Message.objects.values_list("pk", flat=True)))

    # One timeout for the connection, not one per message: the batch is deferred as a whole.
    assert time.monotonic() - started < 10
    assert set(Message.objects.values_list("status", "attempts")) == {(MessageStatus.QUEUED, 1)}
    assert all("timed out" in error for error in Message.objects.values_list("error", flat=True))


def test_a_second_delivery_of_the_same_batch_sends_nothing_more(smtp_settings, customers, broadcast_to):
    queue_broadcast(broadcast_to().pk)
    ids = list(Message.objects.values_list("pk", flat=True))

    first = send_messages(ids)
    second = send_messages(ids)

    assert (first.claimed, second.claimed) == (3, 0)
    assert len(smtp_settings.messages) == 3


def test_messages_left_sending_by_a_dead_worker_become_unknown_and_are_never_resent(
    smtp_settings, customers, broadcast_to, settings
):
    queue_broadcast(broadcast_to().pk)
    stuck = Message.objects.get(customer=customers[0])
    long_ago = timezone.now() - timedelta(seconds=settings.SEND_STALL_S + 1)
    Message.objects.filter(pk=stuck.pk).update(status=MessageStatus.SENDING, claimed_at=long_ago, attempts=1)
    recent = Message.objects.get(customer=customers[1])
    Message.objects.filter(pk=recent.pk).update(status=MessageStatus.SENDING, claimed_at=timezone.now(), attempts=1)

    assert mark_stalled_messages() == 1
    send_messages([stuck.pk, recent.pk])

    stuck.refresh_from_db()
    assert stuck.status == MessageStatus.UNKNOWN
    assert stuck.error.startswith("the worker stopped while sending")
    assert Message.objects.get(pk=recent.pk).status == MessageStatus.SENDING
    assert smtp_settings.messages == []


@pytest.mark.postgres_only
@pytest.mark.django_db(transaction=True)
def test_concurrent_dispatchers_send_each_message_exactly_once(smtp_settings, broadcast_to, monkeypatch):
    everyone = [CustomerFactory() for _ in range(40)]
    monkeypatch.setattr(
        "campaigns.delivery.dispatch_after_commit", lambda: None
    )  # the four threads are the dispatchers
    queue_broadcast(broadcast_to().pk)
    ids = list(Message.objects.values_list("pk", flat=True))
    barrier = threading.Barrier(4)
    claimed: list[int] = []

    def dispatcher() -> None:
        barrier.wait()
        try:
            claimed.append(send_messages(ids).claimed)
        finally:
            connection.close()

    threads = [threading.Thread(target=dispatcher) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sum(claimed) == 40
    received = sorted(address for message in smtp_settings.messages for address in message.rcpt_tos)
    assert received == sorted(customer.email for customer in everyone)
    assert Message.objects.filter(status=MessageStatus.SENT).count() == 40


def test_queueing_inside_a_rolled_back_transaction_leaves_no_row_and_no_task(
    customers, broadcast_to, django_capture_on_commit_callbacks
):
    broadcast = broadcast_to()

    with django_capture_on_commit_callbacks() as callbacks, pytest.raises(RuntimeError), transaction.atomic():
        queue_broadcast(broadcast.pk)
        raise RuntimeError("the caller failed after queueing")

    assert callbacks == []
    assert Message.objects.count() == 0
    assert Broadcast.objects.get(pk=broadcast.pk).status == BroadcastStatus.DRAFT


def test_line_breaks_in_customer_data_cannot_add_headers_or_recipients(smtp_settings, broadcast_to):
    intruder = CustomerFactory(first_name="Eve\r\nBcc: victim@example.com", last_name="X\nTo: other@example.com")

    queue_broadcast(broadcast_to().pk)
    send_messages(list(Message.objects.values_list("pk", flat=True)))

    [received] = smtp_settings.messages
    assert received.rcpt_tos == [intruder.email]
    assert received.message["Subject"] == "Hello Eve Bcc: victim@example.com"
    assert received.message["Bcc"] is None
    assert received.message.get_all("To") == [
        f'"Eve Bcc: victim@example.com X To: other@example.com" <{intruder.email}>'
    ]


def test_an_address_with_line_breaks_fails_with_the_reason(smtp_settings, welcome_template):
    message = Message.objects.create(
        kind=MessageKind.TEST, template=welcome_template, to_email="a@example.com\r\nRCPT TO:<b@example.com>"
    )

    send_messages([message.pk])

    message.refresh_from_db()
    assert message.status == MessageStatus.FAILED
    assert message.error == "invalid recipient address 'a@example.com\\r\\nRCPT TO:<b@example.com>'"
    assert smtp_settings.messages == []


def test_a_template_that_fails_for_one_customer_fails_that_message_alone(smtp_settings, broadcast_to):
    html = WELCOME_HTML.replace("<h1>", "<h1>{{ customer.attributes.loyalty_tier|upper }} ")
    save_template("Welcome", subject="Hello", html=html)
    gold = CustomerFactory(attributes={"loyalty_tier": "gold"})
    plain = CustomerFactory(attributes={})

    queue_broadcast(broadcast_to().pk)
    send_messages(list(Message.objects.values_list("pk", flat=True)))

    assert Message.objects.get(customer=gold).status == MessageStatus.SENT
    failed = Message.objects.get(customer=plain)
    assert failed.status == MessageStatus.FAILED
    assert failed.error.startswith("template 'Welcome' v2: line 4: HTML: unknown variable: ")
    assert "loyalty_tier" in failed.error
    assert [message.rcpt_tos for message in smtp_settings.messages] == [[gold.email]]


def test_each_customer_gets_the_variant_of_their_locale_or_the_default(smtp_settings, welcome_template, broadcast_to):
    german = TemplateVariant.objects.create(
        template=welcome_template, locale="de", subject="Hallo {{ customer.first_name }}", html=WELCOME_HTML
    )
    publish_variant(german)
    austrian = CustomerFactory(locale="de-AT")
    french = CustomerFactory(locale="fr-FR")

    queue_broadcast(broadcast_to().pk)
    send_messages(list(Message.objects.values_list("pk", flat=True)))

    assert received_by(smtp_settings, austrian.email)[0].message["Subject"] == f"Hallo {austrian.first_name}"
    assert received_by(smtp_settings, french.email)[0].message["Subject"] == f"Hello {french.first_name}"
    assert Message.objects.get(customer=austrian).template_version == german.current_version


def test_a_test_send_goes_to_any_address_rendered_for_the_chosen_customer(
    smtp_settings, welcome_template, django_capture_on_commit_callbacks
):
    customer = CustomerFactory(first_name="Jo")

    with django_capture_on_commit_callbacks(execute=True):
        message = queue_test_message(welcome_template.pk, "staff@shop.example", customer.pk)

    [received] = smtp_settings.messages
    assert received.rcpt_tos == ["staff@shop.example"]
    assert received.message["Subject"] == "[Test] Hello Jo"
    assert Message.objects.get(pk=message.pk).kind == MessageKind.TEST


@pytest.mark.parametrize(
    "sender",
    [
        "Shop <news@shop.example>, Support <help@shop.example>",
        "news@shop.example, help@shop.example",
        "news@shop.example; help@shop.example",
    ],
)
def test_a_sender_with_two_addresses_is_refused_at_save(sender):
    from campaigns.versions import address_problem

    assert address_problem(sender) is not None
    assert address_problem("Shop News <news@shop.example>") is None


def test_a_sender_that_slipped_past_validation_fails_its_messages_and_strands_none(
    smtp_settings, broadcast_to, django_capture_on_commit_callbacks
):
    customers = [CustomerFactory() for _ in range(3)]
    broadcast = broadcast_to()
    # Written around the form, as an old row or a direct UPDATE would be.
    type(broadcast.template).objects.filter(pk=broadcast.template_id).update(
        from_email="Shop <news@shop.example>, Support <help@shop.example>"
    )

    queue_and_send(broadcast, django_capture_on_commit_callbacks)

    statuses = list(Message.objects.order_by("pk").values_list("status", flat=True))
    assert statuses == [MessageStatus.FAILED] * len(customers)
    assert all(error.startswith("message could not be built") for error in Message.objects.values_list("error", flat=True))
    assert smtp_settings.messages == []
    assert Message.objects.filter(status__in=[MessageStatus.SENDING, MessageStatus.QUEUED]).count() == 0


def test_an_unexpected_error_while_sending_leaves_no_message_sending(
    smtp_settings, broadcast_to, django_capture_on_commit_callbacks, monkeypatch
):
    from campaigns import transport

    [CustomerFactory() for _ in range(3)]
    calls = []
    real_send = transport.Transport.send

    def send_then_explode(self, email):
        calls.append(email)
        if len(calls) == 2:
            raise RuntimeError("a bug in a backend")
        return real_send(self, email)

    monkeypatch.setattr(transport.Transport, "send", send_then_explode)

    queue_and_send(broadcast_to(), django_capture_on_commit_callbacks)

    statuses = list(Message.objects.order_by("pk").values_list("status", flat=True))
    assert statuses == [MessageStatus.SENT, MessageStatus.UNKNOWN, MessageStatus.SENT]
    assert "RuntimeError: a bug in a backend" in Message.objects.get(status=MessageStatus.UNKNOWN).error
    assert len(smtp_settings.messages) == 2


def test_a_default_sender_with_two_addresses_fails_the_system_check(settings):
    from campaigns.checks import check_default_from_email

    settings.DEFAULT_FROM_EMAIL = "Shop <news@shop.example>, Support <help@shop.example>"

    assert [error.id for error in check_default_from_email(None)] == ["campaigns.E003"]
