"""Delivery: broadcasts and the outbox of messages.

A `Message` is the outbox row of one e-mail to one person: it exists before anything is sent,
and its unique key (broadcast and customer, or enrollment and step) decides whether a send happened.
"""

from django.db import models
from django.db.models import Q
from django.utils import timezone

from campaigns.models.content import EmailTemplate, TemplateVersion
from marketing.models import Customer, InboundMessage, Segment


class BroadcastStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    QUEUED = "queued", "Queued"
    DONE = "done", "Done"


class Broadcast(models.Model):
    """A one-off send of a template to a segment (or to every mailable customer)."""

    name = models.CharField(max_length=120)
    template = models.ForeignKey(EmailTemplate, on_delete=models.PROTECT, related_name="broadcasts")
    segment = models.ForeignKey(
        Segment,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="broadcasts",
        help_text="Blank sends to every customer who may be mailed.",
    )
    status = models.CharField(max_length=8, choices=BroadcastStatus.choices, default=BroadcastStatus.DRAFT)
    send_at_best_time = models.BooleanField(
        default=False,
        help_text="Send each message at its customer's best time within the next 24 hours (outside quiet hours), "
        "learned by train_send_times; without an active send-time model, everything goes at once.",
    )
    pacing_exemption = models.TextField(
        blank=True,
        default="",
        help_text="Blank: the frequency cap and quiet hours apply, as to every marketing message. To send regardless "
        "(a legally required notice, a recall), write why; the reason is kept and shown with the broadcast.",
    )
    queued_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.name


class MessageKind(models.TextChoices):
    MARKETING = "marketing", "Marketing"
    TEST = "test", "Test send to an address a user typed"
    AUTO_REPLY = "auto_reply", "Automatic reply to a customer's message"
    REPLY = "reply", "Reply by a person to a customer's message"
    CONFIRMATION = "confirmation", "Confirmation of something the customer did or asked for"


# Answers to what a customer wrote: no marketing consent needed, never held, never sent to a bounced address.
REPLY_KINDS = (MessageKind.AUTO_REPLY, MessageKind.REPLY)
# Exempt from the frequency cap and quiet hours, and never counted towards the cap.
TRANSACTIONAL_KINDS = (MessageKind.TEST, MessageKind.AUTO_REPLY, MessageKind.REPLY, MessageKind.CONFIRMATION)


class MessageStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    SENDING = "sending", "Sending"
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed"
    SUPPRESSED = "suppressed", "Suppressed"
    UNKNOWN = "unknown", "Unknown (interrupted while sending)"


class MessageQuerySet(models.QuerySet):
    def due(self, now) -> "MessageQuerySet":
        """Queued messages whose next attempt is not in the future."""
        return self.filter(status=MessageStatus.QUEUED, next_attempt_at__lte=now)

    def stalled(self, before) -> "MessageQuerySet":
        """Messages claimed for sending before the given time and never finished."""
        return self.filter(status=MessageStatus.SENDING, claimed_at__lt=before)


class Message(models.Model):
    """One e-mail to one person: written before it is sent, final once it was."""

    kind = models.CharField(max_length=12, choices=MessageKind.choices, default=MessageKind.MARKETING)
    broadcast = models.ForeignKey(Broadcast, on_delete=models.PROTECT, null=True, blank=True, related_name="messages")
    enrollment = models.ForeignKey(
        "campaigns.Enrollment", on_delete=models.SET_NULL, null=True, blank=True, related_name="messages"
    )
    step = models.ForeignKey(
        "campaigns.Step", on_delete=models.SET_NULL, null=True, blank=True, related_name="messages"
    )
    customer = models.ForeignKey(Customer, on_delete=models.SET_NULL, null=True, blank=True, related_name="messages")
    inbound_message = models.ForeignKey(
        InboundMessage,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="replies",
        help_text="The customer's message this one answers (replies only).",
    )
    template = models.ForeignKey(EmailTemplate, on_delete=models.PROTECT, related_name="messages")
    template_version = models.ForeignKey(
        TemplateVersion,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="messages",
        help_text="The version rendered, chosen for the customer's locale when the message was sent.",
    )
    to_email = models.CharField(max_length=254)
    status = models.CharField(max_length=10, choices=MessageStatus.choices, default=MessageStatus.QUEUED)
    attempts = models.PositiveSmallIntegerField(default=0)
    # The application's clock, never the database's: the engine and delivery compare it with their own `now`.
    next_attempt_at = models.DateTimeField(default=timezone.now)
    claimed_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True, default="")
    message_id = models.CharField(max_length=255, blank=True, default="", help_text="The Message-ID header sent.")
    provider_id = models.CharField(
        max_length=255, blank=True, default="", help_text="The ESP's id for the message, if any."
    )
    subject = models.CharField(max_length=255, blank=True, default="")
    links = models.JSONField(
        default=list, blank=True, help_text="Links recorded at render time; clicks redirect only here."
    )
    opened_at = models.DateTimeField(
        null=True, blank=True, help_text="First open by a person (machine opens excluded)."
    )
    open_count = models.PositiveIntegerField(default=0)
    machine_open_count = models.PositiveIntegerField(default=0)
    clicked_at = models.DateTimeField(null=True, blank=True)
    click_count = models.PositiveIntegerField(default=0)
    # Not auto_now_add: the engine writes the time it queued the message. The frequency cap counts from the
    # claim (`claimed_at`), where delivery decides whether a marketing message leaves now.
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    objects = MessageQuerySet.as_manager()

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["broadcast", "customer"],
                condition=Q(broadcast__isnull=False),
                name="message_unique_broadcast_customer",
            ),
            # The row that decides whether a campaign step was sent to an enrollment: never twice.
            models.UniqueConstraint(
                fields=["enrollment", "step"],
                condition=Q(enrollment__isnull=False),
                name="message_unique_enrollment_step",
            ),
        ]
        indexes = [models.Index(fields=["status", "next_attempt_at"], name="message_status_due")]

    def __str__(self) -> str:
        return f"Message {self.pk} to {self.to_email} ({self.status})"
