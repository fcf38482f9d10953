"""Validating and storing a batch of events sent to the API, each event judged on its own.

Good events are stored and bad ones reported by index, field and reason; one bad event never
costs the others. Conventions follow the importers (`marketing.imports`): customers are matched
on their `external_id` and created when unknown, ids are text, and an event without an id gets
one derived from its content with the importers' recipe, so a replayed batch, or the same event
sent once through the API and once in a file, is stored once.
"""

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any

from django.db import IntegrityError, transaction

from marketing.event_names import EVENT_NAME_MAX_CHARS, EventNameError, check_event_name
from marketing.events import notify_events_stored
from marketing.first_seen import earliest_by_customer, note_first_seen
from marketing.imports import values
from marketing.models import Customer, Event
from marketing.suppression import email_hash

MAX_BATCH_EVENTS = 1_000
MAX_EVENT_NAME_CHARS = EVENT_NAME_MAX_CHARS
# Devices and shop servers drift; a few minutes ahead is clock skew, more is a wrong time zone.
MAX_FUTURE_SKEW_S = 300
MAX_PROPERTIES_BYTES = 16_384  # compact UTF-8 JSON
MAX_PROPERTIES_DEPTH = 16
# A write loses a race only when another request stores one of the same ids in between; each
# retry first reads the winners as duplicates, so two attempts suffice and three is a margin.
WRITE_ATTEMPTS = 3

EVENT_FIELDS = ("id", "customer_id", "name", "occurred_at", "properties", "email")
REQUIRED_FIELDS = ("customer_id", "name", "occurred_at")

class FieldError(ValueError):
    """One field of one event is wrong; the message says why."""


@dataclass(frozen=True)
class EventError:
    index: int
    field: str | None  # None when the event as a whole is wrong, e.g. not a JSON object
    error: str

    def as_json(self) -> dict[str, Any]:
        return {"index": self.index, "field": self.field, "error": self.error}


@dataclass(frozen=True)
class ValidEvent:
    index: int
    key: str  # the stored external_id: the sender's id, or one derived from the content
    customer: str
    name: str
    occurred_at: datetime
    properties: dict[str, Any]
    email: str | None


@dataclass
class IngestReport:
    received: int
    stored_ids: list[int] = field(default_factory=list)
    duplicate_indexes: list[int] = field(default_factory=list)
    errors: list[EventError] = field(default_factory=list)
    customers_created: int = 0

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
            "customers_created": self.customers_created,
            "duplicate_indexes": sorted(self.duplicate_indexes),
            "errors": [error.as_json() for error in self.errors],
        }


