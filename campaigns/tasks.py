"""Celery tasks of the campaigns app: thin shells over plain functions (queues: CELERY_TASK_ROUTES)."""

import logging

from celery import shared_task

from campaigns.content import generate_content
from campaigns.conversations.processing import process_messages, process_unread_messages
from campaigns.delivery import dispatch_due_messages, mark_stalled_messages, queue_broadcast, send_messages
from campaigns.engine import advance, enroll_for_events, run_recurring, tick
from marketing.models import Segment

logger = logging.getLogger("kairos")


# --- SEO and social content ------------------------------------------------------------------


@shared_task(name="campaigns.generate_content")
def generate_content_task(
    kind: str, locale: str = "", segment_id: int | None = None, channels: list[str] | None = None
) -> None:
    """Generate SEO metadata and social posts for products or categories, aimed at a segment when one is given."""
    segment = None
    if segment_id is not None:
        segment = Segment.objects.filter(pk=segment_id).first()
        if segment is None:
            logger.warning("content generation skipped: segment %s no longer exists", segment_id)
            return
    report = generate_content(kind, locale=locale, segment=segment, channels=channels)
    logger.info("content generation for %s (locale %r) finished: %s", kind, locale, report.summary())


# --- Delivery --------------------------------------------------------------------------------


@shared_task(name="campaigns.send_messages", ignore_result=True)
def send_messages_task(message_ids: list[int]) -> None:
    """Send a batch of queued messages over one connection; rows another worker claimed are skipped."""
    report = send_messages(message_ids)
    logger.info("send batch: %s", report.summary())


@shared_task(name="campaigns.dispatch_due_messages", ignore_result=True)
def dispatch_due_messages_task() -> None:
    """Hand due messages (new ones and retries whose back-off has passed) to workers (beat, every 10 s)."""
    dispatch_due_messages()


@shared_task(name="campaigns.mark_stalled_messages", ignore_result=True)
def mark_stalled_messages_task() -> None:
    """Report messages a dead worker left in `sending` as unknown (beat, every minute)."""
    mark_stalled_messages()


@shared_task(name="campaigns.queue_broadcast", ignore_result=True)
def queue_broadcast_task(broadcast_id: int) -> None:
    """Write the broadcast's messages and hand them to workers."""
    count = queue_broadcast(broadcast_id)
    logger.info("broadcast %s: %d messages queued", broadcast_id, count)


# --- Campaign engine -------------------------------------------------------------------------


@shared_task(name="campaigns.engine_tick", ignore_result=True)
def engine_tick_task() -> None:
    """Poll triggers and hand due enrollments to workers (beat, every ENGINE_TICK_S)."""
    tick()


@shared_task(name="campaigns.advance_enrollments", ignore_result=True)
def advance_enrollments_task(enrollment_ids: list[int]) -> None:
    """Advance enrollments as far as each can go now; rows another worker holds or already moved are skipped."""
    advance(enrollment_ids)


@shared_task(name="campaigns.enroll_for_events", ignore_result=True)
def enroll_for_events_task(event_ids: list[int]) -> None:
    """Start customers whose just-stored events match an active campaign's trigger."""
    enroll_for_events(event_ids)


@shared_task(name="campaigns.run_recurring_campaign", ignore_result=True)
def run_recurring_campaign_task(campaign_id: int) -> None:
    """Enroll a recurring campaign's audience (its django-celery-beat periodic task)."""
    run_recurring(campaign_id)


# --- Conversations ---------------------------------------------------------------------------


@shared_task(name="campaigns.process_messages", ignore_result=True)
def process_messages_task(message_ids: list[int]) -> None:
    """Classify just-stored customer messages and start the campaigns that react to them."""
    processed = process_messages(message_ids)
    logger.info("messages: %d of %d read and acted on", processed, len(message_ids))


@shared_task(name="campaigns.process_unread_messages", ignore_result=True)
def process_unread_messages_task() -> None:
    """Read messages still new, whose task was lost or is late (beat, every 15 s)."""
    processed = process_unread_messages()
    if processed:
        logger.info("messages: %d unread ones read and acted on by the beat pass", processed)
