"""Customer conversations end to end: the real API and inbound webhook in, the three workflows, real SMTP out.

The clock stands at a Monday 10:00 UTC (`office_hours`); replies have no quiet hours, broadcasts
are sent to customers in Berlin, where it is 11:00.
"""

import base64
import json
from collections import Counter
from datetime import timedelta
from decimal import Decimal

import pytest
from django.test import Client

from campaigns.conversations.processing import process_messages, process_unread_messages
from campaigns.conversations.workflows import install_workflows
from campaigns.delivery import queue_broadcast, send_messages
from campaigns.engine import CampaignError, check_campaign
from campaigns.models import Campaign, Enrollment, Message, MessageKind, MessageStatus, PromotionHold
from campaigns.tasks import process_messages_task
from marketing.models import (
    ApiKey,
    Consent,
    Customer,
    Event,
    InboundMessage,
    InboundStatus,
    OrderStatus,
    Suppression,
)
from tests.factories import CustomerFactory, OrderFactory


@pytest.fixture
def workflows(intent_model, office_hours) -> list[Campaign]:
    return install_workflows()


@pytest.fixture
def api(client, django_capture_on_commit_callbacks):
    """Post messages through the real API; what they hand to workers after commit runs in-process, as in production."""
    _, raw_key = ApiKey.issue("help desk")

    def send(*messages: dict) -> dict:
        with django_capture_on_commit_callbacks(execute=True):
            response = client.post(
                "/api/v1/messages",
                json.dumps({"messages": list(messages)}),
                content_type="application/json",
                HTTP_AUTHORIZATION=f"Bearer {raw_key}",
            )
        assert response.status_code == 202
        return response.json()

    return send


@pytest.fixture
def inbound_mail(client, settings, django_capture_on_commit_callbacks):
    """Deliver a mail to the shop through anymail's Postmark inbound webhook."""
    settings.ANYMAIL = {"WEBHOOK_SECRET": "kairos:hook-secret"}
    credentials = base64.b64encode(b"kairos:hook-secret").decode()

    def deliver(
        sender: str,
        subject: str,
        *,
        text: str = "",
        html: str = "",
        headers: list | None = None,
        to: str = "help@shop.example",
    ):
        payload = {
            "FromFull": {"Email": sender, "Name": "Ann Example"},
            "ToFull": [{"Email": to, "Name": ""}],
            "Subject": subject,
            "TextBody": text,
            "HtmlBody": html,
            "Headers": headers or [],
        }
        with django_capture_on_commit_callbacks(execute=True):
            response = client.post(
                "/anymail/postmark/inbound/", json.dumps(payload), content_type="application/json",
                HTTP_AUTHORIZATION=f"Basic {credentials}",
            )  # fmt: skip
        assert response.status_code == 200

    return deliver


def received(smtp_server) -> Counter:
    return Counter(address for message in smtp_server.messages for address in message.rcpt_tos)


def body_of(received_message) -> str:
    return received_message.message.get_body(("plain",)).get_content()


def test_an_order_status_question_in_chinese_gets_a_chinese_reply_quoting_the_right_order(
    smtp_settings, workflows, api, office_hours
):
    customer = CustomerFactory(locale="de-DE")
    asked = OrderFactory(
        customer=customer,
        external_id="20260214-7788",
        placed_at=office_hours - timedelta(days=16),
        status=OrderStatus.PENDING,
        total=Decimal("59.90"),
    )
    OrderFactory(customer=customer, external_id="20260301-0001", placed_at=office_hours - timedelta(days=1))

    report = api(
        {
            "customer_id": customer.external_id,
            "channel": "chat",
            "subject": "订单查询",
            "body": f"你好，我的订单{asked.external_id}到哪了？都两周了。",
        }
    )

    message = InboundMessage.objects.get(pk=report["messages"][0]["id"])
    assert (message.language, message.intent, message.status) == ("zh", "order_status", InboundStatus.ANSWERED)
    assert received(smtp_settings) == {customer.email: 1}
    [reply] = smtp_settings.messages
    text = body_of(reply)
    assert reply.message["Subject"] == "回复：订单查询"
    assert reply.message["Auto-Submitted"] == "auto-replied"
    assert "以下是您询问的订单" in text
    assert "订单号：20260214-7788" in text
    assert f"下单日期：{asked.placed_at:%Y-%m-%d}" in text
    assert "订单状态：已收到，备货中" in text
    assert "金额：59.90 EUR" in text
    assert "20260301-0001" not in text
    assert Message.objects.get().kind == MessageKind.AUTO_REPLY
    assert Event.objects.get(name="message_received").properties["intent"] == "order_status"


