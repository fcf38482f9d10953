"""The workflow engine: enroll customers, and advance each enrollment as far as it can go now.

Each enrollment is a row with its current step, state and `next_run_at`. A beat tick every few
seconds asks polled triggers for new customers, then claims due enrollments in bounded batches
(`SELECT … FOR UPDATE SKIP LOCKED` on PostgreSQL; SQLite's write lock serialises the rest) and
hands them to workers after commit. A worker advances each enrollment in its own transaction,
under its row lock, so a duplicate task or a concurrent tick finds the row locked or already
moved on. A message is decided by its unique (enrollment, step) row, never by the broker.
Enrollments handed over and never released (their task was lost with the broker, or the worker
died) are handed over again after ENGINE_STALL_S.
"""

import hashlib
import hmac
import json
import logging
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Max, Min
from django.utils import timezone

from campaigns.admission import admit
from campaigns.context import CUSTOMER_FIELDS
from campaigns.conversations import actions as conversation_actions
from campaigns.models import (
    Campaign,
    CampaignStatus,
    Enrollment,
    EnrollmentState,
    Message,
    MessageKind,
    MessageStatus,
    Step,
    StepVisit,
)
from campaigns.schedules import sync_schedule
from campaigns.steps import StepContext, StepError, StepResult, steps
from campaigns.triggers import Audience, Candidate, StoredEvent, TriggerError, triggers
from marketing.enqueue import app_is_eager, enqueue, enqueue_gathered
from marketing.models import Customer, Event, SegmentMembership

logger = logging.getLogger("kairos")

# Steps one enrollment may take in one go; a campaign whose branches loop without a wait stops here.
MAX_STEPS_PER_ADVANCE = 50


class CampaignError(ValueError):
    """A campaign that cannot run: `field` names what to fix."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


# --- Definitions ------------------------------------------------------------------------------


def check_campaign(campaign: Campaign) -> None:
    """Validate the trigger and every step's config, writing back the cleaned configs; raise CampaignError."""
    try:
        campaign.trigger_config = triggers.get(campaign.trigger_type).clean(campaign.trigger_config or {})
    except TriggerError as error:
        raise CampaignError(
            f"trigger_config.{error.field}" if error.field != "trigger_type" else "trigger_type", error.message
        ) from None
    if not 0 <= campaign.holdout_percent <= 50:
        raise CampaignError("holdout_percent", "must be between 0 and 50")
    campaign_steps = list(campaign.steps.order_by("position"))
    if not campaign_steps:
        raise CampaignError("steps", "a campaign needs at least one step")
    keys = {step.key for step in campaign_steps}
    for step in campaign_steps:
        try:
            step.config = steps.get(step.type).clean(step.config or {}, keys)
        except StepError as error:
            raise CampaignError(f"step {step.key}: {error.field}", error.message) from None
        step.save(update_fields=["config"])


def launch(campaign: Campaign, now: datetime | None = None) -> Campaign:
    """Check the campaign and make it active; a trigger that does not look back sees only what comes from now on."""
    now = now or timezone.now()
    with transaction.atomic():
        check_campaign(campaign)
        trigger = triggers.get(campaign.trigger_type)
        campaign.status = CampaignStatus.ACTIVE
        campaign.launched_at = campaign.launched_at or now
        if not trigger.polled:
            # The tick repairs lost event hand-overs after this cursor: events before the launch never count.
            campaign.trigger_cursor = Event.objects.aggregate(last=Max("pk"))["last"] or 0
        elif not trigger.looks_back:
            campaign.trigger_checked_at = now
            if trigger.cursored:
                campaign.trigger_cursor = trigger.start_cursor(campaign.trigger_config, now)
        campaign.save()
        sync_schedule(campaign)
    return campaign


def set_status(campaign: Campaign, status: str) -> Campaign:
    """Pause, archive or launch a campaign; a recurring one's periodic task follows."""
    if status == CampaignStatus.ACTIVE:
        return launch(campaign)
    with transaction.atomic():
        campaign.status = status
        campaign.save(update_fields=["status", "updated_at"])
        sync_schedule(campaign)
    return campaign


def run_recurring(campaign_id: int, now: datetime | None = None) -> int:
    """Enroll a recurring campaign's audience now (its periodic task calls this). Return how many entered."""
    now = now or timezone.now()
    campaign = Campaign.objects.filter(pk=campaign_id, status=CampaignStatus.ACTIVE).first()
    if campaign is None:
        return 0
    with transaction.atomic():
        admitted = admit(campaign, triggers.get("recurring").audience(campaign.trigger_config, now), now)
    # The first steps run in batches, claimed like any due enrollment.
    dispatch_due(now)
    return admitted.entered


