"""Simulate a campaign over the last N days: replay stored events and segment changes without sending anything.

The replay runs the real engine (`enroll`, `advance`, the same steps) on a simulated clock,
inside a transaction that is always rolled back: the enrollments and step visits it writes are
counted and then vanish, and the `on_commit` callbacks that would hand enrollments to workers
are discarded with it. Steps act through `SimulatedEffects`, which counts what would happen
instead of doing it. Event triggers replay the stored events one moment at a time; polled
triggers are asked once per simulated day, as if the beat tick ran daily.
"""

from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.models import Count, Max
from django.utils import timezone

from campaigns.engine import CampaignError, advance, check_campaign, enroll
from campaigns.models import Campaign, CampaignStatus, Enrollment, EnrollmentState, StepVisit
from campaigns.steps import StepContext
from campaigns.triggers import Candidate, StoredEvent, TriggerType, triggers
from marketing.models import Event

SIMULATION_MAX_DAYS = 365
# Polled triggers are asked for one slice of the window at a time, like a (daily) beat tick.
POLL_SLICE = timedelta(days=1)
EVENT_CHUNK_ROWS = 2_000


@dataclass(frozen=True)
class SimulatedStep:
    step_id: int
    position: int
    key: str
    type: str
    reached: int  # distinct enrollments that reached the step
    visits: int  # runs of the step; a wait runs twice (waiting, then waited)
    would_send: int  # e-mails a send step would have queued
    would_act: int  # webhooks called, customers updated, segment memberships changed


@dataclass(frozen=True)
class SimulationReport:
    campaign_id: int
    since: datetime
    until: datetime
    fired: int  # times the trigger named a customer, before the audience and re-entry rules
    entered: int  # enrollments started, holdout included
    held_out: int
    completed: int
    exited: int
    failed: int
    waiting: int  # still on a step at the end of the window
    steps: tuple[SimulatedStep, ...]
    notes: tuple[str, ...]

    @property
    def would_send(self) -> int:
        return sum(step.would_send for step in self.steps)


class SimulatedEffects:
    """The Effects of a simulation: count what steps would do to the world, and do none of it."""

    def __init__(self) -> None:
        self.sends: Counter[int] = Counter()  # by step id
        self.actions: Counter[int] = Counter()

    def send_email(self, context: StepContext, template_id: int) -> str:
        if not context.customer.get("email"):
            return "not sent: the customer has no address"
        self.sends[context.step.pk] += 1
        return "would send"

    def call_webhook(self, context: StepContext, url: str, body: dict) -> tuple[bool, str]:
        self.actions[context.step.pk] += 1
        return True, "would call"

    def update_customer(self, context: StepContext, field: str, value: Any) -> None:
        self.actions[context.step.pk] += 1

    def change_membership(self, context: StepContext, segment_id: int, *, add: bool) -> None:
        self.actions[context.step.pk] += 1

    def send_reply(self, context: StepContext, template_id: int, message_id: int) -> str:
        self.sends[context.step.pk] += 1
        return "would reply"

    def hold_promotions(self, context: StepContext, days: int, message_id: int | None) -> str:
        self.actions[context.step.pk] += 1
        return f"would hold promotional e-mail for {days} days"

    def flag_message(self, context: StepContext, message_id: int, reason: str) -> str:
        self.actions[context.step.pk] += 1
        return "would flag for a person"

    def suppress_sender(self, context: StepContext, message_id: int) -> str:
        self.actions[context.step.pk] += 1
        return "would suppress"


class _RolledBack(Exception):
    """Carries the report out of the transaction it rolls back."""

    def __init__(self, report: SimulationReport) -> None:
        super().__init__("simulation rolled back")
        self.report = report


def simulate(campaign: Campaign, days: int, now: datetime | None = None) -> SimulationReport:
    """Replay the last `days` days through the campaign without sending; report entries and each step's reach.

    Raise CampaignError when the campaign cannot run (as `launch` would), is active, or has no trigger to replay.
    """
    now = now or timezone.now()
    if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= SIMULATION_MAX_DAYS:
        raise CampaignError("days", f"must be a whole number from 1 to {SIMULATION_MAX_DAYS}")
    try:
        with transaction.atomic():
            raise _RolledBack(_replay(campaign.pk, now - timedelta(days=days), now))
    except _RolledBack as rolled_back:
        return rolled_back.report


