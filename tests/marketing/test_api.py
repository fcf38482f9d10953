"""The events API: keys, refusals, per-event validation, idempotency, listeners and the OpenAPI document."""

import hashlib
import io
import json
import logging
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection, transaction
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from marketing import ingest
from marketing.api import BodyTooLarge, read_body
from marketing.events import notify_events_stored, register_event_listener, unregister_event_listener
from marketing.imports.importer import import_file
from marketing.ingest import FieldError, parse_event_name, parse_properties, store_events
from marketing.models import ApiKey, Customer, Event
from tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db

URL = "/api/v1/events"


def event(**fields) -> dict:
    base = {"customer_id": "C00042", "name": "cart_added", "occurred_at": "2024-12-31T18:30:00+01:00"}
    return {**base, **fields}


@pytest.fixture
def raw_key() -> str:
    _, raw = ApiKey.issue("shop backend")
    return raw


def post(client, body, key: str | None = None, **headers):
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    if key is not None:
        headers.setdefault("HTTP_AUTHORIZATION", f"Bearer {key}")
    return client.generic("POST", URL, data, content_type="application/json", **headers)


@pytest.fixture
def heard():
    calls: list[list[int]] = []
    register_event_listener(calls.append)
    yield calls
    unregister_event_listener(calls.append)


# Authentication


def test_a_request_without_a_key_is_refused_and_stores_nothing(client):
    response = post(client, {"events": [event()]})

    assert response.status_code == 401
    assert response.json() == {"error": "missing API key; send Authorization: Bearer <key> or X-Api-Key: <key>"}
    assert response["WWW-Authenticate"] == 'Bearer realm="kairos"'
    assert Event.objects.count() == 0
    assert Customer.objects.count() == 0


@pytest.mark.parametrize(
    "presented",
    [
        "not-a-kairos-key",
        "kairos_00000000_" + "A" * 43,  # well formed, never issued
        "kairos_",
    ],
)
def test_a_wrong_key_is_refused_and_stores_nothing(client, raw_key, presented):
    response = post(client, {"events": [event()]}, key=presented)

    assert response.status_code == 401
    assert response.json() == {"error": "invalid API key"}
    assert Event.objects.count() == 0
    assert Customer.objects.count() == 0


def test_a_key_with_the_right_prefix_but_another_secret_is_refused(client, raw_key):
    forged = raw_key[:-1] + ("A" if raw_key[-1] != "A" else "B")

    response = post(client, {"events": [event()]}, key=forged)

    assert response.status_code == 401
    assert response.json() == {"error": "invalid API key"}
    assert Event.objects.count() == 0


def test_a_revoked_key_is_refused_and_stores_nothing(client, raw_key):
    ApiKey.objects.update(revoked_at=timezone.now())

    response = post(client, {"events": [event()]}, key=raw_key)

    assert response.status_code == 401
    assert response.json() == {"error": "this API key was revoked; create a new one in the admin"}
    assert Event.objects.count() == 0
    assert ApiKey.objects.get().last_used_at is None


def test_the_key_may_come_in_x_api_key(client, raw_key):
    response = post(client, {"events": [event()]}, HTTP_X_API_KEY=raw_key)

    assert response.status_code == 202
    assert Event.objects.count() == 1


def test_a_used_key_records_when_at_most_once_a_minute(client, raw_key):
    post(client, {"events": []}, key=raw_key)
    first = ApiKey.objects.get().last_used_at

    post(client, {"events": []}, key=raw_key)

    assert first is not None
    assert ApiKey.objects.get().last_used_at == first


def test_keys_are_stored_only_as_hashes(client, raw_key):
    post(client, {"events": [event()]}, key=raw_key)
    api_key = ApiKey.objects.get()
    secret = raw_key.split("_", 2)[2]

    with connection.cursor() as cursor:
        found = []
        for table in connection.introspection.table_names(cursor):
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")
            found += [table for row in cursor.fetchall() if secret in repr(row)]

    assert found == []
    assert api_key.key_hash == hashlib.sha256(raw_key.encode()).hexdigest()
    assert raw_key.startswith(api_key.prefix + "_")


def test_the_api_needs_no_csrf_token(raw_key):
    client = Client(enforce_csrf_checks=True)

    response = post(client, {"events": [event()]}, key=raw_key)

    assert response.status_code == 202


