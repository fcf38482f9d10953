"""Clicks, opens, unsubscribes and ESP webhooks: what a recipient's mail program sends back."""

import base64
import json

import pytest
from django.test import Client

from campaigns.models import Message, MessageKind
from campaigns.tracking import click_token, open_token, rewrite_links, unsubscribe_token
from marketing.models import Consent, Customer, Event, Suppression, SuppressionReason
from tests.factories import CustomerFactory

SALE = "https://shop.example.com/sale?from=mail&x=1"


@pytest.fixture
def sent(welcome_template):
    """A sent message to an opted-in customer, with two recorded links."""
    customer = CustomerFactory()
    return Message.objects.create(
        kind=MessageKind.MARKETING,
        template=welcome_template,
        customer=customer,
        to_email=customer.email,
        status="sent",
        links=[SALE, "https://shop.example.com/p/1"],
    )


def test_a_click_redirects_to_the_recorded_link_and_is_stored_as_an_event(client, sent):
    response = client.get(f"/t/c/{click_token(sent.pk, 0)}/")

    assert response.status_code == 302
    assert response["Location"] == SALE
    sent.refresh_from_db()
    assert sent.click_count == 1 and sent.clicked_at is not None
    event = Event.objects.get(customer=sent.customer)
    assert (event.name, event.properties["url"], event.properties["message"]) == ("email_clicked", SALE, sent.pk)


@pytest.mark.parametrize(
    "token",
    [
        pytest.param(lambda message: click_token(message.pk, 0)[:-2] + "xx", id="tampered signature"),
        pytest.param(
            lambda message: click_token(message.pk, 0).replace(f"{message.pk}-0", f"{message.pk}-1"),
            id="tampered index",
        ),
        pytest.param(lambda message: click_token(message.pk, 7), id="index never recorded"),
        pytest.param(lambda message: click_token(message.pk + 1000, 0), id="no such message"),
        pytest.param(lambda message: "https://evil.example/", id="arbitrary target"),
    ],
)
def test_a_click_that_was_not_issued_is_refused_and_counts_nothing(client, sent, token):
    response = client.get(f"/t/c/{token(sent)}/")

    assert response.status_code in (400, 404)
    assert "Location" not in response
    sent.refresh_from_db()
    assert sent.click_count == 0
    assert Event.objects.count() == 0


def test_hostile_links_are_neutralised_and_never_recorded():
    document = (
        '<a href="javascript:alert(1)">a</a><a href=" JaVaScRiPt:alert(2)">b</a><a href="data:text/html,x">c</a>'
        f'<a href="{SALE.replace("&", "&amp;")}">d</a><a href="mailto:help@shop.example">e</a><img src="javascript:alert(3)">'
    )

    rewritten, links = rewrite_links(document, 5)

    assert links == [SALE]
    assert rewritten.count('href="#"') == 3
    assert 'href="mailto:help@shop.example"' in rewritten
    assert '<img src="">' in rewritten
    assert "javascript" not in rewritten.lower()


@pytest.mark.parametrize(
    ("user_agent", "ip", "human"),
    [
        ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) Thunderbird/128.0", "203.0.113.9", True),
        (
            "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)",
            "66.249.1.1",
            False,
        ),
        ("YahooMailProxy; https://help.yahoo.com/kb/yahoo-mail-proxy-SLN28749.html", "98.136.1.1", False),
        ("Mozilla/5.0", "17.58.1.1", False),  # Apple Mail Privacy Protection
        ("Mozilla/5.0 (Macintosh) AppleWebKit/605.1.15", "17.58.1.1", False),
    ],
)
def test_opens_from_privacy_proxies_are_machine_opens_and_never_engagement(sent, user_agent, ip, human):
    client = Client(HTTP_USER_AGENT=user_agent, REMOTE_ADDR=ip)

    response = client.get(f"/t/o/{open_token(sent.pk)}.gif")

    assert response.status_code == 200
    assert response["Content-Type"] == "image/gif"
    assert response.content == base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
    sent.refresh_from_db()
    assert (sent.open_count, sent.machine_open_count, sent.opened_at is not None) == (
        (1, 0, True) if human else (0, 1, False)
    )
    assert list(Event.objects.values_list("name", flat=True)) == ["email_opened" if human else "email_machine_opened"]


def test_an_open_pixel_with_a_forged_token_is_refused(client, sent):
    assert client.get(f"/t/o/{sent.pk}:forged.gif").status_code == 404
    assert Event.objects.count() == 0


def test_the_unsubscribe_page_asks_before_it_unsubscribes(client, sent):
    response = client.get(f"/u/{unsubscribe_token(sent.pk)}/")

    assert response.status_code == 200
    page = response.content.decode()
    assert "Unsubscribe from Kairos Demo Shop?" in page
    assert '<form method="post"><button type="submit">Unsubscribe</button></form>' in page
    assert response["Content-Security-Policy"].startswith("default-src 'none'")
    assert not Suppression.is_suppressed(sent.to_email)


def test_confirming_on_the_page_unsubscribes_and_withdraws_consent(sent):
    client = Client(enforce_csrf_checks=True)

    response = client.post(f"/u/{unsubscribe_token(sent.pk)}/")

    assert response.status_code == 200
    assert "You are unsubscribed" in response.content.decode()
    assert Suppression.objects.get().reason == SuppressionReason.UNSUBSCRIBED
    customer = Customer.objects.get(pk=sent.customer_id)
    assert (customer.consent_state, customer.consent_source) == (Consent.OPTED_OUT, "unsubscribe page")
    assert list(Event.objects.values_list("name", flat=True)) == ["email_unsubscribed"]


