"""Set up an abandoned-cart campaign on the current shop, simulate it, then feed it live events through the API."""

import json
import time
from datetime import timedelta

from django.conf import settings
from django.core.management.base import BaseCommand
from django.test import Client
from django.utils import timezone

from campaigns.engine import CampaignError, launch, poll_triggers
from campaigns.models import Campaign, CampaignStatus, Enrollment, EnrollmentState, Step
from campaigns.results import campaign_results
from campaigns.simulation import simulate
from campaigns.starters import install_starters
from marketing.models import ApiKey, Customer

CAMPAIGN = "Abandoned cart"
TEMPLATE = "Picked for you"
# Cart event, wait an hour, branch on "ordered since", remind with recommendations, wait a day, remind again.
STEPS = [
    ("wait-hour", "wait", {"hours": 1}),
    ("ordered-yet", "branch", {"ordered_since_entry": True, "then": "done", "else": "reminder"}),
    ("reminder", "send_email", {"template": TEMPLATE}),
    ("wait-day", "wait", {"days": 1}),
    ("ordered-now", "branch", {"ordered_since_entry": True, "then": "done", "else": "second-reminder"}),
    ("second-reminder", "send_email", {"template": TEMPLATE}),
    ("done", "exit", {}),
]
SCHEDULED = "Spring offer (everyone)"
SIMULATED_DAYS = 30
LIVE_EVENTS = 5


class Command(BaseCommand):
    help = "Create, simulate and launch an abandoned-cart campaign, then post cart events through the events API."

    def handle(self, *args, **options) -> None:
        install_starters()
        campaign = self.campaign()
        # Fresh history for the simulation: the demo's events are the shop's real past.
        report = simulate(campaign, SIMULATED_DAYS)
        self.stdout.write(
            f"simulated over the last {SIMULATED_DAYS} days (nothing sent): the trigger fired {report.fired:,} times, "
            f"{report.entered:,} entered, {report.would_send:,} e-mails would have gone out"
        )
        for step in report.steps:
            self.stdout.write(f"  {step.position}. {step.key} ({step.type}): reached by {step.reached:,}")
        try:
            launch(campaign)
        except CampaignError as error:
            self.stdout.write(f"not launched: {error}")
            return
        self.stdout.write(f"launched {campaign.name!r}: {len(STEPS)} steps, quiet hours in each customer's zone")
        self.post_events()
        results = campaign_results(campaign)
        self.stdout.write(f"results so far: {results.entered:,} entered, {results.sent:,} sent (the first reminder waits an hour)")
        self.scheduled()

    def scheduled(self) -> None:
        """Enroll a whole audience at once, set-based, as a scheduled campaign's first tick does."""
        if Campaign.objects.filter(name=SCHEDULED).exists():
            return
        now = timezone.now()
        campaign = Campaign.objects.create(
            name=SCHEDULED, trigger_type="schedule", trigger_config={"at": now.isoformat()}, holdout_percent=10,
            description="Made by the demo: everyone, at once, with a tenth held out.",
        )  # fmt: skip
        Step.objects.create(
            campaign=campaign, position=0, key="tag", type="update_attribute",
            config={"field": "attributes.spring_offer", "value": "2026"},
        )  # fmt: skip
        launch(campaign, now)
        started = time.perf_counter()
        poll_triggers(now)
        took = time.perf_counter() - started
        held = Enrollment.objects.filter(campaign=campaign, state=EnrollmentState.HOLDOUT).count()
        entered = Enrollment.objects.filter(campaign=campaign).count()
        self.stdout.write(
            f"{SCHEDULED!r} (schedule trigger): {entered:,} customers enrolled in one INSERT … SELECT in {took:.2f}s, "
            f"{held:,} held out; the next tick's dispatch runs their first steps in batches"
        )

    def campaign(self) -> Campaign:
        campaign = Campaign.objects.filter(name=CAMPAIGN).first()
        if campaign is not None:
            if campaign.status == CampaignStatus.ACTIVE:
                campaign.status = CampaignStatus.DRAFT  # simulate only drafts; relaunched below
                campaign.save(update_fields=["status"])
            return campaign
        campaign = Campaign.objects.create(
            name=CAMPAIGN, trigger_type="event", trigger_config={"event": "cart_added"}, goal_event="order_placed", goal_days=7, holdout_percent=10
        )
        for position, (key, type_, config) in enumerate(STEPS):
            Step.objects.create(campaign=campaign, position=position, key=key, type=type_, config=config)
        return campaign

    def post_events(self) -> None:
        """Post cart events for a few mailable customers, as a shop's tracker would, and show who entered."""
        _, raw_key = ApiKey.issue("demo tracker")
        customers = list(Customer.objects.mailable().order_by("?")[:LIVE_EVENTS].values_list("external_id", flat=True))
        now = timezone.now()
        batch = {
            "events": [
                {"id": f"demo-cart-{now:%Y%m%d%H%M%S}-{index}", "customer_id": external_id, "name": "cart_added",
                 "occurred_at": (now - timedelta(seconds=index)).isoformat(), "properties": {"source": "demo"}}
                for index, external_id in enumerate(customers)
            ]
            + [{"customer_id": "C-NONE", "name": "cart added", "occurred_at": now.isoformat()}]
        }  # fmt: skip
        before_pk = Enrollment.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
        client = Client(HTTP_HOST="127.0.0.1")
        response = client.post(
            "/api/v1/events", json.dumps(batch), content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {raw_key}"
        )
        body = response.json()
        self.stdout.write(
            f"POST /api/v1/events with {len(batch['events'])} events: {response.status_code}, "
            f"{body.get('stored', 0)} stored, {len(body.get('errors', []))} refused"
        )
        for error in body.get("errors", []):
            self.stdout.write(f"  event {error['index']}: {error['field']}: {error['error']}")
        new = Enrollment.objects.filter(pk__gt=before_pk, campaign__name=CAMPAIGN)
        waiting = new.filter(state=EnrollmentState.ACTIVE).count()
        held = new.filter(state=EnrollmentState.HOLDOUT).count()
        self.stdout.write(
            f"{new.count()} entered the campaign right after commit: {waiting} wait an hour for their reminder, "
            f"{held} held out (the 10% control group)"
        )
        if not settings.CELERY_TASK_ALWAYS_EAGER:
            self.stdout.write("(with a broker, workers enroll them: run `make run` to watch)")
