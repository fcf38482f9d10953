"""The conversation inbox: filters, correcting labels for the next training, replying by template, nothing unescaped."""

import pytest
from django.contrib.auth.models import Permission
from django.utils import timezone

from campaigns.conversations.workflows import ORDER_STATUS_REPLY, install_reply_templates
from campaigns.models import EmailTemplate, Message, MessageKind
from marketing.models import InboundMessage, InboundStatus
from ml.intent_registry import corrections
from tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db

URL = "/admin/marketing/inboundmessage/"
HOSTILE = '<script>alert("inbox")</script><img src=x onerror=alert(1)>'


@pytest.fixture
def staff_client(client, django_user_model):
    user = django_user_model.objects.create_superuser("agent", "agent@shop.example", "a-long-admin-passphrase")
    client.force_login(user)
    return client


@pytest.fixture
def viewer_client(client, django_user_model):
    user = django_user_model.objects.create_user(
        "viewer", "viewer@shop.example", "a-long-admin-passphrase", is_staff=True
    )
    user.user_permissions.add(Permission.objects.get(codename="view_inboundmessage"))
    client.force_login(user)
    return client


def inbound(body: str, **fields) -> InboundMessage:
    defaults = {
        "external_id": f"m-{InboundMessage.objects.count()}",
        "received_at": timezone.now(),
        "status": InboundStatus.OPEN,
    }
    return InboundMessage.objects.create(body=body, **(defaults | fields))


def test_the_inbox_filters_by_needs_a_person_intent_and_status(staff_client, office_hours):
    waiting = inbound("Do you ship to Oslo?", intent="product_question", needs_person=True, from_email="a@example.com")
    answered = inbound(
        "Where is my order?", intent="order_status", status=InboundStatus.ANSWERED, from_email="b@example.com"
    )
    inbound("Thanks!", intent="praise", status=InboundStatus.CLOSED, from_email="c@example.com")

    def listed(query: str) -> set[int]:
        response = staff_client.get(f"{URL}?{query}")
        assert response.status_code == 200
        return {row.pk for row in response.context["cl"].result_list}

    assert listed("needs_person__exact=1") == {waiting.pk}
    assert listed("intent=order_status") == {answered.pk}
    assert listed("status__exact=answered") == {answered.pk}


def test_nothing_a_customer_wrote_is_rendered_as_markup(staff_client, office_hours):
    message = inbound(HOSTILE, subject=HOSTILE, from_email="x@example.com", original=HOSTILE, intent="other")
    message.record(f"flagged for a person: {HOSTILE}", office_hours)
    message.save()

    pages = [
        staff_client.get(URL).content.decode(),
        staff_client.get(f"{URL}{message.pk}/change/").content.decode(),
        staff_client.post(URL, {"action": "correct_label", "_selected_action": [message.pk]}).content.decode(),
    ]

    for page in pages:
        assert "<script>alert" not in page
        assert "<img src=x onerror" not in page
        assert "&lt;script&gt;alert" in page


def test_correcting_the_label_stores_it_for_the_next_training(staff_client, office_hours):
    message = inbound("Is the blue mug back in stock soon?", intent="other", sentiment="neutral")

    form = staff_client.post(URL, {"action": "correct_label", "_selected_action": [message.pk]})
    assert form.status_code == 200 and b"Correct the intent and sentiment" in form.content
    response = staff_client.post(
        URL,
        {
            "action": "correct_label",
            "_selected_action": [message.pk],
            "apply": "1",
            "intent": "product_question",
            "sentiment": "",
        },
    )

    assert response.status_code == 302
    message.refresh_from_db()
    assert (message.corrected_intent, message.corrected_sentiment, message.corrected_by, message.corrected_at) == (
        "product_question",
        "",
        "agent",
        office_hours,
    )
    assert message.actions[-1]["what"] == "label corrected by agent: product_question"
    assert [(e.text, e.intent, e.sentiment) for e in corrections()] == [
        ("Is the blue mug back in stock soon?", "product_question", "neutral")
    ]


def test_a_reply_by_template_goes_out_to_the_customer_in_their_language(
    staff_client, office_hours, smtp_settings, django_capture_on_commit_callbacks
):
    install_reply_templates()
    customer = CustomerFactory()
    message = inbound(
        "我的订单什么时候到？",
        customer=customer,
        from_email=customer.email,
        language="zh",
        needs_person=True,
        needs_person_reason="unsure",
    )
    template = EmailTemplate.objects.get(name=ORDER_STATUS_REPLY)

    with django_capture_on_commit_callbacks(execute=True):
        response = staff_client.post(
            URL,
            {"action": "reply_with_template", "_selected_action": [message.pk], "apply": "1", "template": template.pk},
        )

    assert response.status_code == 302
    [sent] = smtp_settings.messages
    assert sent.rcpt_tos == [customer.email]
    assert "我们没有找到与此邮箱关联的订单" in sent.message.get_body(("plain",)).get_content()
    assert sent.message["Auto-Submitted"] is None  # a person wrote this one
    reply = Message.objects.get()
    assert (reply.kind, reply.inbound_message_id) == (MessageKind.REPLY, message.pk)
    message.refresh_from_db()
    assert (message.status, message.needs_person) == (InboundStatus.ANSWERED, False)
    assert (
        message.actions[-1]["what"]
        == f"replied by agent with {ORDER_STATUS_REPLY!r} to {customer.email} (message {reply.pk})"
    )


def test_a_viewer_sees_the_inbox_but_changes_nothing(viewer_client, office_hours):
    message = inbound("Where is my order?", intent="order_status")

    assert viewer_client.get(URL).status_code == 200
    response = viewer_client.post(
        URL, {"action": "correct_label", "_selected_action": [message.pk], "apply": "1", "intent": "praise"}
    )

    message.refresh_from_db()
    assert response.status_code in (200, 302)
    assert message.corrected_intent == ""
    assert viewer_client.get(f"{URL}add/").status_code == 403
