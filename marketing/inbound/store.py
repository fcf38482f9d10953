"""Validating and storing inbound messages: batches from the API, one e-mail at a time from the webhook.

The API follows the events API's conventions (`marketing.ingest`): each message is judged on its
own, good ones are stored and bad ones reported by index, field and reason; an id makes a resend
harmless, and a message without one gets an id derived from its content. Customers are matched by
the shop's id, else by the sender's address; a message from someone Kairos does not know is kept
with no customer (it is never a reason to create one). Listeners registered in `marketing.events`
hear of new messages after commit; the conversations stage reads them from there, and its beat task
finds any whose notification was lost.
"""

import re
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Any

from django.db import IntegrityError, transaction

from marketing.events import notify_messages_stored
from marketing.imports import values
from marketing.inbound.mail import InboundMail, mail_body, no_reply_reason
from marketing.inbound.text import clean_body
from marketing.ingest import EventError, FieldError, parse_email, parse_identifier, parse_occurred_at
from marketing.models import Customer, InboundChannel, InboundMessage, InboundStatus
from marketing.suppression import email_hash

MAX_BATCH_MESSAGES = 1_000
MAX_MESSAGE_CHARS = 20_000  # a long e-mail is a few thousand; more is a pasted log or an attack
MAX_SUBJECT_CHARS = 255
MAX_NAME_CHARS = 200
MAX_HEADERS = 50
MAX_HEADER_CHARS = 1_000
# More than this share of control characters (other than tab and line breaks) is not text someone wrote.
MAX_CONTROL_SHARE = 0.05
WRITE_ATTEMPTS = 3

MESSAGE_FIELDS = ("id", "customer_id", "email", "name", "channel", "subject", "body", "html", "received_at", "headers")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ufffd]")


@dataclass
class MessageReport:
    received: int
    stored_ids: list[int] = field(default_factory=list)
    stored_indexes: list[int] = field(default_factory=list)
    duplicate_indexes: list[int] = field(default_factory=list)
    errors: list[EventError] = field(default_factory=list)
    customers_matched: int = 0

    @property
    def rejected(self) -> int:
        return len({error.index for error in self.errors})

    def as_json(self) -> dict[str, Any]:
        """Return the API's response body; received = stored + duplicates + rejected."""
        return {
            "received": self.received,
            "stored": len(self.stored_ids),
            "duplicates": len(self.duplicate_indexes),
            "rejected": self.rejected,
            "customers_matched": self.customers_matched,
            "messages": [
                {"index": index, "id": pk}
                for index, pk in sorted(zip(self.stored_indexes, self.stored_ids, strict=True))
            ],
            "duplicate_indexes": sorted(self.duplicate_indexes),
            "errors": [error.as_json() for error in self.errors],
        }


@dataclass(frozen=True)
class _Valid:
    index: int
    key: str
    customer_id: str | None
    email: str | None
    name: str
    channel: str
    subject: str
    body: str
    original: str
    received_at: datetime
    no_reply_reason: str


def parse_text(value: Any, *, limit: int, what: str = "text") -> str:
    """Parse free text written by a person: a string without NUL, binary noise or invalid Unicode, within a limit."""
    if not isinstance(value, str):
        raise FieldError(f"must be a string, not {_json_type(value)}")
    if "\x00" in value:
        raise FieldError("contains a NUL character (\\u0000): this looks like binary data, not text")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise FieldError("contains invalid Unicode (a lone surrogate escape such as \\ud800)") from None
    if len(value) > limit:
        raise FieldError(f"is {len(value):,} characters; at most {limit:,} are accepted")
    controls = len(_CONTROL.findall(value))
    if value and controls / len(value) > MAX_CONTROL_SHARE:
        raise FieldError(
            f"{controls:,} of its {len(value):,} characters are control characters: binary data, not {what}"
        )
    return value