def test_one_click_unsubscribe_works_without_cookies_or_csrf_and_replays_change_nothing(sent):
    client = Client(enforce_csrf_checks=True)
    url = f"/u/{unsubscribe_token(sent.pk)}/"

    first = client.post(url, "List-Unsubscribe=One-Click", content_type="application/x-www-form-urlencoded")
    replay = client.post(url, "List-Unsubscribe=One-Click", content_type="application/x-www-form-urlencoded")

    assert (first.status_code, replay.status_code) == (200, 200)
    assert first.cookies == {} and replay.cookies == {}
    assert Suppression.is_suppressed(sent.to_email)
    assert Suppression.objects.count() == 1
    assert Event.objects.filter(name="email_unsubscribed").count() == 1
    assert Customer.objects.get(pk=sent.customer_id).consent_source == "one-click unsubscribe"


def test_a_forged_unsubscribe_token_is_refused(sent):
    client = Client(enforce_csrf_checks=True)

    response = client.post(
        f"/u/{sent.pk}:forged-signature/",
        "List-Unsubscribe=One-Click",
        content_type="application/x-www-form-urlencoded",
    )

    assert response.status_code == 400
    assert "This link does not work" in response.content.decode()
    assert Suppression.objects.count() == 0


def _postmark(client, payload: dict):
    credentials = base64.b64encode(b"kairos:hook-secret").decode()
    return client.post(
        "/anymail/postmark/tracking/",
        json.dumps(payload),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Basic {credentials}",
    )


@pytest.mark.parametrize(
    ("payload", "reason", "event"),
    [
        (
            {"RecordType": "Bounce", "Type": "HardBounce", "TypeCode": 1, "Email": "{email}", "MessageID": "pm-1",
             "BouncedAt": "2026-11-28T10:00:00Z", "Description": "The server was unable to deliver your message"},
            SuppressionReason.BOUNCED, "email_bounced",
        ),
        (
            {"RecordType": "SpamComplaint", "Type": "SpamComplaint", "TypeCode": 512, "Email": "{email}", "MessageID": "pm-2",
             "BouncedAt": "2026-11-28T10:00:00Z"},
            SuppressionReason.COMPLAINED, "email_complained",
        ),
    ],
)  # fmt: skip
def test_bounce_and_complaint_webhooks_suppress_the_address(client, settings, sent, payload, reason, event):
    settings.ANYMAIL = {"WEBHOOK_SECRET": "kairos:hook-secret"}
    payload = {
        key: value.format(email=sent.to_email) if isinstance(value, str) else value for key, value in payload.items()
    }

    response = _postmark(client, payload)

    assert response.status_code == 200
    assert Suppression.objects.get().reason == reason
    assert list(Event.objects.values_list("name", "customer_id")) == [(event, sent.customer_id)]


def test_a_temporary_delivery_failure_suppresses_nothing(client, settings, sent):
    settings.ANYMAIL = {"WEBHOOK_SECRET": "kairos:hook-secret"}

    response = _postmark(
        client,
        {"RecordType": "Bounce", "Type": "Transient", "TypeCode": 2, "Email": sent.to_email, "MessageID": "pm-3",
         "BouncedAt": "2026-11-28T10:00:00Z"},
    )  # fmt: skip

    assert response.status_code == 200
    assert Suppression.objects.count() == 0


def test_a_webhook_without_the_secret_is_refused(client, settings, sent):
    settings.ANYMAIL = {"WEBHOOK_SECRET": "kairos:hook-secret"}

    response = client.post(
        "/anymail/postmark/tracking/",
        json.dumps({"RecordType": "Bounce", "Type": "HardBounce", "Email": sent.to_email}),
        content_type="application/json",
    )

    assert response.status_code == 400
    assert Suppression.objects.count() == 0


def _postmark_inbound(client, *, sender: str, to: str, subject: str):
    credentials = base64.b64encode(b"kairos:hook-secret").decode()
    payload = {
        "FromFull": {"Email": sender, "Name": ""},
        "ToFull": [{"Email": to, "Name": ""}],
        "Subject": subject,
        "TextBody": "",
        "Headers": [],
    }
    return client.post(
        "/anymail/postmark/inbound/",
        json.dumps(payload),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Basic {credentials}",
    )


def test_mail_to_the_unsubscribe_address_with_the_token_unsubscribes_the_recipient(client, settings, sent):
    settings.ANYMAIL = {"WEBHOOK_SECRET": "kairos:hook-secret"}

    response = _postmark_inbound(
        client,
        sender="someone.else@example.org",
        to="unsubscribe@localhost",
        subject=f"unsubscribe {unsubscribe_token(sent.pk)}",
    )

    assert response.status_code == 200
    assert Suppression.is_suppressed(sent.to_email)
    assert Customer.objects.get(pk=sent.customer_id).consent_source == "unsubscribe e-mail"


def test_mail_to_the_unsubscribe_address_without_a_token_unsubscribes_its_sender_only_if_a_customer(
    client, settings, sent
):
    settings.ANYMAIL = {"WEBHOOK_SECRET": "kairos:hook-secret"}

    _postmark_inbound(client, sender="stranger@example.org", to="unsubscribe@localhost", subject="please stop")
    assert Suppression.objects.count() == 0

    _postmark_inbound(client, sender=sent.to_email, to="unsubscribe@localhost", subject="unsubscribe forged:token")
    assert Suppression.is_suppressed(sent.to_email)


def test_mail_to_another_address_unsubscribes_nobody(client, settings, sent):
    settings.ANYMAIL = {"WEBHOOK_SECRET": "kairos:hook-secret"}

    _postmark_inbound(
        client, sender=sent.to_email, to="hello@localhost", subject=f"unsubscribe {unsubscribe_token(sent.pk)}"
    )

    assert Suppression.objects.count() == 0