def test_only_post_is_accepted(client, raw_key):
    response = client.get(URL, HTTP_AUTHORIZATION=f"Bearer {raw_key}")

    assert response.status_code == 405
    assert response["Allow"] == "POST"
    assert response.json() == {"error": "use POST"}


# Refused bodies


@pytest.mark.parametrize(
    "body, message",
    [
        (b"", 'the body is empty; send a JSON object such as {"events": [...]}'),
        (b'{"events": [', "malformed JSON: Expecting value at line 1, column 13"),
        (
            b'{"events": [{"customer_id": "C1",}]}',
            "malformed JSON: Expecting property name enclosed in double quotes at line 1, column 34",
        ),
        (b"\xff\xfe{}", "the body is not UTF-8 (byte 0)"),
        (b'{"events": [{"properties": {"x": NaN}}]}', "malformed JSON: NaN is not a JSON value"),
        (b"[]", 'the body must be a JSON object such as {"events": [...]}'),
        (b'{"event": []}', "unknown top-level field 'event'; the body has one field, \"events\""),
        (b'{"events": {"customer_id": "C1"}}', '"events" must be an array of event objects'),
        (b"[" * 100_000 + b"]" * 100_000, "malformed JSON: nested too deeply"),
    ],
)
def test_a_malformed_body_is_refused_and_stores_nothing(client, raw_key, body, message):
    response = post(client, body, key=raw_key)

    assert response.status_code == 400
    assert response.json() == {"error": message}
    assert Event.objects.count() == 0
    assert Customer.objects.count() == 0


def test_a_body_over_the_limit_is_refused_by_its_length(client, raw_key, settings):
    settings.API_MAX_BODY_BYTES = 1_000
    body = json.dumps({"events": [event(properties={"note": "x" * 1_000})]}).encode()

    response = post(client, body, key=raw_key)

    assert response.status_code == 413
    assert response.json() == {"error": "the body is larger than 1,000 bytes; send fewer events per request"}
    assert Event.objects.count() == 0


def test_a_body_at_the_limit_is_read(client, raw_key, settings):
    body = json.dumps({"events": [event()]}).encode()
    settings.API_MAX_BODY_BYTES = len(body)

    response = post(client, body, key=raw_key)

    assert response.status_code == 202
    assert Event.objects.count() == 1


@pytest.mark.parametrize("declared", [None, 5])
def test_a_body_longer_than_declared_is_refused_while_reading(declared):
    with pytest.raises(BodyTooLarge):
        read_body(io.BytesIO(b"x" * 200_000), declared, 100_000)


def test_a_body_is_read_whole_up_to_the_limit():
    assert read_body(io.BytesIO(b"x" * 100_000), None, 100_000) == b"x" * 100_000


def test_more_than_a_thousand_events_are_refused(client, raw_key):
    events = [event(id=f"evt-{n}") for n in range(1_001)]

    response = post(client, {"events": events}, key=raw_key)

    assert response.status_code == 413
    assert response.json() == {"error": "a batch holds at most 1,000 events, this one has 1,001; split it"}
    assert Event.objects.count() == 0
    assert Customer.objects.count() == 0


def test_a_thousand_events_are_stored(client, raw_key):
    events = [event(id=f"evt-{n}", customer_id=f"C{n % 10}") for n in range(1_000)]

    response = post(client, {"events": events}, key=raw_key)

    assert response.status_code == 202
    assert response.json()["stored"] == 1_000
    assert Event.objects.count() == 1_000
    assert Customer.objects.count() == 10


# Validation, event by event