def parse_headers(value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        raise FieldError(f"must be an object of header: value pairs, not {_json_type(value)}")
    if len(value) > MAX_HEADERS:
        raise FieldError(f"has {len(value)} headers; at most {MAX_HEADERS} are read")
    headers = {}
    for name, header in value.items():
        if not isinstance(header, str):
            raise FieldError(f"{name!r} must be a string, not {_json_type(header)}")
        headers[name] = parse_text(header, limit=MAX_HEADER_CHARS, what="a header")
    return headers


def validate_message(index: int, item: Any, now: datetime) -> tuple[_Valid | None, list[EventError]]:
    """Return the message's parsed fields, or every error found in it (unknown fields are errors)."""
    if not isinstance(item, dict):
        return None, [EventError(index, None, f"each message must be a JSON object, not {_json_type(item)}")]
    errors = [
        EventError(index, name, f"is not a field of a message; fields: {', '.join(MESSAGE_FIELDS)}")
        for name in item
        if name not in MESSAGE_FIELDS
    ]
    parsers = {
        "id": lambda value: parse_identifier(value, "id"),
        "customer_id": lambda value: parse_identifier(value, "customer_id"),
        "email": parse_email,
        "name": lambda value: " ".join(parse_text(value, limit=MAX_NAME_CHARS).split()),
        "channel": _parse_channel,
        "subject": lambda value: " ".join(parse_text(value, limit=MAX_SUBJECT_CHARS).split()),
        "body": lambda value: parse_text(value, limit=MAX_MESSAGE_CHARS),
        "html": lambda value: parse_text(value, limit=MAX_MESSAGE_CHARS * 5, what="HTML"),
        "received_at": lambda value: parse_occurred_at(value, now),
        "headers": parse_headers,
    }
    parsed: dict[str, Any] = {}
    for name in MESSAGE_FIELDS:
        value = item.get(name)
        if value is None:
            continue
        try:
            parsed[name] = parsers[name](value)
        except FieldError as error:
            errors.append(EventError(index, name, str(error)))
    if "body" not in parsed and "html" not in parsed and not any(error.field in {"body", "html"} for error in errors):
        errors.append(EventError(index, "body", "is required (the message's text; or send it as html)"))
    own, original = "", ""
    if not any(error.field in {"body", "html"} for error in errors):
        own, original = clean_body(parsed.get("body", ""), parsed.get("html", ""))
        if not original.strip():
            field_name = "body" if "body" in parsed else "html"
            errors.append(EventError(index, field_name, "is blank: it has no text, only whitespace or markup"))
        elif not own:
            errors.append(
                EventError(index, "body", "has no words of its own once quoted replies and signatures are removed")
            )
        elif len(own) > MAX_MESSAGE_CHARS:
            errors.append(
                EventError(index, "html", f"holds {len(own):,} characters of text; at most {MAX_MESSAGE_CHARS:,}")
            )
    if errors:
        return None, sorted(errors, key=lambda e: MESSAGE_FIELDS.index(e.field) if e.field in MESSAGE_FIELDS else -1)
    received_at = parsed.get("received_at", now)
    sender = parsed.get("email") or ""
    key = parsed.get("id") or (
        f"m-{values.content_digest([parsed.get('customer_id'), sender, received_at, parsed.get('subject', ''), own])}"
    )
    return (
        _Valid(
            index=index,
            key=key,
            customer_id=parsed.get("customer_id"),
            email=parsed.get("email"),
            name=parsed.get("name", ""),
            channel=parsed.get("channel", InboundChannel.CHAT),
            subject=parsed.get("subject", ""),
            body=own,
            original=original,
            received_at=received_at,
            no_reply_reason=no_reply_reason(parsed.get("headers", {}), sender),
        ),
        [],
    )


def store_messages(batch: list[Any], now: datetime) -> MessageReport:
    """Validate each message of an API batch, store the good ones once, and report on all of them."""
    if len(batch) > MAX_BATCH_MESSAGES:
        raise ValueError(f"a batch holds at most {MAX_BATCH_MESSAGES:,} messages, not {len(batch):,}")
    report = MessageReport(received=len(batch))
    accepted: list[_Valid] = []
    keys: set[str] = set()
    for index, item in enumerate(batch):
        valid, errors = validate_message(index, item, now)
        if valid is None:
            report.errors.extend(errors)
        elif valid.key in keys:
            report.duplicate_indexes.append(index)
        else:
            keys.add(valid.key)
            accepted.append(valid)
    if accepted:
        with transaction.atomic():
            _write(accepted, report, now)
            if report.stored_ids:
                transaction.on_commit(partial(notify_messages_stored, list(report.stored_ids)))
    return report


def _write(messages: list[_Valid], report: MessageReport, now: datetime) -> None:
    pending = messages
    for attempt in range(1, WRITE_ATTEMPTS + 1):
        stored = set(
            InboundMessage.objects.filter(external_id__in=[m.key for m in pending]).values_list(
                "external_id", flat=True
            )
        )
        report.duplicate_indexes.extend(m.index for m in pending if m.key in stored)
        pending = [m for m in pending if m.key not in stored]
        if not pending:
            return
        customers = match_customers([(m.customer_id, m.email) for m in pending])
        rows = [
            InboundMessage(
                external_id=m.key,
                customer_id=customers.get((m.customer_id, m.email)),
                channel=m.channel,
                from_email=m.email or "",
                from_name=m.name,
                customer_reference=m.customer_id or "",
                subject=m.subject,
                body=m.body,
                original=m.original if m.original != m.body else "",
                no_reply_reason=m.no_reply_reason,
                received_at=m.received_at,
                created_at=now,
            )
            for m in pending
        ]
        try:
            with transaction.atomic():
                InboundMessage.objects.bulk_create(rows)
        except IntegrityError:
            if attempt == WRITE_ATTEMPTS:
                raise
            continue  # another request stored one of these ids meanwhile: read them again
        report.stored_ids.extend(row.pk for row in rows)
        report.stored_indexes.extend(m.index for m in pending)
        report.customers_matched += sum(row.customer_id is not None for row in rows)
        return


def match_customers(senders: list[tuple[str | None, str | None]]) -> dict[tuple[str | None, str | None], int]:
    """Return {(customer id, address): customer pk} for the senders Kairos knows: by id first, then by address."""
    by_id = dict(Customer.objects.filter(external_id__in={c for c, _ in senders if c}).values_list("external_id", "pk"))
    hashes = {email: email_hash(email) for _, email in senders if email}
    by_hash: dict[str, int] = {}
    for pk, digest in (
        Customer.objects.filter(email_hash__in=set(hashes.values())).order_by("-pk").values_list("pk", "email_hash")
    ):
        by_hash.setdefault(digest, pk)  # several customers share an address: the newest one
    matched = {}
    for customer_id, email in senders:
        pk = by_id.get(customer_id) if customer_id else None
        if pk is None and email:
            pk = by_hash.get(hashes[email])
        if pk is not None:
            matched[(customer_id, email)] = pk
    return matched


def store_email(mail: InboundMail, now: datetime) -> InboundMessage | None:
    """Store one inbound e-mail (None when it was stored before); a bounce is kept closed, never classified."""
    own, original = mail_body(mail)
    if len(own) > MAX_MESSAGE_CHARS:
        own = own[:MAX_MESSAGE_CHARS]
    key = (
        f"mail:{mail.message_id}"
        if mail.message_id
        else f"mail-{values.content_digest([mail.from_email, mail.subject, own or original])}"
    )[:255]
    customers = match_customers([(None, mail.from_email or None)])
    message = InboundMessage(
        external_id=key,
        customer_id=customers.get((None, mail.from_email or None)),
        channel=InboundChannel.EMAIL,
        from_email=mail.from_email,
        from_name=mail.from_name,
        subject=mail.subject,
        body=own,
        original=original[: MAX_MESSAGE_CHARS * 2] if original != own else "",
        header_message_id=mail.message_id,
        header_references=mail.references,
        no_reply_reason=mail.no_reply_reason,
        received_at=now,
        created_at=now,
    )
    if mail.is_bounce:
        message.status = InboundStatus.CLOSED
        message.record(f"{mail.no_reply_reason}, not a customer's message: closed without reading or answering", now)
    try:
        with transaction.atomic():
            message.save()
            if message.status == InboundStatus.NEW:
                transaction.on_commit(partial(notify_messages_stored, [message.pk]))
    except IntegrityError:
        return None  # the ESP delivered the same mail twice
    return message


def _parse_channel(value: Any) -> str:
    if value not in InboundChannel.values:
        raise FieldError(f"{value!r} is not a channel; use one of {', '.join(InboundChannel.values)}")
    return value


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"