def test_an_order_question_without_a_number_quotes_the_latest_order_and_says_so_when_there_is_none(
    smtp_settings, workflows, api, office_hours
):
    buyer = CustomerFactory()
    OrderFactory(customer=buyer, external_id="O-OLD", placed_at=office_hours - timedelta(days=40))
    OrderFactory(
        customer=buyer, external_id="O-NEW", placed_at=office_hours - timedelta(days=3), status=OrderStatus.COMPLETED
    )
    newcomer = CustomerFactory()

    api(
        {"customer_id": buyer.external_id, "body": "Hi, when will my order arrive? I haven't had any tracking yet."},
        {"customer_id": newcomer.external_id, "body": "Hello, where is my order? Still waiting for it."},
    )

    replies = {reply.rcpt_tos[0]: body_of(reply) for reply in smtp_settings.messages}
    assert set(replies) == {buyer.email, newcomer.email}
    assert "Here is your most recent order" in replies[buyer.email]
    assert "Order O-NEW, placed on" in replies[buyer.email] and "Status: completed" in replies[buyer.email]
    assert "O-OLD" not in replies[buyer.email]
    assert "We could not find an order under this e-mail address." in replies[newcomer.email]


def test_an_order_number_of_another_customer_is_never_quoted(smtp_settings, workflows, api, office_hours):
    asker = CustomerFactory()
    OrderFactory(customer=asker, external_id="A-1000", placed_at=office_hours - timedelta(days=2))
    OrderFactory(customer=CustomerFactory(), external_id="B-99887", placed_at=office_hours - timedelta(days=2))

    api({"customer_id": asker.external_id, "body": "Where is my order B-99887? It has not arrived."})

    [reply] = smtp_settings.messages
    text = body_of(reply)
    assert "We could not find an order B-99887 among the orders of this account." in text
    assert "A-1000" not in text and "placed on" not in text


def test_a_complaint_holds_the_next_broadcast_for_that_customer_and_needs_a_person(
    smtp_settings, workflows, api, broadcast_to, office_hours, time_machine, django_capture_on_commit_callbacks
):
    unhappy, content = CustomerFactory(), CustomerFactory()

    api(
        {
            "customer_id": unhappy.external_id,
            "body": "Your courier threw my parcel over the fence and the box was smashed. Terrible service, I'm really disappointed.",
        }
    )

    message = InboundMessage.objects.get()
    assert (message.intent, message.needs_person) == ("complaint", True)
    assert message.needs_person_reason == "a complaint or a strongly negative message"
    hold = PromotionHold.objects.get()
    assert (hold.customer_id, hold.until) == (unhappy.pk, office_hours + timedelta(days=14))
    assert smtp_settings.messages == []  # no reply to a complaint: a person answers it

    queue_broadcast(broadcast_to("Spring sale").pk)
    # A moment later, as a worker would: SQLite compares the queued time as text, and an equal instant
    # written by the raw INSERT of queue_broadcast does not compare as due.
    time_machine.move_to(office_hours + timedelta(seconds=1), tick=False)
    send_messages(list(Message.objects.values_list("pk", flat=True)))
    assert received(smtp_settings) == {content.email: 1}
    held = Message.objects.get(customer=unhappy)
    assert (held.status, held.error) == (
        MessageStatus.SUPPRESSED,
        f"promotional e-mail is held until {hold.until:%Y-%m-%d %H:%M} UTC after a complaint",
    )

    time_machine.move_to(office_hours + timedelta(days=14, minutes=1), tick=False)
    queue_broadcast(broadcast_to("Summer sale").pk)
    time_machine.move_to(office_hours + timedelta(days=14, minutes=2), tick=False)
    send_messages(list(Message.objects.filter(status=MessageStatus.QUEUED).values_list("pk", flat=True)))
    assert received(smtp_settings) == {content.email: 2, unhappy.email: 1}


def test_an_unsubscribe_request_suppresses_and_confirms(smtp_settings, workflows, api, broadcast_to):
    leaving = CustomerFactory()

    api({"customer_id": leaving.external_id, "body": "请不要再给我发促销邮件了，帮我退订，谢谢。"})

    assert Suppression.is_suppressed(leaving.email)
    assert Customer.objects.get(pk=leaving.pk).consent_state == Consent.OPTED_OUT
    [confirmation] = smtp_settings.messages
    assert confirmation.rcpt_tos == [leaving.email]
    assert confirmation.message["Subject"].strip() == "退订确认：Kairos Demo Shop营销邮件"
    assert f"按照您的要求，{leaving.email} 已退订" in body_of(confirmation)
    queue_broadcast(broadcast_to().pk)
    assert Message.objects.filter(kind=MessageKind.MARKETING).count() == 0


