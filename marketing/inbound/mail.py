"""Read an inbound e-mail into what Kairos keeps of it, and tell mail that must never be answered.

Never answered (RFC 3834): mail sent by a program (`Auto-Submitted` other than `no`, `X-Autoreply`,
`X-Autorespond`, an out-of-office `X-Auto-Response-Suppress`, `Precedence: bulk/junk/list/auto_reply`),
mailing-list mail (`List-Id`), delivery reports and bounces (`multipart/report`, an empty return
path, MAILER-DAEMON or postmaster senders), and mail from the shop's own addresses. Answering any
of them is how two auto-responders end up writing to each other forever.
"""

from dataclasses import dataclass
from email.message import Message
from email.utils import getaddresses, parseaddr

from django.conf import settings

from marketing.inbound.text import clean_body

_PROGRAM_PRECEDENCE = frozenset({"bulk", "junk", "list", "auto_reply"})
_BOUNCE_SENDERS = ("mailer-daemon", "postmaster", "mail-daemon", "mailerdaemon")


@dataclass(frozen=True)
class InboundMail:
    """The parts of an e-mail Kairos keeps, ready for `marketing.inbound.store.store_email`."""

    from_email: str
    from_name: str
    subject: str
    text: str
    html: str
    message_id: str
    references: str
    no_reply_reason: str
    is_bounce: bool


def own_addresses() -> set[str]:
    """Return the addresses Kairos itself sends from (settings); mail from them is never answered."""
    addresses = [
        settings.DEFAULT_FROM_EMAIL,
        settings.SERVER_EMAIL,
        settings.UNSUBSCRIBE_MAILTO,
        settings.CONVERSATION_REPLY_FROM,
        *settings.CONVERSATION_INBOUND_ADDRESSES,
    ]
    return {parseaddr(address)[1].strip().lower() for address in addresses if address and parseaddr(address)[1]}


def no_reply_reason(
    headers: dict[str, str], sender: str, *, content_type: str = "", return_path: str | None = None
) -> str:
    """Return why a message must get no automatic answer, or "" when it may get one."""
    lowered = {name.lower(): (value or "").strip() for name, value in headers.items()}
    auto_submitted = lowered.get("auto-submitted", "").lower()
    if auto_submitted and auto_submitted != "no":
        return f"sent by a program (Auto-Submitted: {auto_submitted[:40]})"
    for header in ("x-autoreply", "x-autorespond", "x-autoresponder"):
        if header in lowered:
            return f"an automatic reply ({header}: {lowered[header][:40] or 'set'})"
    suppress = lowered.get("x-auto-response-suppress", "").lower()
    if any(kind in suppress for kind in ("oof", "autoreply", "all")):
        return f"an automatic reply (X-Auto-Response-Suppress: {suppress[:40]})"
    precedence = lowered.get("precedence", "").lower()
    if precedence in _PROGRAM_PRECEDENCE:
        return f"bulk or list mail (Precedence: {precedence})"
    if "list-id" in lowered:
        return "mailing-list mail (List-Id)"
    bounce = bounce_reason(sender, content_type=content_type, return_path=return_path)
    if bounce:
        return bounce
    address = parseaddr(sender)[1].strip().lower()
    if address and address in own_addresses():
        return "sent from the shop's own address"
    return ""


def bounce_reason(sender: str, *, content_type: str = "", return_path: str | None = None) -> str:
    """Return why a message is a delivery report or bounce, or ""."""
    if content_type.lower().startswith("multipart/report"):
        return "a delivery report (bounce)"
    if return_path is not None and return_path.strip() in {"<>", ""}:
        return "a bounce (empty return path)"
    local = parseaddr(sender)[1].partition("@")[0].lower()
    if local in _BOUNCE_SENDERS:
        return f"a bounce (from {local})"
    return ""


def read_mail(message: Message, *, envelope_sender: str | None = None) -> InboundMail:
    """Return what Kairos keeps of a parsed e-mail (an `email.message.EmailMessage` or anymail's subclass)."""
    name, address = parseaddr(str(message.get("From", "")))
    text = _part(message, "text/plain")
    html = _part(message, "text/html")
    headers = {key: str(value) for key, value in message.items()}
    return_path = envelope_sender if envelope_sender is not None else headers.get("Return-Path")
    content_type = message.get_content_type()
    bounce = bounce_reason(address, content_type=content_type, return_path=return_path)
    return InboundMail(
        from_email=address.strip().lower(),
        from_name=name.strip()[:200],
        subject=" ".join(str(message.get("Subject", "")).split())[:255],
        text=text,
        html=html,
        message_id=str(message.get("Message-ID", "")).strip()[:255],
        references=" ".join(
            value for value in (str(message.get("References", "")), str(message.get("In-Reply-To", ""))) if value
        )[:2000],
        no_reply_reason=no_reply_reason(headers, address, content_type=content_type, return_path=return_path),
        is_bounce=bool(bounce),
    )


def recipients(message: Message) -> list[str]:
    """Return the addresses a message was sent to (To, Cc, Delivered-To), lower-cased."""
    values = [str(value) for header in ("To", "Cc", "Delivered-To") for value in message.get_all(header, [])]
    return [address.strip().lower() for _, address in getaddresses(values) if address]


def _part(message: Message, content_type: str) -> str:
    """Return the first non-attachment part of the type, decoded to text ("" when there is none)."""
    for part in message.walk() if message.is_multipart() else [message]:
        if part.get_content_type() != content_type or part.get_content_disposition() == "attachment":
            continue
        payload = part.get_payload(decode=True)
        if payload is None:
            continue
        charset = part.get_content_charset() or "utf-8"
        try:
            return payload.decode(charset, errors="replace")
        except LookupError:
            return payload.decode("utf-8", errors="replace")
    return ""


def mail_body(mail: InboundMail) -> tuple[str, str]:
    """Return the customer's own words and the whole text of an inbound mail."""
    return clean_body(mail.text, mail.html)
