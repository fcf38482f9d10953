"""Brute force: admin logins lock out, the API throttles keys and addresses, a replayed click counts once."""

import pytest
from django.core.cache import cache
from django.test import Client

from marketing.models import ApiKey, Event

PASSWORD = "the-right-passphrase-42"


@pytest.fixture(autouse=True)
def fresh_counters():
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def boss(django_user_model):
    return django_user_model.objects.create_superuser("boss", "boss@shop.example", PASSWORD)


def _login(client: Client, password: str, address: str = "203.0.113.5"):
    return client.post(
        "/admin/login/?next=/admin/", {"username": "boss", "password": password}, REMOTE_ADDR=address
    )


def test_thirty_wrong_passwords_lock_the_account_out_even_for_the_right_one(boss, settings):
    client = Client()

    for attempt in range(30):
        _login(client, f"wrong-{attempt}")
    response = _login(client, PASSWORD)

    assert response.status_code == 429
    assert "_auth_user_id" not in client.session
    assert client.get("/admin/").status_code == 302


def test_below_the_limit_the_right_password_still_logs_in(boss, settings):
    client = Client()

    for attempt in range(settings.AXES_FAILURE_LIMIT - 1):
        _login(client, f"wrong-{attempt}")
    response = _login(client, PASSWORD)

    assert response.status_code == 302
    assert client.get("/admin/").status_code == 200


def _post_events(client: Client, key: str, address: str = "198.51.100.7"):
    return client.post(
        "/api/v1/events", '{"events": []}', content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {key}", REMOTE_ADDR=address,
    )  # fmt: skip


def test_wrong_api_keys_from_one_address_are_throttled(db, settings):
    settings.API_FAILED_KEYS_PER_ADDRESS_PER_MINUTE = 5
    api_key = ApiKey(name="shop")
    raw = api_key.assign_new_key()
    api_key.save()
    client = Client()

    statuses = [_post_events(client, f"kairos_wrong_{attempt}").status_code for attempt in range(8)]
    right_key_same_address = _post_events(client, raw)
    other_address = _post_events(client, raw, address="198.51.100.8")

    assert statuses == [401] * 5 + [429] * 3
    assert right_key_same_address.status_code == 429
    assert int(right_key_same_address["Retry-After"]) > 0
    assert other_address.status_code != 429


def test_one_key_is_limited_per_minute(db, settings):
    settings.API_RATE_PER_KEY_PER_MINUTE = 3
    api_key = ApiKey(name="shop")
    raw = api_key.assign_new_key()
    api_key.save()
    client = Client()

    statuses = [_post_events(client, raw, address=f"198.51.100.{n}").status_code for n in range(5)]

    assert statuses[3:] == [429, 429]
    assert 429 not in statuses[:3]
    assert "with this API key" in _post_events(client, raw).json()["error"]


def test_replaying_a_click_link_counts_one_click_a_minute(db, time_machine):
    from campaigns.models import EmailTemplate, Message
    from campaigns.tracking import click_token
    from tests.factories import CustomerFactory

    time_machine.move_to("2026-03-02 10:00:00+00:00", tick=False)
    customer = CustomerFactory()
    template = EmailTemplate.objects.create(name="T")
    message = Message.objects.create(
        customer=customer, to_email=customer.email, template=template, links=["https://shop.example/a"]
    )
    path = f"/t/c/{click_token(message.pk, 0)}/"
    client = Client()

    first = [client.get(path) for _ in range(20)]
    time_machine.move_to("2026-03-02 10:01:30+00:00", tick=False)
    later = client.get(path)

    assert {response.status_code for response in [*first, later]} == {302}
    assert Event.objects.filter(customer=customer, name="email_clicked").count() == 2
    assert Message.objects.get(pk=message.pk).click_count == 2
