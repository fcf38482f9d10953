"""POST /api/v1/messages: the events API's keys and limits, a report per message, bad bodies refused one by one."""

import json

import pytest
from django.test import Client

from marketing.events import register_message_listener, unregister_message_listener
from marketing.inbound.store import MAX_MESSAGE_CHARS, store_messages
from marketing.models import ApiKey, InboundChannel, InboundMessage, InboundStatus
from tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db

URL = "/api/v1/messages"


@pytest.fixture
def raw_key() -> str:
    _, raw = ApiKey.issue("help desk")
    return raw


def post(client: Client, body, key: str | None = None):
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"HTTP_AUTHORIZATION": f"Bearer {key}"} if key else {}
    return client.generic("POST", URL, data, content_type="application/json", **headers)


@pytest.fixture
def heard():
    calls: list[list[int]] = []
    register_message_listener(calls.append)
    yield calls
    unregister_message_listener(calls.append)


def test_a_request_without_a_valid_key_is_refused_and_stores_nothing(client):
    assert post(client, {"messages": [{"body": "hi"}]}).status_code == 401
    assert post(client, {"messages": [{"body": "hi"}]}, key="kairos_00000000_" + "A" * 43).json() == {
        "error": "invalid API key"
    }
    assert InboundMessage.objects.count() == 0


def test_good_messages_are_stored_and_bad_ones_reported_by_index_and_field(
    client, raw_key, office_hours, django_capture_on_commit_callbacks
):
    known = CustomerFactory(external_id="C1", email="ann@example.com")
    by_address = CustomerFactory(external_id="C2", email="bob@example.com")
    batch = {
        "messages": [
            {"id": "chat-1", "customer_id": "C1", "channel": "chat", "body": "Where is my order?"},
            {
                "email": "BOB@example.com",
                "subject": "Hello",
                "html": "<p>Refund <b>please</b></p><blockquote>old</blockquote>",
            },
            {"email": "stranger@example.org", "body": "Do you ship to Oslo?"},
            {"customer_id": "C1", "body": ""},
            {"customer_id": "C1", "body": " \n\t "},
            {"customer_id": "C1", "body": "binary\x00data"},
            {"customer_id": "C1", "body": "\x01\x02\x03\x04 garbage \x05\x06"},
            {"customer_id": "C1", "body": "x" * (MAX_MESSAGE_CHARS + 1)},
            {"customer_id": "C1", "body": "hi", "channel": "fax", "mood": "angry"},
            {"customer_id": "C1", "body": "> only a quote\n> of an older mail"},
            {"customer_id": "C1"},
            "not an object",
            {"customer_id": "C1", "body": "later", "received_at": "2030-01-01T00:00:00Z"},
        ]
    }

    with django_capture_on_commit_callbacks() as callbacks:
        response = post(client, batch, key=raw_key)

    assert response.status_code == 202
    report = response.json()
    stored = list(InboundMessage.objects.order_by("pk"))
    assert (report["received"], report["stored"], report["rejected"], report["customers_matched"]) == (13, 3, 10, 2)
    assert report["messages"] == [
        {"index": index, "id": message.pk} for index, message in zip([0, 1, 2], stored, strict=True)
    ]
    assert [(error["index"], error["field"]) for error in report["errors"]] == [
        (3, "body"), (4, "body"), (5, "body"), (6, "body"), (7, "body"), (8, "mood"), (8, "channel"), (9, "body"), (10, "body"),
        (11, None), (12, "received_at"),
    ]  # fmt: skip
    errors = {(error["index"], error["field"]): error["error"] for error in report["errors"]}
    assert errors[(3, "body")] == "is blank: it has no text, only whitespace or markup"
    assert errors[(4, "body")] == "is blank: it has no text, only whitespace or markup"
    assert errors[(5, "body")] == "contains a NUL character (\\u0000): this looks like binary data, not text"
    assert errors[(6, "body")] == "6 of its 15 characters are control characters: binary data, not text"
    assert errors[(7, "body")] == f"is {MAX_MESSAGE_CHARS + 1:,} characters; at most {MAX_MESSAGE_CHARS:,} are accepted"
    assert errors[(8, "mood")] == (
        "is not a field of a message; fields: id, customer_id, email, name, channel, subject, body, html, received_at, headers"
    )
    assert errors[(8, "channel")] == "'fax' is not a channel; use one of email, chat, web_form, sms, social, other"
    assert errors[(9, "body")] == "has no words of its own once quoted replies and signatures are removed"
    assert errors[(10, "body")] == "is required (the message's text; or send it as html)"
    assert errors[(11, None)] == "each message must be a JSON object, not a string"
    assert [(m.customer_id, m.channel, m.subject, m.body, m.status, m.received_at) for m in stored] == [
        (known.pk, InboundChannel.CHAT, "", "Where is my order?", InboundStatus.NEW, office_hours),
        (by_address.pk, InboundChannel.CHAT, "Hello", "Refund please", InboundStatus.NEW, office_hours),
        (None, InboundChannel.CHAT, "", "Do you ship to Oslo?", InboundStatus.NEW, office_hours),
    ]
    # Listeners hear of the stored messages once, after commit.
    assert [(callback.func.__name__, callback.args) for callback in callbacks] == [
        ("notify_messages_stored", ([message.pk for message in stored],))
    ]