def test_good_events_are_stored_and_bad_ones_reported_by_index_and_field(client, raw_key):
    future = (timezone.now() + timedelta(hours=1)).isoformat()
    events = [
        event(id="good-1", properties={"sku": "P7", "quantity": 2}),
        event(customer_id=True, properties=[1, 2]),
        {},
        event(name="Cart Added"),
        event(name="cart_add"),
        event(occurred_at="yesterday"),
        event(occurred_at="2024-12-31T18:30:00"),
        event(occurred_at=future),
        event(occured_at="2024-12-31T18:30:00Z", occurred_at=None),
        "cart_added",
        event(id="good-2", customer_id=42, occurred_at="2024-12-31T17:30:00Z"),
    ]

    response = post(client, {"events": events}, key=raw_key)

    assert response.status_code == 202
    body = response.json()
    errors = body.pop("errors")
    assert body == {
        "received": 11,
        "stored": 2,
        "duplicates": 0,
        "rejected": 9,
        "customers_created": 2,
        "duplicate_indexes": [],
    }
    assert [(e["index"], e["field"]) for e in errors] == [
        (1, "customer_id"),
        (1, "properties"),
        (2, "customer_id"),
        (2, "name"),
        (2, "occurred_at"),
        (3, "name"),
        (4, "name"),
        (5, "occurred_at"),
        (6, "occurred_at"),
        (7, "occurred_at"),
        (8, "occured_at"),
        (8, "occurred_at"),
        (9, None),
    ]
    assert errors[0]["error"] == "must be a string, not a boolean"
    assert errors[1]["error"] == "must be a JSON object, not an array"
    assert errors[2]["error"] == "is required"
    assert (
        errors[5]["error"]
        == "'Cart Added' is not snake_case (lower-case letters, digits and single underscores, e.g. cart_added); "
        "did you mean 'cart_added'?"
    )
    assert (
        errors[6]["error"]
        == "'cart_add' does not end in a past-tense verb; name what happened, e.g. product_viewed or order_placed"
    )
    assert errors[7]["error"] == "'yesterday' is not an ISO 8601 date and time such as 2024-12-31T18:30:00+01:00"
    assert (
        errors[8]["error"] == "'2024-12-31T18:30:00' has no UTC offset; add one, e.g. 2024-12-31T18:30:00+01:00 or ...Z"
    )
    assert errors[9]["error"].startswith(f"{future!r} is 3600 s in the future") or errors[9]["error"].startswith(
        f"{future!r} is 3599 s"
    )
    assert (
        errors[10]["error"]
        == "is not a field of an event; fields: id, customer_id, name, occurred_at, properties, email"
    )
    assert errors[12]["error"] == "each event must be a JSON object, not a string"
    stored = sorted(
        Event.objects.values_list("external_id", "customer__external_id", "name", "occurred_at", "properties")
    )
    moment = datetime(2024, 12, 31, 17, 30, tzinfo=UTC)
    assert stored == [
        ("good-1", "C00042", "cart_added", moment, {"sku": "P7", "quantity": 2}),
        ("good-2", "42", "cart_added", moment, {}),
    ]


@pytest.mark.parametrize(
    "name", ["cart_added", "logged_in", "signed_up", "message_sent", "order_paid", "opted_out", "checkout_started"]
)
def test_past_tense_snake_case_names_are_accepted(name):
    assert parse_event_name(name) == name


@pytest.mark.parametrize(
    "name", ["CartAdded", "cart__added", "_cart_added", "cart-added", "page_view", "checkout", "a" * 63 + "ed"]
)
def test_other_names_are_refused(name):
    with pytest.raises(FieldError):
        parse_event_name(name)


