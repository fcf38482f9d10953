"""Campaigns as workflows: a trigger, steps in order with branches, and one enrollment row per customer on the way.

The database is the source of truth: an enrollment's current step, state and `next_run_at` say
what happens next and when. Waits are `next_run_at`, never broker countdowns; a beat tick claims
due enrollments and advances each as far as it can go now.
"""

from django.db import models
from django.db.models import Q
from django.utils import timezone

from marketing.models import Customer, Segment


class CampaignStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    SCHEDULED = "scheduled", "Scheduled"
    ACTIVE = "active", "Active"
    PAUSED = "paused", "Paused"
    ARCHIVED = "archived", "Archived"


class Reentry(models.TextChoices):
    ONCE = "once", "Once per customer"
    ALWAYS = "always", "Every time the trigger fires (one live enrollment at a time)"
    COOLDOWN = "cooldown", "Again after a cooldown"


class CampaignQuerySet(models.QuerySet):
    def active(self) -> "CampaignQuerySet":
        return self.filter(status=CampaignStatus.ACTIVE)


class Campaign(models.Model):
    name = models.CharField(max_length=120)
    description = models.TextField(blank=True, default="")
    trigger_type = models.CharField(max_length=40, help_text="What starts a customer on this campaign.")
    trigger_config = models.JSONField(
        default=dict,
        blank=True,
        help_text='Checked by the trigger type, e.g. {"event": "cart_added", "properties": {}}.',
    )
    audience = models.ForeignKey(
        Segment,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="campaigns",
        help_text="Only members of this segment may enter; blank lets everyone the trigger names.",
    )
    goal_event = models.CharField(
        max_length=64, default="order_placed", help_text="What counts as a conversion: order_placed, or an event name."
    )
    goal_days = models.PositiveSmallIntegerField(default=7, help_text="Days after entering in which the goal counts.")
    holdout_percent = models.PositiveSmallIntegerField(
        default=0, help_text="A random share of entrants who get nothing, to measure uplift (0–50)."
    )
    reentry = models.CharField(max_length=8, choices=Reentry.choices, default=Reentry.ONCE)
    reentry_cooldown_days = models.PositiveSmallIntegerField(default=30)
    frequency_cap = models.PositiveSmallIntegerField(
        null=True,
        blank=True,
        help_text="Marketing messages per customer per window across all campaigns; blank uses the setting.",
    )
    frequency_window_hours = models.PositiveSmallIntegerField(null=True, blank=True)
    quiet_hours = models.BooleanField(
        default=True, help_text="Hold messages during quiet hours in the customer's time zone."
    )
    status = models.CharField(max_length=9, choices=CampaignStatus.choices, default=CampaignStatus.DRAFT)
    launched_at = models.DateTimeField(null=True, blank=True)
    trigger_checked_at = models.DateTimeField(
        null=True, blank=True, editable=False, help_text="When the tick last asked the trigger what is new."
    )
    trigger_cursor = models.BigIntegerField(
        null=True,
        blank=True,
        editable=False,
        help_text="The trigger reads what was committed after this id or version (an event, a segment refresh, "
        "a scoring run, a forecast version); it only increases.",
    )
    replaces = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="replacements",
        help_text="The launched campaign this draft copy takes the place of when it is launched.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = CampaignQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        permissions = [("launch_campaign", "Can launch, pause and archive campaigns")]

    def __str__(self) -> str:
        return self.name


class Step(models.Model):
    """One step of a campaign. Without a branch, a step leads to the next one by position."""

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="steps")
    position = models.PositiveSmallIntegerField()
    key = models.SlugField(max_length=40, help_text="A name other steps' branches refer to, e.g. send-reminder.")
    type = models.CharField(max_length=40)
    config = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["campaign", "position"]
        constraints = [
            models.UniqueConstraint(fields=["campaign", "position"], name="step_unique_position"),
            models.UniqueConstraint(fields=["campaign", "key"], name="step_unique_key"),
        ]

    def __str__(self) -> str:
        return f"{self.campaign} #{self.position} {self.key} ({self.type})"


class EnrollmentState(models.TextChoices):
    ACTIVE = "active", "Active"
    COMPLETED = "completed", "Completed"
    EXITED = "exited", "Exited"
    HOLDOUT = "holdout", "Held out (control group)"
    FAILED = "failed", "Failed"


LIVE_STATES = (EnrollmentState.ACTIVE,)


class EnrollmentQuerySet(models.QuerySet):
    def due(self, now) -> "EnrollmentQuerySet":
        """Live enrollments whose next step may run now."""
        return self.filter(state=EnrollmentState.ACTIVE, next_run_at__lte=now, claimed_at__isnull=True)

    def stalled(self, before) -> "EnrollmentQuerySet":
        """Live enrollments claimed before the given time and never released: their worker died."""
        return self.filter(state=EnrollmentState.ACTIVE, claimed_at__lt=before)


class Enrollment(models.Model):
    """One customer on one campaign: where they are, and when the next step runs."""

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="enrollments")
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="enrollments", db_constraint=False)
    step = models.ForeignKey(Step, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    state = models.CharField(max_length=9, choices=EnrollmentState.choices, default=EnrollmentState.ACTIVE)
    # The application's clock, never the database's: the engine and delivery compare it with their own `now`.
    next_run_at = models.DateTimeField(default=timezone.now)
    claimed_at = models.DateTimeField(null=True, blank=True)
    entered_at = models.DateTimeField()
    step_started_at = models.DateTimeField(null=True, blank=True, help_text="When it reached its current step.")
    step_attempts = models.PositiveSmallIntegerField(default=0, help_text="Tries of the current step (webhooks).")
    finished_at = models.DateTimeField(null=True, blank=True)
    variant = models.CharField(
        max_length=40, blank=True, default="", help_text="The A/B variant chosen by a split step."
    )
    trigger_data = models.JSONField(default=dict, blank=True, help_text="What started it, e.g. the event's properties.")
    # No foreign key: events are the largest table. With the constraint below, the fast path and the
    # tick's repair of lost hand-overs admit one event once, whichever runs first.
    event_id = models.BigIntegerField(null=True, blank=True, editable=False, help_text="The event that started it.")
    note = models.TextField(blank=True, default="", help_text="Why it ended, or what it waits for.")

    objects = EnrollmentQuerySet.as_manager()

    class Meta:
        ordering = ["-entered_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["campaign", "customer"], condition=Q(state="active"), name="enrollment_one_live_per_customer"
            ),
            models.UniqueConstraint(
                fields=["campaign", "event_id"], condition=Q(event_id__isnull=False), name="enrollment_one_per_event"
            ),
        ]
        indexes = [
            models.Index(fields=["state", "next_run_at"], name="enrollment_due"),
            models.Index(fields=["customer", "campaign"], name="enrollment_customer"),
        ]

    def __str__(self) -> str:
        return f"{self.customer_id} on {self.campaign_id} ({self.state})"


class StepVisit(models.Model):
    """An enrollment reaching a step: what results count per step, and what simulation reports."""

    enrollment = models.ForeignKey(Enrollment, on_delete=models.CASCADE, related_name="visits")
    step = models.ForeignKey(Step, on_delete=models.CASCADE, related_name="visits")
    at = models.DateTimeField()
    outcome = models.CharField(max_length=200, blank=True, default="")

    class Meta:
        ordering = ["at"]
        indexes = [models.Index(fields=["step", "at"], name="step_visit_step")]

    def __str__(self) -> str:
        return f"{self.enrollment_id} at {self.step_id}: {self.outcome}"