def test_listeners_are_called_with_the_new_ids_and_a_failing_one_costs_nothing(heard):
    from marketing.events import notify_messages_stored

    def broken(ids):
        raise RuntimeError("down")

    register_message_listener(broken)
    try:
        notify_messages_stored([4, 5])
    finally:
        unregister_message_listener(broken)

    assert heard == [[4, 5]]


def test_a_resent_message_is_stored_once(client, raw_key, office_hours):
    batch = {"messages": [{"id": "chat-9", "body": "Where is my order?"}, {"body": "Same content twice"}]}

    first = post(client, batch, key=raw_key).json()
    second = post(client, batch, key=raw_key).json()

    assert (first["stored"], second["stored"], second["duplicates"], second["duplicate_indexes"]) == (2, 0, 2, [0, 1])
    assert InboundMessage.objects.count() == 2


def test_batches_beyond_the_limits_are_refused_whole(client, raw_key, settings):
    too_many = {"messages": [{"body": "hi"}] * 1_001}

    response = post(client, too_many, key=raw_key)
    assert response.status_code == 413
    assert response.json() == {"error": "a batch holds at most 1,000 messages, this one has 1,001; split it"}

    settings.API_MAX_BODY_BYTES = 100
    response = post(client, {"messages": [{"body": "x" * 200}]}, key=raw_key)
    assert response.status_code == 413
    assert response.json() == {"error": "the body is larger than 100 bytes; send fewer messages per request"}
    assert post(client, b'{"messages": [', key=raw_key).status_code == 400
    assert post(client, {"events": []}, key=raw_key).json() == {
        "error": "unknown top-level field 'events'; the body has one field, \"messages\""
    }
    assert InboundMessage.objects.count() == 0


def test_headers_of_a_program_mark_the_message_as_never_to_be_answered(office_hours):
    report = store_messages(
        [
            {
                "email": "ann@example.com",
                "body": "I am out of the office.",
                "headers": {"Auto-Submitted": "auto-replied"},
            }
        ],
        office_hours,
    )

    assert report.rejected == 0
    assert InboundMessage.objects.get().no_reply_reason == "sent by a program (Auto-Submitted: auto-replied)"


def test_the_openapi_document_describes_the_messages_endpoint(client):
    document = client.get("/api/v1/openapi.json").json()

    operation = document["paths"]["/api/v1/messages"]["post"]
    assert operation["operationId"] == "ingestMessages"
    assert set(operation["responses"]) == {"202", "400", "401", "405", "413"}
    assert document["components"]["schemas"]["MessageBatch"]["properties"]["messages"]["maxItems"] == 1_000
    assert set(document["components"]["schemas"]["InboundMessage"]["properties"]) == {
        "id", "customer_id", "email", "name", "channel", "subject", "body", "html", "received_at", "headers",
    }  # fmt: skip