@pytest.mark.parametrize(
    "properties, message",
    [
        ({"note": "x" * 16_400}, "is 16,411 bytes of JSON; at most 16,384 are allowed"),
        ({"note": "a\x00b"}, "contains a NUL character (\\u0000)"),
        ({"a\x00": 1}, "contains a NUL character (\\u0000) in a key"),
        ({"note": "\ud800"}, "contains invalid Unicode (a lone surrogate escape such as \\ud800)"),
        ({"a": [[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]}, "is nested deeper than 16 levels"),
    ],
)
def test_properties_that_no_database_could_store_are_refused(properties, message):
    with pytest.raises(FieldError) as refused:
        parse_properties(properties)

    assert str(refused.value) == message


def test_a_nul_in_properties_rejects_only_that_event(client, raw_key):
    body = b'{"events": [{"customer_id": "C1", "name": "cart_added", "occurred_at": "2024-12-31T18:30:00Z", "properties": {"note": "a\\u0000b"}}, {"customer_id": "C1", "name": "cart_added", "occurred_at": "2024-12-31T18:31:00Z"}]}'

    response = post(client, body, key=raw_key)

    assert response.status_code == 202
    assert response.json()["errors"] == [
        {"index": 0, "field": "properties", "error": "contains a NUL character (\\u0000)"}
    ]
    assert Event.objects.count() == 1


# Idempotency and customers


def test_a_replayed_batch_is_stored_once_and_reported_as_duplicates(client, raw_key):
    batch = {"events": [event(id="evt-1"), event(occurred_at="2024-12-31T18:45:00+01:00")]}
    first = post(client, batch, key=raw_key)

    replay = post(client, batch, key=raw_key)

    assert first.json()["stored"] == 2
    assert replay.status_code == 202
    assert replay.json() == {
        "received": 2,
        "stored": 0,
        "duplicates": 2,
        "rejected": 0,
        "customers_created": 0,
        "duplicate_indexes": [0, 1],
        "errors": [],
    }
    assert Event.objects.count() == 2


def test_an_id_repeated_within_a_batch_is_stored_once(client, raw_key):
    batch = {"events": [event(id="evt-1"), event(id="evt-1", name="cart_removed")]}

    response = post(client, batch, key=raw_key)

    assert response.json()["duplicate_indexes"] == [1]
    assert list(Event.objects.values_list("external_id", "name")) == [("evt-1", "cart_added")]


def test_identical_events_without_ids_in_one_batch_are_two_events_and_a_replay_adds_none(client, raw_key):
    batch = {"events": [event(), event()]}

    first = post(client, batch, key=raw_key)
    replay = post(client, batch, key=raw_key)

    assert first.json()["stored"] == 2
    assert replay.json()["duplicates"] == 2
    assert Event.objects.count() == 2


def test_an_event_imported_from_a_file_is_not_stored_again_by_the_api(client, raw_key, tmp_path):
    record = event(properties={"sku": "P7"})
    path = tmp_path / "events.jsonl"
    path.write_text(
        json.dumps({"customer": record["customer_id"], **{k: v for k, v in record.items() if k != "customer_id"}})
        + "\n"
    )
    import_file("events", path)

    response = post(client, {"events": [record]}, key=raw_key)

    assert response.json()["duplicate_indexes"] == [0]
    assert Event.objects.count() == 1


def test_an_unknown_customer_is_created_with_the_events_address(client, raw_key):
    response = post(client, {"events": [event(customer_id="C-NEW", email=" Ann@Example.com ")]}, key=raw_key)

    assert response.json()["customers_created"] == 1
    customer = Customer.objects.get(external_id="C-NEW")
    assert (customer.email, customer.email_hash != "") == ("ann@example.com", True)
    assert Event.objects.get().customer == customer


def test_an_events_address_fills_a_blank_one_but_never_replaces_one(client, raw_key):
    blank = CustomerFactory(external_id="C-BLANK", email="")
    known = CustomerFactory(external_id="C-KNOWN", email="known@example.com")
    events = [
        event(customer_id="C-BLANK", email="new@example.com"),
        event(customer_id="C-KNOWN", email="other@example.com"),
    ]

    response = post(client, {"events": events}, key=raw_key)

    assert response.json()["customers_created"] == 0
    blank.refresh_from_db()
    known.refresh_from_db()
    assert (blank.email, known.email) == ("new@example.com", "known@example.com")
    assert Customer.objects.count() == 2


# Listeners


@pytest.mark.django_db(transaction=True)
def test_listeners_hear_the_stored_ids_after_commit(client, raw_key, heard):
    response = post(client, {"events": [event(id="evt-1"), "bad", event(id="evt-2")]}, key=raw_key)
    replay = post(client, {"events": [event(id="evt-1")]}, key=raw_key)

    assert (response.status_code, replay.status_code) == (202, 202)
    assert heard == [sorted(Event.objects.values_list("pk", flat=True))]
    assert len(heard[0]) == 2


@pytest.mark.django_db(transaction=True)
def test_listeners_are_not_called_when_the_transaction_rolls_back(heard):
    with pytest.raises(RuntimeError), transaction.atomic():
        report = store_events([event(id="evt-1")], timezone.now())
        assert len(report.stored_ids) == 1
        raise RuntimeError("the caller failed after storing")

    assert heard == []
    assert Event.objects.count() == 0


def test_a_failing_listener_is_logged_and_the_others_still_run(caplog, heard):
    def broken(event_ids: list[int]) -> None:
        raise LookupError("engine down")

    register_event_listener(broken)
    try:
        with caplog.at_level(logging.ERROR, logger="kairos.events"):
            notify_events_stored([7, 8])
    finally:
        unregister_event_listener(broken)

    assert heard == [[7, 8]]
    assert [record.levelname for record in caplog.records] == ["ERROR"]


def test_a_listener_registered_twice_is_refused(heard):
    with pytest.raises(ValueError):
        register_event_listener(heard.append)


# OpenAPI


def resolve(document: dict, ref: str) -> dict:
    node = document
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    return node


def refs(node) -> list[str]:
    if isinstance(node, dict):
        return ([node["$ref"]] if "$ref" in node else []) + [r for value in node.values() for r in refs(value)]
    if isinstance(node, list):
        return [r for value in node for r in refs(value)]
    return []


def test_the_openapi_document_describes_every_status_schema_and_the_auth(client, raw_key):
    response = client.get("/api/v1/openapi.json")
    document = json.loads(response.content)

    assert response.status_code == 200
    assert document["openapi"] == "3.1.0"
    operation = document["paths"]["/api/v1/events"]["post"]
    assert sorted(operation["responses"]) == ["202", "400", "401", "405", "413"]
    assert sorted(document["components"]["securitySchemes"]) == ["apiKeyHeader", "bearerAuth"]
    assert document["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    assert document["components"]["securitySchemes"]["apiKeyHeader"]["name"] == "X-Api-Key"
    assert all(resolve(document, ref) for ref in refs(document))
    assert operation["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/EventBatch"
    }
    event_schema = document["components"]["schemas"]["Event"]
    assert sorted(event_schema["properties"]) == sorted(
        ["id", "customer_id", "name", "occurred_at", "properties", "email"]
    )
    report_schema = document["components"]["schemas"]["IngestReport"]
    example = operation["requestBody"]["content"]["application/json"]["example"]
    accepted = post(client, example, key=raw_key).json()
    assert sorted(accepted) == sorted(report_schema["required"]) == sorted(report_schema["properties"])


# Admin


@pytest.fixture
def staff(client, django_user_model):
    user = django_user_model.objects.create_superuser("boss", "boss@example.com", "a-long-passphrase")
    client.force_login(user)
    return client


def test_creating_a_key_in_the_admin_shows_it_once_on_the_page_and_never_in_a_cookie(staff):
    response = staff.post(reverse("admin:marketing_apikey_add"), {"name": "shop backend"})

    api_key = ApiKey.objects.get()
    page = response.content.decode()
    raw = page.split('<code id="new-api-key"', 1)[1].split(">", 1)[1].split("<", 1)[0]
    assert response.status_code == 200
    assert ApiKey.find(raw) == api_key
    assert "no-store" in response["Cache-Control"]
    assert all(raw not in morsel.value for morsel in response.cookies.values())
    assert all(raw not in str(value) for value in staff.session.values())
    assert list(response.context["messages"]) == []
    again = staff.get(reverse("admin:marketing_apikey_change", args=[api_key.pk]))
    assert raw not in again.content.decode()
    assert all(raw not in morsel.value for morsel in staff.cookies.values())


def test_the_admin_revokes_keys(staff, raw_key):
    api_key = ApiKey.objects.get()

    staff.post(
        reverse("admin:marketing_apikey_changelist"), {"action": "revoke_keys", "_selected_action": [api_key.pk]}
    )

    api_key.refresh_from_db()
    assert api_key.is_revoked
    assert post(Client(), {"events": [event()]}, key=raw_key).status_code == 401


def test_an_id_stored_by_another_request_meanwhile_counts_as_a_duplicate(monkeypatch):
    resolve_customers = ingest._customer_ids

    def racing(events, report, now):
        # Another request stores evt-1 after this one read which ids exist, before it writes.
        if not Event.objects.filter(external_id="evt-1").exists():
            Event.objects.create(external_id="evt-1", customer=CustomerFactory(), name="cart_added", occurred_at=now)
        return resolve_customers(events, report, now)

    monkeypatch.setattr(ingest, "_customer_ids", racing)

    report = store_events([event(id="evt-1"), event(id="evt-2")], timezone.now())

    assert (len(report.stored_ids), report.duplicate_indexes, report.errors) == (1, [0], [])
    assert sorted(Event.objects.values_list("external_id", flat=True)) == ["evt-1", "evt-2"]