def test_an_auto_reply_from_the_customers_side_gets_no_answer(smtp_settings, workflows, api, inbound_mail):
    customer = CustomerFactory()

    api(
        {
            "customer_id": customer.external_id,
            "subject": "Automatic reply: where is my order",
            "body": "Where is my order? I'm out of the office until Monday.",
            "headers": {"Auto-Submitted": "auto-replied"},
        }
    )
    inbound_mail(
        customer.email,
        "Re: your order",
        text="Where is my order? I am away and will reply later.",
        headers=[{"Name": "X-Autoreply", "Value": "yes"}],
    )

    assert smtp_settings.messages == []
    assert Message.objects.count() == 0
    reasons = [message.actions[-1]["what"] for message in InboundMessage.objects.order_by("pk")]
    assert reasons == [
        "no automatic reply: sent by a program (Auto-Submitted: auto-replied)",
        "no automatic reply: an automatic reply (x-autoreply: yes)",
    ]


def test_mail_from_our_own_address_and_bounces_get_no_reply(smtp_settings, workflows, inbound_mail, settings):
    CustomerFactory(email="kairos@localhost")

    inbound_mail("kairos@localhost", "Where is my order", text="Where is my order? It has not arrived.")
    inbound_mail(
        "MAILER-DAEMON@mx.example.com", "Undelivered Mail Returned to Sender",
        text="Where is my order? This message could not be delivered.", headers=[{"Name": "Return-Path", "Value": "<>"}],
    )  # fmt: skip

    assert smtp_settings.messages == []
    own, bounce = InboundMessage.objects.order_by("pk")
    assert own.actions[-1]["what"] == "no automatic reply: sent from the shop's own address"
    assert (bounce.status, bounce.intent) == (InboundStatus.CLOSED, "")
    assert bounce.actions[-1]["what"].startswith("a bounce (empty return path), not a customer's message")


def test_automatic_replies_to_one_address_stop_at_the_daily_limit(smtp_settings, workflows, api, settings):
    customer = CustomerFactory()
    questions = [
        "Where is my order?",
        "Has my order shipped yet?",
        "Where is my order? Still waiting.",
        "Where is my parcel? No tracking yet.",
    ]

    api(*({"customer_id": customer.external_id, "body": question} for question in questions))

    assert received(smtp_settings) == {customer.email: settings.CONVERSATION_AUTO_REPLIES_PER_DAY}
    assert [m.intent for m in InboundMessage.objects.order_by("pk")] == ["order_status"] * 4
    assert [m.actions[-1]["what"].split(" with ")[0] for m in InboundMessage.objects.order_by("pk")] == [
        "replied automatically", "replied automatically", "replied automatically",
        "no automatic reply: 3 automatic replies went to this address in the last day already",
    ]  # fmt: skip


def test_an_inbound_mail_is_read_without_its_quote_and_the_reply_is_threaded(smtp_settings, workflows, inbound_mail):
    customer = CustomerFactory()

    inbound_mail(
        customer.email, "Re: Your order has shipped",
        html='<div>Hi, where is my order? Tracking shows nothing.</div><div class="gmail_quote">On Mon, Shop wrote:<blockquote>Your order has shipped.</blockquote></div>',
        headers=[{"Name": "Message-ID", "Value": "<m-1@mail.example.com>"}],
    )  # fmt: skip

    message = InboundMessage.objects.get()
    assert (message.body, message.customer_id, message.intent) == (
        "Hi, where is my order? Tracking shows nothing.",
        customer.pk,
        "order_status",
    )
    [reply] = smtp_settings.messages
    assert (reply.message["In-Reply-To"], reply.message["References"]) == (
        "<m-1@mail.example.com>",
        "<m-1@mail.example.com>",
    )


def test_below_the_confidence_threshold_nothing_automatic_happens(smtp_settings, workflows, api, settings):
    settings.CONVERSATION_MIN_CONFIDENCE = 0.999
    customer = CustomerFactory()

    api({"customer_id": customer.external_id, "body": "Where is my order?"})

    message = InboundMessage.objects.get()
    assert (message.status, message.needs_person) == (InboundStatus.OPEN, True)
    assert message.needs_person_reason.startswith("the model is not sure (order_status, confidence 0.")
    assert Event.objects.get().properties["automatic"] is False
    assert (Enrollment.objects.count(), len(smtp_settings.messages)) == (0, 0)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (
            "Wo ist meine Bestellung? Ich warte seit zwei Wochen.",
            "written in a language the model does not read (only English and Chinese)",
        ),
        ("注文した商品はいつ届きますか？", "written in a language the model does not read (only English and Chinese)"),
    ],
)
def test_a_message_in_another_language_waits_for_a_person(smtp_settings, workflows, api, body, reason):
    customer = CustomerFactory()

    api({"customer_id": customer.external_id, "body": body})

    message = InboundMessage.objects.get()
    assert (message.language, message.intent, message.confidence) == ("other", "other", 0.125)
    assert (message.needs_person, message.needs_person_reason) == (True, reason)
    assert (Enrollment.objects.count(), len(smtp_settings.messages)) == (0, 0)