def _replay(campaign_id: int, since: datetime, until: datetime) -> SimulationReport:
    draft = Campaign.objects.select_for_update().get(pk=campaign_id)
    if draft.status == CampaignStatus.ACTIVE:
        raise CampaignError("status", "the campaign is active and enrolls for real; pause it or simulate a copy")
    check_campaign(draft)
    trigger = triggers.get(draft.trigger_type)
    if not trigger.polled and type(trigger).matches_event is TriggerType.matches_event:
        raise CampaignError(
            "trigger_type", f"{draft.trigger_type!r} starts nobody by itself: there is nothing to replay"
        )
    draft.status = CampaignStatus.ACTIVE
    draft.save(update_fields=["status", "trigger_config"])
    # Only this replay's enrollments are advanced and counted, never the campaign's earlier ones.
    baseline = Enrollment.objects.filter(campaign=draft).aggregate(last=Max("pk"))["last"] or 0
    replayed = Enrollment.objects.filter(campaign=draft, pk__gt=baseline)

    # Read in full before the walk: the replay writes between occurrences, and no cursor should stay open meanwhile.
    timeline = list(_timeline(draft, trigger, since, until))
    effects = SimulatedEffects()
    fired = 0
    for at, candidates in timeline:
        _advance_due(replayed, at, effects)
        fired += len(candidates)
        enroll(draft, candidates, now=at)
    _advance_due(replayed, until, effects)
    return _report(draft, replayed, effects, since, until, fired)


def _timeline(campaign: Campaign, trigger: TriggerType, since: datetime, until: datetime):
    """Yield (time, candidates) in time order: what the trigger would have named, and when."""
    config = campaign.trigger_config
    if trigger.polled:
        start = since
        while start < until:
            end = min(start + POLL_SLICE, until)
            candidates = list(trigger.candidates(config, start, end))
            if candidates:
                yield end, candidates
            start = end
        return
    events = Event.objects.filter(occurred_at__gt=since, occurred_at__lte=until)
    if campaign.trigger_type == "event":
        events = events.filter(name=config["event"])  # the built-in trigger matches on the name first
    moment, batch = None, []
    for row in (
        events.order_by("occurred_at", "pk")
        .values("pk", "customer_id", "name", "occurred_at", "properties")
        .iterator(chunk_size=EVENT_CHUNK_ROWS)
    ):
        event = StoredEvent(row["pk"], row["customer_id"], row["name"], row["occurred_at"], row["properties"] or {})
        if not trigger.matches_event(config, event):
            continue
        if event.occurred_at != moment and batch:
            yield moment, batch
            batch = []
        moment = event.occurred_at
        batch.append(
            Candidate(event.customer_id, {"event": event.name, "event_id": event.id, "properties": event.properties})
        )
    if batch:
        yield moment, batch


def _advance_due(replayed, until: datetime, effects: SimulatedEffects) -> None:
    """Advance every replayed enrollment due by `until`, each at the moment it falls due, earliest first."""
    last = None
    while True:
        due = replayed.due(until)
        moment = due.order_by("next_run_at").values_list("next_run_at", flat=True).first()
        if moment is None:
            return
        ids = list(due.filter(next_run_at=moment).order_by("pk").values_list("pk", flat=True))
        if (moment, ids) == last:
            return  # a step asked to run again at the same moment: stop rather than spin
        last = (moment, ids)
        advance(ids, now=moment, effects=effects)


def _report(
    campaign: Campaign, replayed, effects: SimulatedEffects, since: datetime, until: datetime, fired: int
) -> SimulationReport:
    states = Counter(dict(replayed.order_by().values_list("state").annotate(count=Count("pk"))))
    visits = {
        row["step_id"]: row
        for row in StepVisit.objects.filter(enrollment__in=replayed)
        .order_by()
        .values("step_id")
        .annotate(reached=Count("enrollment_id", distinct=True), visits=Count("pk"))
    }
    simulated_steps = tuple(
        SimulatedStep(
            step_id=step.pk,
            position=step.position,
            key=step.key,
            type=step.type,
            reached=visits.get(step.pk, {}).get("reached", 0),
            visits=visits.get(step.pk, {}).get("visits", 0),
            would_send=effects.sends[step.pk],
            would_act=effects.actions[step.pk],
        )
        for step in campaign.steps.order_by("position")
    )
    return SimulationReport(
        campaign_id=campaign.pk,
        since=since,
        until=until,
        fired=fired,
        entered=sum(states.values()),
        held_out=states[EnrollmentState.HOLDOUT],
        completed=states[EnrollmentState.COMPLETED],
        exited=states[EnrollmentState.EXITED],
        failed=states[EnrollmentState.FAILED],
        waiting=states[EnrollmentState.ACTIVE],
        steps=simulated_steps,
        notes=_notes(campaign, triggers.get(campaign.trigger_type).polled),
    )


def _notes(campaign: Campaign, polled: bool) -> tuple[str, ...]:
    notes = [
        "Nothing was sent or kept: the replay ran in a transaction that was rolled back.",
        "Frequency cap: the simulation writes no messages, so its own would-be sends never count towards the cap "
        "(messages really sent at the time do); the real campaign may send fewer.",
        "Consent and the suppression list are checked at delivery: would-send counts include messages delivery "
        "would suppress.",
        "Webhooks count as answered; customer updates and segment changes are counted, not applied, so later "
        "branches see the data as stored.",
    ]
    if campaign.audience_id:
        notes.append("The audience is checked against its members today, not as they were at the time.")
    if polled:
        notes.append(
            "The trigger was asked once per simulated day: customers enter at the end of the day they qualified."
        )
    if campaign.holdout_percent:
        notes.append(f"{campaign.holdout_percent} % are held out, the same customers as for real.")
    return tuple(notes)
