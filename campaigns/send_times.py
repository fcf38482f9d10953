"""Sending at each customer's best time: when a send-email step or a broadcast should let a message go.

The moment comes from the active send-time version (`ml.send_time_registry`): the customer's best local
hour within 24 hours of when the message was first due, never inside quiet hours. What happens at that
moment is unchanged: the send step still checks quiet hours and the frequency cap then, as for any send.
"""

from datetime import datetime
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import transaction

from campaigns.models import Message, MessageStatus
from campaigns.pacing import customer_zone, in_quiet_hours
from marketing.models import Customer
from ml.send_time_registry import best_send_moment, send_time_rankings
from ml.send_times import best_moment

BEST_TIME = "best"
SEND_TIMES = ("now", BEST_TIME)


def outside_quiet_hours(local: datetime) -> bool:
    return not in_quiet_hours(local, settings.QUIET_HOURS_START_HOUR, settings.QUIET_HOURS_END_HOUR)


def best_time_to_send(
    customer_id: int, now: datetime, zone: ZoneInfo, first_due: datetime | None, quiet_hours: bool
) -> datetime:
    """Return when a message first due at `first_due` should go to the customer (now, or later today)."""
    allowed = outside_quiet_hours if quiet_hours else (lambda local: True)
    return best_send_moment(customer_id, now, zone, first_due, allowed)


def schedule_at_best_times(broadcast_id: int, now: datetime) -> int:
    """Move each queued message of the broadcast to its customer's best time; return how many were moved."""
    messages = list(
        Message.objects.filter(broadcast_id=broadcast_id, status=MessageStatus.QUEUED).values_list("pk", "customer_id")
    )
    rankings = send_time_rankings([customer for _, customer in messages if customer])
    if rankings is None:
        return 0
    own, shop = rankings
    zones = dict(
        Customer.objects.filter(pk__in=[customer for _, customer in messages]).values_list("pk", "timezone")
    )
    moved = []
    for pk, customer in messages:
        zone = customer_zone(zones.get(customer) or "").zone
        at = best_moment(now, zone, own.get(customer, shop), now, outside_quiet_hours)
        if at > now:
            moved.append(Message(pk=pk, next_attempt_at=at))
    with transaction.atomic():
        Message.objects.bulk_update(moved, ["next_attempt_at"], batch_size=1_000)
    return len(moved)
