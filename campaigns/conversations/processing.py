"""Read new inbound messages: classify them, store each as a `message_received` event, start the campaigns.

A message is the unit of work: its row moves from `new` to `open` in the same transaction that
stores its event and its enrollments, so a message is acted on once, however often its task runs
and however many workers race for it (the conditional update decides). The fast path is a task
enqueued after the message was committed; a task lost with the broker, or a worker that died,
changes nothing that `process_unread_messages` (beat, every 15 s) does not repair: it reads the rows
still `new`, by id.

Nothing automatic happens to a message Kairos is not sure about: no active model, a language the
model does not read, no text of its own, an unknown sender, or an intent confidence below
CONVERSATION_MIN_CONFIDENCE. Those wait for a person in the inbox.
"""

import logging
from datetime import datetime

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from campaigns.engine import enroll_for_events
from campaigns.triggers import MESSAGE_RECEIVED_EVENT
from marketing.enqueue import enqueue
from marketing.models import Event, InboundMessage, InboundStatus
from ml.intent_registry import classified_text, classify_texts
from ml.intents import Prediction

logger = logging.getLogger("kairos")

# Intents that need nobody's attention when no campaign reacts to them.
NOTHING_TO_DO = frozenset({"praise"})


def process_messages(message_ids: list[int], now: datetime | None = None) -> int:
    """Classify and act on the given messages that are still new. Return how many this call processed."""
    now = now or timezone.now()
    messages = list(InboundMessage.objects.unread().filter(pk__in=message_ids))
    if not messages:
        return 0
    classified = classify_texts([classified_text(m.subject, m.body) for m in messages])
    processed = 0
    for index, message in enumerate(messages):
        prediction = classified[0][index] if classified else None
        version = str(classified[1]) if classified else ""
        with transaction.atomic():
            claimed = InboundMessage.objects.filter(pk=message.pk, status=InboundStatus.NEW).update(
                status=InboundStatus.OPEN, updated_at=now
            )
            if not claimed:
                continue  # another worker read it first
            _process(message, prediction, version, now)
        processed += 1
    return processed


def process_unread_messages(now: datetime | None = None) -> int:
    """Process messages still new (their task was lost, or is late), oldest first. Return how many."""
    now = now or timezone.now()
    total = 0
    while True:
        ids = list(InboundMessage.objects.unread().values_list("pk", flat=True)[: settings.CONVERSATION_BATCH_SIZE])
        if not ids:
            return total
        done = process_messages(ids, now)
        total += done
        if len(ids) < settings.CONVERSATION_BATCH_SIZE or done == 0:
            return total


def waiting_reason(message: InboundMessage, prediction: Prediction | None) -> str:
    """Return why a message must wait for a person instead of being acted on, or "" when Kairos may act."""
    threshold = settings.CONVERSATION_MIN_CONFIDENCE
    if prediction is None:
        return "no intent model is active (python manage.py train_intents --activate)"
    if not message.body.strip():
        return "the message has no text of its own once quotes and signatures are removed"
    if prediction.language not in ("en", "zh"):
        return "written in a language the model does not read (only English and Chinese)"
    if prediction.confidence < threshold:
        return f"the model is not sure ({prediction.intent}, confidence {prediction.confidence:.2f} < {threshold:.2f})"
    if message.customer_id is None:
        return "the sender is not a known customer"
    return ""


def _process(message: InboundMessage, prediction: Prediction | None, version: str, now: datetime) -> None:
    message.status = InboundStatus.OPEN
    if prediction is not None:
        message.language, message.intent, message.sentiment = (
            prediction.language,
            prediction.intent,
            prediction.sentiment,
        )
        message.confidence, message.sentiment_confidence = prediction.confidence, prediction.sentiment_confidence
        message.classified_by = version
        message.record(
            f"read as {prediction.intent} ({prediction.confidence:.2f}), {prediction.sentiment} "
            f"({prediction.sentiment_confidence:.2f}), language {prediction.language}, by {version}",
            now,
        )
    waiting = waiting_reason(message, prediction)
    if waiting:
        message.needs_person, message.needs_person_reason = True, waiting[:200]
        message.record(f"nothing automatic: {waiting}; waits for a person", now)
    message.save()
    if message.customer_id is None:
        return
    event, _ = Event.objects.get_or_create(
        external_id=f"kairos:{MESSAGE_RECEIVED_EVENT}:{message.pk}",
        defaults={
            "customer_id": message.customer_id,
            "name": MESSAGE_RECEIVED_EVENT,
            "occurred_at": message.received_at,
            "properties": {
                "message": message.pk,
                "channel": message.channel,
                "language": message.language,
                "intent": message.intent,
                "sentiment": message.sentiment,
                "confidence": message.confidence,
                "sentiment_confidence": message.sentiment_confidence,
                "automatic": not waiting,
            },
        },
    )
    if waiting:
        return
    enrolled = enroll_for_events([event.pk], now)
    if enrolled == 0:
        message.refresh_from_db(fields=["actions", "needs_person", "needs_person_reason"])
        if message.intent in NOTHING_TO_DO:
            message.record("no campaign reacts to it; nothing needs doing", now)
            message.save(update_fields=["actions", "updated_at"])
        else:
            reason = f"no active campaign reacts to {message.intent} messages at confidence {message.confidence:.2f}"
            message.record(f"nothing automatic: {reason}; waits for a person", now)
            message.needs_person, message.needs_person_reason = True, reason
            message.save(update_fields=["actions", "needs_person", "needs_person_reason", "updated_at"])


def hand_messages_to_conversations(message_ids: list[int]) -> None:
    """Listen for newly stored messages (registered with marketing at start): read them in a worker."""
    enqueue("campaigns.process_messages", message_ids)