# --- Enrolling --------------------------------------------------------------------------------


def enroll(
    campaign: Campaign, candidates: list[Candidate], now: datetime | None = None, *, hand_over: bool = True
) -> list[int]:
    """Start customers on an active campaign; return the new live enrollments' ids.

    They are handed to workers after commit, unless `hand_over` is false: then the caller advances them itself.
    """
    now = now or timezone.now()
    if campaign.status != CampaignStatus.ACTIVE or not candidates:
        return []
    with transaction.atomic():
        live = admit(campaign, list(candidates), now, want_live_ids=True).live_ids
        if live and hand_over:
            transaction.on_commit(lambda: _advance_later(live))
    return live


def _advance_later(enrollment_ids: list[int]) -> None:
    size = settings.ENGINE_BATCH_SIZE
    for start in range(0, len(enrollment_ids), size):
        enqueue("campaigns.advance_enrollments", enrollment_ids[start : start + size])


def _event_campaigns() -> list[Campaign]:
    return [
        campaign
        for campaign in Campaign.objects.active().select_related("audience")
        if not triggers.get(campaign.trigger_type).polled
    ]


def _matched(campaign: Campaign, events: list[StoredEvent]) -> list[Candidate]:
    trigger = triggers.get(campaign.trigger_type)
    return [
        Candidate(
            event.customer_id, {"event": event.name, "event_id": event.id, "properties": event.properties}, event.id
        )
        for event in events
        if trigger.matches_event(campaign.trigger_config, event)
    ]


def _stored_events(events) -> list[StoredEvent]:
    return [
        StoredEvent(row["pk"], row["customer_id"], row["name"], row["occurred_at"], row["properties"] or {})
        for row in events.values("pk", "customer_id", "name", "occurred_at", "properties")
    ]


def enroll_for_events(event_ids: list[int], now: datetime | None = None) -> int:
    """Enroll the customers whose just-stored events match an active campaign's event trigger. Return how many."""
    campaigns = _event_campaigns()
    if not campaigns or not event_ids:
        return 0
    events = _stored_events(Event.objects.filter(pk__in=event_ids).order_by("pk"))
    enrolled = 0
    for campaign in campaigns:
        live = enroll(campaign, _matched(campaign, events), now, hand_over=False)
        # Events are the latency-sensitive path: the first steps run here, and their first e-mails
        # leave from here too, not one more task away.
        advance(live, now, send_here=True)
        enrolled += len(live)
    return enrolled


def hand_events_to_engine(event_ids: list[int]) -> None:
    """Listen for newly stored events (registered with marketing at start): match triggers in a worker.

    Ids stored within ENGINE_EVENT_GATHER_MS go as one task. If the broker refuses the hand-over,
    or this process dies before it, the tick's repair (`repair_event_enrollments`) enrolls them.
    """
    if settings.ENGINE_EVENT_GATHER_MS > 0 and not app_is_eager():
        enqueue_gathered("campaigns.enroll_for_events", event_ids, settings.ENGINE_EVENT_GATHER_MS)
    else:
        enqueue("campaigns.enroll_for_events", event_ids)


def repair_event_enrollments(campaign: Campaign, now: datetime) -> int:
    """Enroll, for a locked event-triggered campaign, the customers of events whose hand-over was lost. Return how many.

    Reads live events after the campaign's cursor, in id order, and moves the cursor past those
    stored at least ENGINE_EVENT_REPAIR_S ago, stopping at the first younger one: ids are drawn
    before commit, so a younger id may still be joined by an older one committing late, and the
    fast path usually handles events long before. An event the fast path admitted is admitted
    again by no one: (campaign, event) is unique.
    """
    cursor = campaign.trigger_cursor or 0
    horizon = now - timedelta(seconds=settings.ENGINE_EVENT_REPAIR_S)
    after = Event.objects.filter(pk__gt=cursor)
    boundary = after.filter(created_at__gt=horizon).aggregate(first=Min("pk"))["first"]
    settled = after.filter(pk__lt=boundary) if boundary is not None else after
    ids = list(settled.order_by("pk").values_list("pk", flat=True)[: settings.ENGINE_EVENT_REPAIR_BATCH])
    if not ids:
        return 0
    events = _stored_events(Event.objects.filter(pk__in=ids, live=True).order_by("pk"))
    # Not handed over here: the dispatch that follows in the same tick claims them with the other due ones.
    live = enroll(campaign, _matched(campaign, events), now, hand_over=False)
    campaign.trigger_cursor = ids[-1]
    return len(live)


