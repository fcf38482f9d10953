"""ESP webhooks: only the configured ESP's endpoints exist, and none acts without valid credentials."""

import base64
import json

import pytest
from django.test import Client

from campaigns.checks import check_esp_name
from campaigns.esp import esp_urlpatterns, known_esps
from marketing.models import Customer, Suppression
from tests.factories import CustomerFactory

SECRET = "kairos:hook-secret"

POSTMARK_BOUNCE = {"RecordType": "Bounce", "Type": "HardBounce", "TypeCode": 1, "MessageID": "pm-1",
                   "BouncedAt": "2026-11-28T10:00:00Z"}  # fmt: skip


def _basic(credentials: str) -> str:
    return "Basic " + base64.b64encode(credentials.encode()).decode()


@pytest.fixture
def customer(db):
    return CustomerFactory(email="ada@example.org")


def test_only_the_configured_esps_endpoints_are_mounted():
    routes = {str(pattern.pattern) for pattern in esp_urlpatterns("sendgrid")}

    assert routes == {"sendgrid/inbound/", "sendgrid/tracking/"}
    assert esp_urlpatterns("") == []


def test_an_unknown_esp_mounts_nothing_and_fails_the_system_check(settings):
    settings.ESP_NAME = "carrier-pigeon"

    assert esp_urlpatterns("carrier-pigeon") == []
    assert [error.id for error in check_esp_name(None)] == ["campaigns.E002"]


@pytest.mark.parametrize("esp", ["sendgrid", "mailgun", "amazon_ses", "sparkpost", "mailjet", "brevo"])
def test_other_esps_endpoints_do_not_exist(client, settings, customer, esp):
    settings.ANYMAIL = {"WEBHOOK_SECRET": SECRET}

    response = client.post(
        f"/anymail/{esp}/tracking/", json.dumps([{"event": "unsubscribe", "email": customer.email}]),
        content_type="application/json", HTTP_AUTHORIZATION=_basic(SECRET),
    )  # fmt: skip

    assert response.status_code == 404
    assert Suppression.objects.count() == 0


def test_a_mounted_endpoint_answers_nothing_once_the_esp_changes(client, settings, customer):
    settings.ANYMAIL = {"WEBHOOK_SECRET": SECRET}
    settings.ESP_NAME = "sendgrid"

    response = client.post(
        "/anymail/postmark/tracking/", json.dumps({**POSTMARK_BOUNCE, "Email": customer.email}),
        content_type="application/json", HTTP_AUTHORIZATION=_basic(SECRET),
    )  # fmt: skip

    assert response.status_code == 404
    assert Suppression.objects.count() == 0


@pytest.mark.parametrize("path", ["/anymail/postmark/tracking/", "/anymail/postmark/inbound/"])
@pytest.mark.parametrize("authorization", [None, _basic(SECRET), _basic("anyone:anything")])
def test_without_a_secret_configured_every_webhook_is_refused(settings, customer, path, authorization):
    settings.ANYMAIL = {}
    headers = {"HTTP_AUTHORIZATION": authorization} if authorization else {}
    payload = {**POSTMARK_BOUNCE, "Email": customer.email}
    if path.endswith("inbound/"):
        payload = {"FromFull": {"Email": customer.email, "Name": ""}, "ToFull": [{"Email": "unsubscribe@localhost", "Name": ""}],
                   "Subject": "unsubscribe", "TextBody": "", "Headers": []}  # fmt: skip

    response = Client().post(path, json.dumps(payload), content_type="application/json", **headers)

    assert response.status_code == 403
    assert Suppression.objects.count() == 0
    assert Customer.objects.get(pk=customer.pk).consent_source == customer.consent_source


@pytest.mark.parametrize(
    "authorization", [None, _basic("kairos:wrong"), _basic("kairos:hook-secret-and-more"), "Bearer kairos:hook-secret"]
)
def test_wrong_credentials_are_refused(client, settings, customer, authorization):
    settings.ANYMAIL = {"WEBHOOK_SECRET": SECRET}
    headers = {"HTTP_AUTHORIZATION": authorization} if authorization else {}

    response = client.post(
        "/anymail/postmark/tracking/", json.dumps({**POSTMARK_BOUNCE, "Email": customer.email}),
        content_type="application/json", **headers,
    )  # fmt: skip

    assert response.status_code == 400
    assert Suppression.objects.count() == 0


def test_the_right_credentials_are_accepted(client, settings, customer):
    settings.ANYMAIL = {"WEBHOOK_SECRET": SECRET}

    response = client.post(
        "/anymail/postmark/tracking/", json.dumps({**POSTMARK_BOUNCE, "Email": customer.email}),
        content_type="application/json", HTTP_AUTHORIZATION=_basic(SECRET),
    )  # fmt: skip

    assert response.status_code == 200
    assert Suppression.is_suppressed(customer.email)


def test_every_esp_anymail_knows_can_be_mounted():
    assert {"postmark", "sendgrid", "mailgun", "amazon_ses", "mandrill", "resend"} <= known_esps()
    for esp in known_esps():
        assert esp_urlpatterns(esp), esp