def parse_identifier(value: Any, what: str) -> str:
    """Parse an id: text (an integer is kept as its digits), 1-255 printable characters."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise FieldError(f"must be a string, not {_json_type(value)}")
    value = value.strip()
    if not value:
        raise FieldError(f"{what} is empty")
    try:
        return values.identifier()(value)
    except ValueError as error:
        raise FieldError(str(error)) from None


def parse_event_name(value: Any) -> str:
    """Parse an event name by the one rule (marketing.event_names): snake_case, past tense, e.g. cart_added."""
    try:
        return check_event_name(value)
    except EventNameError as error:
        raise FieldError(str(error)) from None


def parse_occurred_at(value: Any, now: datetime) -> datetime:
    """Parse an ISO 8601 moment with a UTC offset, no later than a few minutes after `now`; return it in UTC."""
    if not isinstance(value, str):
        raise FieldError(f"must be an ISO 8601 string such as 2024-12-31T18:30:00+01:00, not {_json_type(value)}")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise FieldError(f"{value[:64]!r} is not an ISO 8601 date and time such as 2024-12-31T18:30:00+01:00") from None
    if moment.utcoffset() is None:
        raise FieldError(f"{value!r} has no UTC offset; add one, e.g. 2024-12-31T18:30:00+01:00 or ...Z")
    if not values.EARLIEST_YEAR <= moment.year <= values.LATEST_YEAR:
        raise FieldError(f"{value!r} has year {moment.year}, outside {values.EARLIEST_YEAR}-{values.LATEST_YEAR}")
    moment = moment.astimezone(UTC)
    ahead = (moment - now).total_seconds()
    if ahead > MAX_FUTURE_SKEW_S:
        raise FieldError(
            f"{value!r} is {ahead:.0f} s in the future; at most {MAX_FUTURE_SKEW_S} s of clock skew is allowed"
        )
    return moment


def parse_properties(value: Any) -> dict[str, Any]:
    """Parse the properties: a JSON object of bounded size and depth, storable on every database."""
    if not isinstance(value, dict):
        raise FieldError(f"must be a JSON object, not {_json_type(value)}")
    # PostgreSQL's jsonb refuses NUL characters; a lone surrogate cannot be encoded at all.
    # Either would fail the whole batch at insert time, so each is refused here, per event.
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_PROPERTIES_DEPTH:
            raise FieldError(f"is nested deeper than {MAX_PROPERTIES_DEPTH} levels")
        if isinstance(item, dict):
            for key, child in item.items():
                if "\x00" in key:
                    raise FieldError("contains a NUL character (\\u0000) in a key")
                stack.append((child, depth + 1))
        elif isinstance(item, list):
            stack.extend((child, depth + 1) for child in item)
        elif isinstance(item, str) and "\x00" in item:
            raise FieldError("contains a NUL character (\\u0000)")
    try:
        size = len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode())
    except UnicodeEncodeError:
        raise FieldError("contains invalid Unicode (a lone surrogate escape such as \\ud800)") from None
    if size > MAX_PROPERTIES_BYTES:
        raise FieldError(f"is {size:,} bytes of JSON; at most {MAX_PROPERTIES_BYTES:,} are allowed")
    return value


def parse_email(value: Any) -> str | None:
    """Parse an e-mail address, lower-cased; a blank one counts as absent, as in imports."""
    if not isinstance(value, str):
        raise FieldError(f"must be a string, not {_json_type(value)}")
    if not value.strip():
        return None
    try:
        return values.email(value)
    except ValueError as error:
        raise FieldError(str(error)) from None


def validate_event(index: int, item: Any, now: datetime) -> tuple[dict[str, Any] | None, list[EventError]]:
    """Return the event's parsed fields, or every error found in it (unknown fields are errors)."""
    if not isinstance(item, dict):
        return None, [EventError(index, None, f"each event must be a JSON object, not {_json_type(item)}")]
    errors = [
        EventError(index, name, f"is not a field of an event; fields: {', '.join(EVENT_FIELDS)}")
        for name in item
        if name not in EVENT_FIELDS
    ]
    for name in REQUIRED_FIELDS:
        if item.get(name) is None:
            errors.append(EventError(index, name, "is required"))
    parsers = {
        "id": lambda value: parse_identifier(value, "id"),
        "customer_id": lambda value: parse_identifier(value, "customer_id"),
        "name": parse_event_name,
        "occurred_at": lambda value: parse_occurred_at(value, now),
        "properties": parse_properties,
        "email": parse_email,
    }
    parsed: dict[str, Any] = {}
    for name in EVENT_FIELDS:
        value = item.get(name)
        if value is None:
            continue
        try:
            parsed[name] = parsers[name](value)
        except FieldError as error:
            errors.append(EventError(index, name, str(error)))
        if parsed.get(name) is None:
            parsed.pop(name, None)
    if errors:
        return None, sorted(
            errors, key=lambda error: EVENT_FIELDS.index(error.field) if error.field in EVENT_FIELDS else -1
        )
    return parsed, []


def derive_event_key(
    customer: str, name: str, occurred_at: datetime, properties: dict[str, Any] | None, seen: int
) -> str:
    """Return the id of an event sent without one: its content's hash and how often that content came before.

    The importers derive the same key (`RowParser._derived_key` for events), so an event sent here
    and imported from a file without ids is one event.
    """
    return f"e-{values.content_digest([customer, name, occurred_at, properties])}-{seen}"