def enroll_by_hand(campaign: Campaign, customer_ids: list[int], now: datetime | None = None) -> int:
    """Enroll chosen customers on an active campaign (the admin's "enroll" action). Return how many."""
    return len(enroll(campaign, [Candidate(customer_id, {"manual": True}) for customer_id in customer_ids], now))


def poll_triggers(now: datetime | None = None) -> int:
    """Ask every active campaign's trigger what was committed after its cursor, and enroll them. Return how many.

    Polled triggers name what is new in their source; event triggers are repaired from the events
    table, for hand-overs the broker lost. The cursor moves in the transaction that enrolls. The
    new enrollments are due at once: the dispatch of the same tick hands them to workers in batches.
    """
    now = now or timezone.now()
    enrolled = 0
    for campaign in Campaign.objects.active():
        trigger = triggers.get(campaign.trigger_type)
        if trigger.key == "manual":
            continue
        with transaction.atomic():
            locked = Campaign.objects.select_for_update(skip_locked=True).filter(pk=campaign.pk).first()
            if locked is None or locked.status != CampaignStatus.ACTIVE:
                continue  # another tick is polling it, or it was paused meanwhile
            if not trigger.polled:
                enrolled += repair_event_enrollments(locked, now)
            elif trigger.cursored:
                named, locked.trigger_cursor = trigger.candidates_after(
                    locked.trigger_config, locked.trigger_cursor, now
                )
                enrolled += _enroll_named(locked, named, now)
            else:
                candidates = list(trigger.candidates(locked.trigger_config, locked.trigger_checked_at, now))
                enrolled += len(enroll(locked, candidates, now, hand_over=False))
            locked.trigger_checked_at = now
            locked.save(update_fields=["trigger_checked_at", "trigger_cursor"])
    return enrolled


def _enroll_named(campaign: Campaign, named: Audience | list[Candidate], now: datetime) -> int:
    if isinstance(named, Audience):
        # Set-based: the dispatch that follows in the same tick hands the new enrollments over in batches.
        admitted = admit(campaign, named, now)
        return admitted.entered - admitted.held_out
    return len(enroll(campaign, named, now, hand_over=False))


# --- Advancing --------------------------------------------------------------------------------


@dataclass
class AdvanceReport:
    advanced: int = 0
    visits: int = 0
    outcomes: list[str] = field(default_factory=list)


def dispatch_due(now: datetime | None = None) -> int:
    """Claim due enrollments in bounded batches and hand them to workers after commit. Return how many."""
    now = now or timezone.now()
    recover_stalled(now)
    handed = 0
    while True:
        with transaction.atomic():
            ids = list(
                Enrollment.objects.due(now)
                .order_by("next_run_at", "pk")
                .select_for_update(skip_locked=True)
                .values_list("pk", flat=True)[: settings.ENGINE_BATCH_SIZE]
            )
            if not ids:
                return handed
            Enrollment.objects.filter(pk__in=ids).update(claimed_at=now)
            transaction.on_commit(lambda ids=ids: _advance_later(ids))
        handed += len(ids)
        if len(ids) < settings.ENGINE_BATCH_SIZE:
            return handed


def recover_stalled(now: datetime) -> int:
    """Release enrollments handed over longer than ENGINE_STALL_S ago: the next tick hands them over again."""
    return Enrollment.objects.stalled(now - timedelta(seconds=settings.ENGINE_STALL_S)).update(claimed_at=None)


def tick(now: datetime | None = None) -> int:
    """The beat tick: poll triggers, then hand due enrollments to workers. Return how many were handed over."""
    now = now or timezone.now()
    poll_triggers(now)
    return dispatch_due(now)


