"""Respecting people: quiet hours in each customer's own time zone, and a frequency cap across campaigns.

Quiet hours never drop a message: it waits for the next allowed local time. A time zone Kairos
cannot read falls back to the shop's zone, and the fallback is reported, never silent.
"""

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.conf import settings

from campaigns.models import Message, MessageKind, MessageStatus


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


def messages_in_window(customer_id: int, now: datetime, window_hours: int) -> int:
    """Count the marketing messages a customer was sent, or has on the way, in the rolling window."""
    return Message.objects.filter(
        customer_id=customer_id,
        kind=MessageKind.MARKETING,
        status__in=[MessageStatus.QUEUED, MessageStatus.SENDING, MessageStatus.SENT, MessageStatus.UNKNOWN],
        created_at__gt=now - timedelta(hours=window_hours),
    ).count()


def frequency_cap_reached(
    customer_id: int, now: datetime, cap: int | None = None, window_hours: int | None = None
) -> str:
    """Return why the customer may not get another message now, or an empty string when they may."""
    cap = settings.FREQUENCY_CAP_MESSAGES if cap is None else cap
    window_hours = settings.FREQUENCY_CAP_WINDOW_HOURS if window_hours is None else window_hours
    count = messages_in_window(customer_id, now, window_hours)
    if count >= cap:
        return f"frequency cap: {count} marketing messages in the last {window_hours} h (at most {cap})"
    return ""
