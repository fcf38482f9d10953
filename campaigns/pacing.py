"""Respecting people: quiet hours in each customer's own time zone, and a frequency cap across campaigns and broadcasts.

`pace` is the one decision every marketing message goes through when delivery claims it, whether
a broadcast or a campaign step queued it. Transactional messages (replies to a customer's own
message, confirmations, test sends to an address a user typed) are exempt, and so is a broadcast
whose `pacing_exemption` records why. Quiet hours never drop a message: it waits for the next allowed local time. A time zone Kairos
cannot read falls back to the shop's zone, and the fallback is reported, never silent.
"""

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.conf import settings

from campaigns.models import Message, MessageKind, MessageStatus
from marketing.models import Customer


@dataclass(frozen=True)
class LocalZone:
    zone: ZoneInfo
    problem: str = ""  # set when the customer's own zone could not be used


def customer_zone(name: str) -> LocalZone:
    """Return the customer's zone, or the shop's with the reason when theirs is blank or unknown."""
    fallback = ZoneInfo(settings.TIME_ZONE)
    if not name:
        return LocalZone(fallback)
    try:
        return LocalZone(ZoneInfo(name))
    except (ZoneInfoNotFoundError, ValueError):
        return LocalZone(fallback, f"time zone {name!r} is not an IANA zone; used {settings.TIME_ZONE}")


def in_quiet_hours(local: datetime, start_hour: int, end_hour: int) -> bool:
    hour = local.hour
    if start_hour == end_hour:
        return False
    if start_hour > end_hour:  # the quiet window crosses midnight, e.g. 21:00 to 08:00
        return hour >= start_hour or hour < end_hour
    return start_hour <= hour < end_hour


def quiet_until(
    now: datetime, zone: ZoneInfo, start_hour: int | None = None, end_hour: int | None = None
) -> datetime | None:
    """Return when quiet hours end for someone in this zone, in UTC, or None when it is not quiet now."""
    start_hour = settings.QUIET_HOURS_START_HOUR if start_hour is None else start_hour
    end_hour = settings.QUIET_HOURS_END_HOUR if end_hour is None else end_hour
    local = now.astimezone(zone)
    if not in_quiet_hours(local, start_hour, end_hour):
        return None
    day = local.date() if local.hour < end_hour else local.date() + timedelta(days=1)
    # Wall-clock 08:00 can fall in a DST gap; converting through UTC lands on the first real instant after it.
    allowed = datetime.combine(day, time(end_hour), tzinfo=zone).astimezone(UTC)
    return max(allowed, now)


def next_local_time(now: datetime, zone: ZoneInfo, at: time) -> datetime:
    """Return the next moment (in UTC) when the customer's clock shows `at`, today or tomorrow."""
    local = now.astimezone(zone)
    candidate = datetime.combine(local.date(), at, tzinfo=zone)
    if candidate.astimezone(UTC) <= now:
        candidate = datetime.combine(local.date() + timedelta(days=1), at, tzinfo=zone)
    return candidate.astimezone(UTC)


@dataclass(frozen=True)
class Paced:
    """A marketing message about to be sent, with the rules it must respect (its campaign's, or the settings)."""

    message_id: int
    customer_id: int | None
    quiet_hours: bool = True
    cap: int | None = None  # None: FREQUENCY_CAP_MESSAGES
    window_hours: int | None = None  # None: FREQUENCY_CAP_WINDOW_HOURS


@dataclass(frozen=True)
class Decision:
    """Send now (neither set), hold until a time (quiet hours), or refuse with the reason (the cap)."""

    hold_until: datetime | None = None
    refusal: str = ""
    note: str = ""  # a time zone that could not be used, reported with the outcome

    @property
    def sends(self) -> bool:
        return self.hold_until is None and not self.refusal


# The statuses of a message that went out, or may have: they count towards the cap from their claim.
COUNTED_STATUSES = (MessageStatus.SENDING, MessageStatus.SENT, MessageStatus.UNKNOWN)


def pace(messages: list[Paced], now: datetime) -> dict[int, Decision]:
    """Decide for each marketing message whether it leaves now, waits for the morning, or is capped.

    The one decision every marketing message goes through, from a broadcast or a campaign step,
    made while claiming it for sending. It locks the customers' rows, so two workers deciding for
    the same customer take turns and the second counts what the first let go; within the batch,
    messages are decided in id order, each counting those let go before it.
    """
    customer_ids = sorted({message.customer_id for message in messages if message.customer_id is not None})
    zones = dict(
        Customer.objects.select_for_update().filter(pk__in=customer_ids).order_by("pk").values_list("pk", "timezone")
    )
    longest = max((_window(message) for message in messages), default=0)
    counted: dict[int, list[datetime]] = {}
    batch = [message.message_id for message in messages]
    for customer_id, claimed_at in (
        Message.objects.filter(
            customer_id__in=customer_ids,
            kind=MessageKind.MARKETING,
            status__in=COUNTED_STATUSES,
            claimed_at__gt=now - timedelta(hours=longest),
        )
        .exclude(pk__in=batch)
        .values_list("customer_id", "claimed_at")
    ):
        counted.setdefault(customer_id, []).append(claimed_at)
    decisions: dict[int, Decision] = {}
    for message in sorted(messages, key=lambda message: message.message_id):
        zone = customer_zone(zones.get(message.customer_id) or "")
        if message.quiet_hours:
            until = quiet_until(now, zone.zone)
            if until is not None:
                decisions[message.message_id] = Decision(
                    hold_until=until, note=_noted(f"quiet hours in {zone.zone.key} until {until:%Y-%m-%d %H:%M} UTC", zone)
                )
                continue
        cap = settings.FREQUENCY_CAP_MESSAGES if message.cap is None else message.cap
        window = _window(message)
        recent = [moment for moment in counted.get(message.customer_id, []) if moment > now - timedelta(hours=window)]
        if len(recent) >= cap:
            decisions[message.message_id] = Decision(
                refusal=_noted(f"frequency cap: {len(recent)} marketing messages in the last {window} h (at most {cap})", zone)
            )
            continue
        counted.setdefault(message.customer_id, []).append(now)
        decisions[message.message_id] = Decision(note=zone.problem)
    return decisions


def _window(message: Paced) -> int:
    return settings.FREQUENCY_CAP_WINDOW_HOURS if message.window_hours is None else message.window_hours


def _noted(text: str, zone: LocalZone) -> str:
    return f"{text}; {zone.problem}" if zone.problem else text