def advance(
    enrollment_ids: list[int], now: datetime | None = None, effects=None, *, send_here: bool = False
) -> AdvanceReport:
    """Advance each enrollment as far as it can go now, each in its own transaction under its row lock.

    With `send_here`, the messages queued are sent by this process after commit (the event fast path).
    """
    now = now or timezone.now()
    effects = effects or LiveEffects()
    report = AdvanceReport()
    if not enrollment_ids:
        return report
    plans: dict[int, _Plan] = {}
    # The customers of the whole batch in one query; each enrollment still runs under its own row lock.
    customers = customer_views(Enrollment.objects.filter(pk__in=enrollment_ids).values("customer_id"))
    for enrollment_id in enrollment_ids:
        with transaction.atomic():
            enrollment = (
                Enrollment.objects.select_for_update(skip_locked=True, of=("self",))
                .select_related("campaign", "step")
                .filter(pk=enrollment_id, state=EnrollmentState.ACTIVE, next_run_at__lte=now)
                .first()
            )
            if enrollment is None:
                continue  # finished, waiting, or another worker holds it
            report.advanced += 1
            report.visits += run_enrollment(
                enrollment, now, effects, report.outcomes, plans, customers.get(enrollment.customer_id)
            )
    if isinstance(effects, LiveEffects):
        effects.hand_over(send_here=send_here)
    return report


def customer_view(customer_id: int) -> dict[str, Any]:
    row = Customer.objects.filter(pk=customer_id).values("pk", *CUSTOMER_FIELDS).first()
    return row or {"pk": customer_id}


def customer_views(customer_ids) -> dict[int, dict[str, Any]]:
    """Return the steps' view of each customer whose id the iterable or subquery yields."""
    return {row["pk"]: row for row in Customer.objects.filter(pk__in=customer_ids).values("pk", *CUSTOMER_FIELDS)}


@dataclass(frozen=True)
class _Plan:
    """A campaign's steps by key, and the step after each by position."""

    by_key: dict[str, Step]
    after: dict[int, Step | None]


def _plan(campaign: Campaign) -> _Plan:
    ordered = list(campaign.steps.order_by("position"))
    after = {step.pk: ordered[index + 1] if index + 1 < len(ordered) else None for index, step in enumerate(ordered)}
    return _Plan({step.key: step for step in ordered}, after)


def run_enrollment(
    enrollment: Enrollment,
    now: datetime,
    effects,
    outcomes: list[str] | None = None,
    plans: dict[int, _Plan] | None = None,
    customer: dict[str, Any] | None = None,
) -> int:
    """Run steps for one enrollment until it waits, exits or ends; save it. Return the steps visited.

    `plans` caches each campaign's steps across the enrollments of one batch.
    """
    campaign = enrollment.campaign
    plans = {} if plans is None else plans
    if campaign.pk not in plans:
        plans[campaign.pk] = _plan(campaign)
    by_key, after = plans[campaign.pk].by_key, plans[campaign.pk].after
    customer = customer if customer is not None else customer_view(enrollment.customer_id)
    visited = 0
    step = enrollment.step
    while True:
        if step is None:
            _finish(enrollment, EnrollmentState.COMPLETED, now, "reached the end")
            break
        if campaign.status != CampaignStatus.ACTIVE:
            enrollment.note = f"campaign is {campaign.status}; waits for it to be active again"
            enrollment.next_run_at = now + timedelta(seconds=settings.ENGINE_TICK_S * 12)
            break
        if visited >= MAX_STEPS_PER_ADVANCE:
            _finish(
                enrollment,
                EnrollmentState.FAILED,
                now,
                f"ran {MAX_STEPS_PER_ADVANCE} steps without waiting: the branches loop",
            )
            break
        result: StepResult = steps.get(step.type).run(StepContext(campaign, step, enrollment, customer, now, effects))
        StepVisit.objects.create(enrollment=enrollment, step=step, at=now, outcome=result.outcome[:200])
        visited += 1
        if outcomes is not None:
            outcomes.append(f"{step.key}: {result.outcome}")
        if result.wait_until is not None:
            enrollment.step = step
            enrollment.next_run_at = result.wait_until
            break
        if result.exit:
            _finish(enrollment, EnrollmentState.EXITED, now, result.outcome)
            break
        step = by_key[result.next_key] if result.next_key else after[step.pk]
        enrollment.step, enrollment.step_started_at, enrollment.step_attempts = step, now, 0
    enrollment.claimed_at = None
    enrollment.save()
    return visited


def _finish(enrollment: Enrollment, state: str, now: datetime, note: str) -> None:
    enrollment.state, enrollment.finished_at, enrollment.note = state, now, note[:500]
    enrollment.step = None


# --- What steps do for real -------------------------------------------------------------------


def _send_here(send_messages, batch: list[int]) -> None:
    try:
        send_messages(batch)
    except Exception:
        # Rows still queued are found by the next dispatch; rows left sending become unknown, never resent.
        logger.exception("sending %d messages after their enrollment failed; the dispatch tick takes over", len(batch))