def test_a_message_from_an_unknown_sender_waits_and_creates_no_customer(smtp_settings, workflows, api):
    api({"email": "stranger@example.org", "body": "Please unsubscribe me from your emails."})

    message = InboundMessage.objects.get()
    assert (message.customer_id, message.intent, message.needs_person_reason) == (
        None,
        "unsubscribe_request",
        "the sender is not a known customer",
    )
    assert (Customer.objects.count(), Event.objects.count(), Suppression.objects.count()) == (0, 0, 0)


def test_without_an_active_model_every_message_waits_for_a_person(db, smtp_settings, office_hours, api):
    customer = CustomerFactory()

    api({"customer_id": customer.external_id, "body": "Where is my order?"})

    message = InboundMessage.objects.get()
    assert (message.intent, message.needs_person_reason) == (
        "",
        "no intent model is active (python manage.py train_intents --activate)",
    )


def test_a_lost_task_is_repaired_by_the_next_beat_pass_exactly_once(
    smtp_settings, workflows, api, monkeypatch, django_capture_on_commit_callbacks
):
    customer = CustomerFactory()
    monkeypatch.setattr(process_messages_task, "apply_async", lambda *args, **kwargs: None)  # the broker loses it

    api({"customer_id": customer.external_id, "body": "Where is my order? It should have come by now."})
    assert InboundMessage.objects.get().status == InboundStatus.NEW
    assert smtp_settings.messages == []

    with django_capture_on_commit_callbacks(execute=True):
        assert process_unread_messages() == 1
    with django_capture_on_commit_callbacks(execute=True):
        assert process_unread_messages() == 0
        assert process_messages(list(InboundMessage.objects.values_list("pk", flat=True))) == 0

    assert received(smtp_settings) == {customer.email: 1}
    assert (Event.objects.filter(name="message_received").count(), Enrollment.objects.count()) == (1, 1)


def test_a_reply_to_a_suppressed_address_goes_only_when_the_customer_just_unsubscribed(smtp_settings, workflows, api):
    bounced, unsubscribed = CustomerFactory(), CustomerFactory()
    Suppression.suppress(bounced.email, "bounced")
    Suppression.suppress(unsubscribed.email, "unsubscribed")

    api(*({"customer_id": c.external_id, "body": "Where is my order?"} for c in (bounced, unsubscribed)))

    assert received(smtp_settings) == {unsubscribed.email: 1}
    assert Message.objects.get(customer=bounced).status == MessageStatus.SUPPRESSED


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({"intent": "weather"}, "trigger_config.intent"),
        ({"intent": "order_status", "min_confidence": 1.5}, "trigger_config.min_confidence"),
        ({"intent": "complaint", "sentiment": "furious"}, "trigger_config.sentiment"),
        ({"intent": "complaint", "match": "any"}, "trigger_config.match"),
    ],
)
def test_a_message_trigger_that_cannot_run_is_refused_with_its_field(workflows, config, field):
    campaign = Campaign.objects.get(name="Order status auto-reply")
    campaign.trigger_config = config

    with pytest.raises(CampaignError) as refused:
        check_campaign(campaign)

    assert refused.value.field == field


def test_the_workflows_are_installed_once_and_keep_a_marketers_edits(workflows):
    campaign = Campaign.objects.get(name="Complaint: hold promotions")
    campaign.description = "edited"
    campaign.save()

    again = install_workflows()

    assert [c.name for c in again] == [
        "Order status auto-reply",
        "Complaint: hold promotions",
        "Unsubscribe by message",
    ]
    assert Campaign.objects.count() == 3
    assert Campaign.objects.get(pk=campaign.pk).description == "edited"
    assert all(c.status == "active" for c in Campaign.objects.all())


def test_a_client_without_a_key_reaches_nothing(client, workflows):
    assert Client().post("/api/v1/messages", "{}", content_type="application/json").status_code == 401


def test_inbound_mail_without_the_webhook_secret_is_refused_and_stores_nothing(client, settings, workflows):
    settings.ANYMAIL = {"WEBHOOK_SECRET": "kairos:hook-secret"}
    customer = CustomerFactory()

    response = client.post(
        "/anymail/postmark/inbound/",
        json.dumps({"FromFull": {"Email": customer.email}, "ToFull": [{"Email": "help@shop.example"}], "Subject": "unsubscribe",
                    "TextBody": "Please unsubscribe me", "Headers": []}),
        content_type="application/json",
    )  # fmt: skip

    assert response.status_code == 400
    assert (InboundMessage.objects.count(), Suppression.objects.count()) == (0, 0)
