"""The conversations step of `make demo`: trained, installed, fed through the API, and said what it did."""

from io import StringIO

import pytest
from django.core.management import call_command

from campaigns.models import Campaign, Message, MessageStatus
from marketing.demo.store import generate_store
from marketing.models import InboundMessage

pytestmark = pytest.mark.django_db(transaction=True)  # commits, so work after commit runs as in the demo


def test_the_demo_trains_launches_the_workflows_and_reports_each_message(office_hours):
    generate_store(customers=80, days=90, seed=5, end_date=office_hours.date())
    output = StringIO()

    call_command("conversation_demo", stdout=output)

    printed = output.getvalue()
    assert "activated message_intents v1 (active)" in printed
    assert set(Campaign.objects.values_list("name", "status")) == {
        ("Order status auto-reply", "active"), ("Complaint: hold promotions", "active"), ("Unsubscribe by message", "active"),
    }  # fmt: skip
    assert "POST /api/v1/messages with 7 messages: 202, 6 stored, 1 refused" in printed
    assert "item 6 of the batch refused: body: is blank: it has no text, only whitespace or markup" in printed
    assert InboundMessage.objects.count() == 6
    assert Message.objects.filter(status=MessageStatus.SENT).count() == 3
    assert "no automatic reply: sent by a program (Auto-Submitted: auto-replied)" in printed
    assert "needs a person: written in a language the model does not read" in printed