class LiveEffects:
    """Steps' effects on the world: messages queued for delivery, webhooks called, customers updated."""

    def __init__(self) -> None:
        self.queued: list[int] = []

    def hand_over(self, *, send_here: bool = False) -> None:
        """Hand the messages queued by this run to the e-mail workers in batches, after commit.

        With `send_here` (the event fast path), a first batch is sent by this worker right after
        commit instead: one task less between an event and its e-mail. If this process dies first,
        the rows are queued in the database and the next dispatch tick finds them.
        """
        from campaigns.delivery import send_later, send_messages

        queued, self.queued = self.queued, []
        size = settings.SEND_BATCH_SIZE
        for start in range(0, len(queued), size):
            batch = queued[start : start + size]
            if send_here and start == 0:
                transaction.on_commit(lambda batch=batch: _send_here(send_messages, batch))
            else:
                transaction.on_commit(lambda batch=batch: send_later(batch))

    def send_email(self, context: StepContext, template_id: int) -> str:
        customer = context.customer
        if not customer.get("email"):
            return "not sent: the customer has no address"
        # One INSERT that a second run of the same step turns into nothing: the unique (enrollment, step) decides.
        Message.objects.bulk_create(
            [
                Message(
                    enrollment=context.enrollment,
                    step=context.step,
                    kind=MessageKind.MARKETING,
                    customer_id=customer["pk"],
                    template_id=template_id,
                    to_email=customer["email"],
                    next_attempt_at=context.now,
                    created_at=context.now,
                )
            ],
            ignore_conflicts=True,
        )
        pk, status, created_at = (
            Message.objects.filter(enrollment=context.enrollment, step=context.step)
            .values_list("pk", "status", "created_at")
            .get()
        )
        if created_at != context.now or status != MessageStatus.QUEUED or pk in self.queued:
            return f"message {pk} was already decided ({status})"
        self.queued.append(pk)
        return f"queued message {pk}"

    def call_webhook(self, context: StepContext, url: str, body: dict) -> tuple[bool, str]:
        payload = json.dumps(body, sort_keys=True, default=str).encode()
        signature = hmac.new(settings.WEBHOOK_SIGNING_KEY.encode(), payload, hashlib.sha256).hexdigest()
        request = urllib.request.Request(
            url,
            data=payload,
            method="POST",
            headers={"Content-Type": "application/json", "X-Kairos-Signature": f"sha256={signature}"},
        )
        try:
            with urllib.request.urlopen(request, timeout=settings.WEBHOOK_TIMEOUT_S) as response:  # noqa: S310 - https only, checked at save
                return 200 <= response.status < 300, f"HTTP {response.status}"
        except urllib.error.HTTPError as error:
            return False, f"HTTP {error.code}"
        except (urllib.error.URLError, TimeoutError, OSError) as error:
            return False, str(getattr(error, "reason", error))

    def update_customer(self, context: StepContext, field_name: str, value: Any) -> None:
        customer = Customer.objects.select_for_update().get(pk=context.customer["pk"])
        if field_name.startswith("attributes."):
            key = field_name.removeprefix("attributes.")
            if value is None:
                customer.attributes.pop(key, None)
            else:
                customer.attributes[key] = value
            customer.save(update_fields=["attributes", "updated_at"])
        else:
            setattr(customer, field_name, value)
            customer.save(update_fields=[field_name, "updated_at"])

    def send_reply(self, context: StepContext, template_id: int, message_id: int) -> str:
        reply, outcome = conversation_actions.queue_reply(
            message_id, template_id, context.now, automatic=True, enrollment=context.enrollment, step=context.step
        )
        if reply is not None and outcome.startswith("queued"):
            self.queued.append(reply.pk)
        return outcome

    def hold_promotions(self, context: StepContext, days: int, message_id: int | None) -> str:
        reason = f"campaign {context.campaign.name}"
        return conversation_actions.hold_promotions(message_id, context.customer["pk"], days, context.now, reason)

    def flag_message(self, context: StepContext, message_id: int, reason: str) -> str:
        return conversation_actions.flag_for_person(message_id, reason, context.now)

    def suppress_sender(self, context: StepContext, message_id: int) -> str:
        return conversation_actions.suppress_sender(message_id, context.now)

    def change_membership(self, context: StepContext, segment_id: int, *, add: bool) -> None:
        if add:
            SegmentMembership.objects.get_or_create(
                segment_id=segment_id, customer_id=context.customer["pk"], defaults={"entered_at": context.now}
            )
        else:
            SegmentMembership.objects.filter(segment_id=segment_id, customer_id=context.customer["pk"]).delete()