def store_events(batch: list[Any], now: datetime) -> IngestReport:
    """Validate each event of the batch, store the good ones once, and report on all of them.

    Listeners registered in `marketing.events` are told the new rows' ids after the transaction
    commits, and never when it rolls back.
    """
    if len(batch) > MAX_BATCH_EVENTS:
        raise ValueError(f"a batch holds at most {MAX_BATCH_EVENTS:,} events, not {len(batch):,}")
    report = IngestReport(received=len(batch))
    accepted: list[ValidEvent] = []
    keys_seen: set[str] = set()
    occurrences: dict[tuple, int] = {}
    for index, item in enumerate(batch):
        parsed, errors = validate_event(index, item, now)
        if parsed is None:
            report.errors.extend(errors)
            continue
        key = parsed.get("id")
        if key is None:
            content = (
                parsed["customer_id"],
                parsed["name"],
                parsed["occurred_at"],
                _canonical(parsed.get("properties")),
            )
            occurrences[content] = occurrences.get(content, 0) + 1
            key = derive_event_key(
                parsed["customer_id"],
                parsed["name"],
                parsed["occurred_at"],
                parsed.get("properties"),
                occurrences[content],
            )
        if key in keys_seen:
            report.duplicate_indexes.append(index)
            continue
        keys_seen.add(key)
        accepted.append(
            ValidEvent(
                index=index,
                key=key,
                customer=parsed["customer_id"],
                name=parsed["name"],
                occurred_at=parsed["occurred_at"],
                properties=parsed.get("properties") or {},
                email=parsed.get("email"),
            )
        )
    if accepted:
        with transaction.atomic():
            _write(accepted, report, now)
            if report.stored_ids:
                transaction.on_commit(partial(notify_events_stored, list(report.stored_ids)))
    return report


def _write(events: list[ValidEvent], report: IngestReport, now: datetime) -> None:
    pending = events
    for attempt in range(1, WRITE_ATTEMPTS + 1):
        stored = set(
            Event.objects.filter(external_id__in=[event.key for event in pending]).values_list("external_id", flat=True)
        )
        report.duplicate_indexes.extend(event.index for event in pending if event.key in stored)
        pending = [event for event in pending if event.key not in stored]
        if not pending:
            return
        customers = _customer_ids(pending, report, now)
        rows = [
            Event(
                external_id=event.key,
                customer_id=customers[event.customer],
                name=event.name,
                occurred_at=event.occurred_at,
                properties=event.properties,
                live=True,
            )
            for event in pending
        ]
        try:
            with transaction.atomic():
                Event.objects.bulk_create(rows)
                note_first_seen(earliest_by_customer((row.customer_id, row.occurred_at) for row in rows))
        except IntegrityError:
            # Another request stored one of these ids since they were read; read them again.
            if attempt == WRITE_ATTEMPTS:
                raise
            continue
        report.stored_ids.extend(row.pk for row in rows)
        return


def _customer_ids(events: list[ValidEvent], report: IngestReport, now: datetime) -> dict[str, int]:
    """Return {external_id: pk} for the events' customers, creating unknown ones.

    An event's e-mail address gives a new customer its address and fills a blank one; it never
    replaces an address already stored (customer imports do that).
    """
    emails: dict[str, str] = {}
    for event in events:
        if event.email:
            emails.setdefault(event.customer, event.email)
    wanted = {event.customer for event in events}
    ids = dict(Customer.objects.filter(external_id__in=wanted).values_list("external_id", "pk"))
    missing = sorted(wanted - ids.keys())
    if missing:
        Customer.objects.bulk_create(
            [
                Customer(
                    external_id=key,
                    email=emails.get(key, ""),
                    email_hash=email_hash(emails[key]) if key in emails else "",
                )
                for key in missing
            ],
            ignore_conflicts=True,
        )
        ids.update(Customer.objects.filter(external_id__in=missing).values_list("external_id", "pk"))
        report.customers_created += len(missing)
    known = [ids[key] for key in emails if key not in missing]
    # Usually none of them lacks an address: one read, and an update only for those that do.
    for key, pk in Customer.objects.filter(pk__in=known, email="").values_list("external_id", "pk"):
        address = emails[key]
        Customer.objects.filter(pk=pk, email="").update(email=address, email_hash=email_hash(address), updated_at=now)
    return ids


def _canonical(properties: dict[str, Any] | None) -> str | None:
    return None if properties is None else json.dumps(properties, sort_keys=True)


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"
