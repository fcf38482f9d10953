"""Signed links back to Kairos: clicks, opens and unsubscribes, and what happens when they arrive.

Every link in a sent e-mail is recorded on its Message at render time and replaced by a signed
token naming the message and the link's position, so the click endpoint can only ever redirect
to a link Kairos itself sent: a tampered token or an unknown position is refused.
"""

import html
import ipaddress
import re
import uuid
from datetime import timedelta
from urllib.parse import urlsplit

from django.conf import settings
from django.core import signing
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from campaigns.models import Message
from marketing.consent import record_consent_changes
from marketing.first_seen import note_first_seen
from marketing.models import Consent, Customer, Event, Suppression, SuppressionReason
from marketing.suppression import email_hash

CLICK_SALT = "kairos.tracking.click"
OPEN_SALT = "kairos.tracking.open"
UNSUBSCRIBE_SALT = "kairos.tracking.unsubscribe"
TRACKED_SCHEMES = {"http", "https"}
# Left as they are: they open a mail program or dialler, or jump within the message.
UNTRACKED_PREFIXES = ("mailto:", "tel:", "#")
# Opens fetched by mail providers' image proxies or privacy features, not by a person reading.
PROXY_USER_AGENT_MARKERS = (
    "GoogleImageProxy",
    "YahooMailProxy",
    "via ggpht.com",
    "Mimecast",
    "Barracuda",
    "Proofpoint",
)
# Apple Mail Privacy Protection prefetches from Apple's network with a bare user agent.
APPLE_NETWORK = ipaddress.ip_network("17.0.0.0/8")
BARE_USER_AGENTS = {"", "Mozilla/5.0"}

_HREF = re.compile(r"(<a\b[^>]*?\bhref\s*=\s*)([\"'])(.*?)\2", re.I | re.S)
_SRC = re.compile(r"(<img\b[^>]*?\bsrc\s*=\s*)([\"'])(.*?)\2", re.I | re.S)
_UNSAFE_TEXT_URL = re.compile(r"\s*\(?\b(?:javascript|vbscript|data):[^\s)]*\)?", re.I)
_BODY_END = re.compile(r"</body\s*>", re.I)


class BadToken(Exception):
    """A tracking or unsubscribe token that was not signed by Kairos or names nothing."""


def _signer(salt: str) -> signing.Signer:
    return signing.Signer(salt=salt, algorithm="sha256")


def click_token(message_id: int, index: int) -> str:
    return _signer(CLICK_SALT).sign(f"{message_id}-{index}")


def open_token(message_id: int) -> str:
    return _signer(OPEN_SALT).sign(str(message_id))


def unsubscribe_token(message_id: int) -> str:
    return _signer(UNSUBSCRIBE_SALT).sign(str(message_id))


def _unsign(salt: str, token: str) -> str:
    try:
        return _signer(salt).unsign(token)
    except signing.BadSignature:
        raise BadToken("this link was not issued by Kairos or has been altered") from None


def read_click_token(token: str) -> tuple[int, int]:
    message_id, _, index = _unsign(CLICK_SALT, token).partition("-")
    return int(message_id), int(index)


def read_message_token(token: str, salt: str) -> int:
    return int(_unsign(salt, token))


def click_url(message_id: int, index: int) -> str:
    return f"{settings.PUBLIC_BASE_URL}/t/c/{click_token(message_id, index)}/"


def open_url(message_id: int) -> str:
    return f"{settings.PUBLIC_BASE_URL}/t/o/{open_token(message_id)}.gif"


def unsubscribe_url(message_id: int) -> str:
    return f"{settings.PUBLIC_BASE_URL}/u/{unsubscribe_token(message_id)}/"


def is_trackable(url: str) -> bool:
    return urlsplit(url).scheme.lower() in TRACKED_SCHEMES and bool(urlsplit(url).netloc)


def rewrite_links(document: str, message_id: int, *, skip: str = "") -> tuple[str, list[str]]:
    """Replace every http(s) link by its signed click URL; neutralise links in other schemes.

    Returns the document and the links in the order their tokens number them. The `skip` URL
    (the unsubscribe link) is left untracked.
    """
    links: list[str] = []
    positions: dict[str, int] = {}

    def replace(match: re.Match) -> str:
        raw = match.group(3)
        url = html.unescape(raw).strip()
        if url == skip or url.startswith(UNTRACKED_PREFIXES):
            return match.group(0)
        if not is_trackable(url):
            # javascript:, data:, relative and other links have no place in an e-mail.
            return f"{match.group(1)}{match.group(2)}#{match.group(2)}"
        index = positions.get(url)
        if index is None:
            index = positions[url] = len(links)
            links.append(url)
        return f"{match.group(1)}{match.group(2)}{html.escape(click_url(message_id, index))}{match.group(2)}"

    def check_source(match: re.Match) -> str:
        url = html.unescape(match.group(3)).strip()
        if is_trackable(url) or url.startswith(("cid:", "data:image/")):
            return match.group(0)
        return f"{match.group(1)}{match.group(2)}{match.group(2)}"

    return _SRC.sub(check_source, _HREF.sub(replace, document)), links


def rewrite_text_links(text: str, message_id: int, links: list[str]) -> str:
    """Replace the recorded links in the plain-text part by the same click URLs as the HTML part."""
    for index in sorted(range(len(links)), key=lambda i: -len(links[i])):
        text = text.replace(links[index], click_url(message_id, index))
    return _UNSAFE_TEXT_URL.sub("", text)


def add_open_pixel(document: str, message_id: int) -> str:
    pixel = (
        f'<img src="{html.escape(open_url(message_id))}" width="1" height="1" alt="" style="display:block;border:0">'
    )
    ends = list(_BODY_END.finditer(document))
    if not ends:
        return document + pixel
    position = ends[-1].start()
    return document[:position] + pixel + document[position:]


def is_machine_open(user_agent: str, ip: str) -> bool:
    """Tell whether an open pixel was fetched by a proxy or scanner rather than a person."""
    if any(marker in user_agent for marker in PROXY_USER_AGENT_MARKERS):
        return True
    if user_agent.strip() in BARE_USER_AGENTS:
        return True
    try:
        return ipaddress.ip_address(ip) in APPLE_NETWORK
    except ValueError:
        return False


def _event(customer_id: int | None, name: str, properties: dict, external_id: str | None = None) -> None:
    if customer_id is None:
        return
    now = timezone.now()
    Event.objects.bulk_create(
        [
            Event(
                external_id=external_id or f"kairos:{name}:{uuid.uuid4().hex}",
                customer_id=customer_id,
                name=name,
                occurred_at=now,
                properties=properties,
            )
        ],
        ignore_conflicts=True,
    )
    note_first_seen({customer_id: now})


def _message_properties(message: Message) -> dict:
    return {"message": message.pk, "broadcast": message.broadcast_id, "template": message.template_id}


def record_click(token: str) -> str:
    """Count a click and return the recorded link to redirect to; refuse anything not recorded."""
    message_id, index = read_click_token(token)
    message = Message.objects.filter(pk=message_id).first()
    if message is None or not 0 <= index < len(message.links):
        raise BadToken("this link names no link Kairos sent")
    url = message.links[index]
    now = timezone.now()
    with transaction.atomic():
        # The message's row lock orders concurrent clicks, so the repeat check below sees the one before.
        Message.objects.select_for_update().filter(pk=message.pk).first()
        if _clicked_just_now(message, url, now):
            return url  # a replayed or double-clicked link: redirected, counted once
        Message.objects.filter(pk=message.pk).update(click_count=F("click_count") + 1)
        Message.objects.filter(pk=message.pk, clicked_at__isnull=True).update(clicked_at=now)
        _event(message.customer_id, "email_clicked", {**_message_properties(message), "url": url})
    return url


def _clicked_just_now(message: Message, url: str, now) -> bool:
    """Tell whether this link of this message was counted within CLICK_REPEAT_WINDOW_S."""
    if message.customer_id is None:
        return message.clicked_at is not None and message.clicked_at > now - timedelta(seconds=settings.CLICK_REPEAT_WINDOW_S)
    return Event.objects.filter(
        customer_id=message.customer_id,
        name="email_clicked",
        occurred_at__gt=now - timedelta(seconds=settings.CLICK_REPEAT_WINDOW_S),
        properties__message=message.pk,
        properties__url=url,
    ).exists()


def record_open(token: str, *, user_agent: str, ip: str) -> bool:
    """Count an open; proxy and scanner fetches are counted apart and never as engagement. Return whether a person opened."""
    message_id = read_message_token(token, OPEN_SALT)
    message = Message.objects.filter(pk=message_id).first()
    if message is None:
        raise BadToken("this pixel names no message")
    machine = is_machine_open(user_agent, ip)
    with transaction.atomic():
        if machine:
            Message.objects.filter(pk=message.pk).update(machine_open_count=F("machine_open_count") + 1)
            _event(message.customer_id, "email_machine_opened", _message_properties(message))
        else:
            Message.objects.filter(pk=message.pk).update(open_count=F("open_count") + 1)
            Message.objects.filter(pk=message.pk, opened_at__isnull=True).update(opened_at=timezone.now())
            _event(message.customer_id, "email_opened", _message_properties(message))
    return not machine


def message_for_unsubscribe(token: str) -> Message:
    message = Message.objects.filter(pk=read_message_token(token, UNSUBSCRIBE_SALT)).first()
    if message is None:
        raise BadToken("this unsubscribe link names no message")
    return message


def suppress_address(email: str, reason: str, *, source: str, properties: dict | None = None) -> int:
    """Suppress an address at once, withdraw the consent of its customers and record the event on each. Return how many customers."""
    with transaction.atomic():
        Suppression.suppress(email, reason)
        customers = list(Customer.objects.filter(email_hash=email_hash(email)).values_list("pk", flat=True))
        if reason == SuppressionReason.UNSUBSCRIBED:
            now = timezone.now()
            Customer.objects.filter(pk__in=customers).update(
                consent_state=Consent.OPTED_OUT, consent_source=source[:120], consent_at=now
            )
            record_consent_changes(customers, Consent.OPTED_OUT, source, now)
        name = {
            SuppressionReason.UNSUBSCRIBED: "email_unsubscribed",
            SuppressionReason.BOUNCED: "email_bounced",
            SuppressionReason.COMPLAINED: "email_complained",
        }.get(reason, "email_suppressed")
        for customer_id in customers:
            _event(customer_id, name, {**(properties or {}), "source": source})
    return len(customers)


def unsubscribe(token: str, *, source: str) -> Message:
    """Unsubscribe the recipient of the message the token names; replays change nothing more."""
    message = message_for_unsubscribe(token)
    if not Suppression.is_suppressed(message.to_email):
        suppress_address(
            message.to_email, SuppressionReason.UNSUBSCRIBED, source=source, properties=_message_properties(message)
        )
    return message
