"""Send-time optimisation end to end: engagement patterns built in, learned, and sent at in each customer's zone."""

from datetime import UTC, datetime, timedelta
from io import StringIO
from zoneinfo import ZoneInfo

import pytest
from django.core.management import call_command
from django.utils import timezone

from campaigns.delivery import dispatch_due_messages, queue_broadcast
from campaigns.engine import enroll_by_hand, launch, tick
from campaigns.models import Broadcast, Campaign, Enrollment, Message, MessageStatus, Step, StepVisit
from marketing.models import Event, Segment, SegmentKind, SegmentMembership
from ml import send_time_registry
from ml.models import SEND_TIMES, ModelStatus, ModelVersion, SendTime
from tests.factories import CustomerFactory

AS_OF = datetime(2026, 3, 1, tzinfo=UTC)
NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)  # a Monday: 11:00 in Berlin, 05:00 in New York, 19:00 in Tokyo
TUESDAY = 1


class Clock:
    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock(monkeypatch) -> Clock:
    clock = Clock(NOW)
    monkeypatch.setattr(timezone, "now", clock)
    return clock


def opens(customer, zone: str, local_times: list[datetime], name: str = "email_opened") -> None:
    Event.objects.bulk_create(
        Event(
            external_id=f"{name}-{customer.pk}-{number}",
            customer=customer,
            name=name,
            occurred_at=moment.replace(tzinfo=ZoneInfo(zone)).astimezone(UTC),
        )
        for number, moment in enumerate(local_times)
    )


def days_back(days: int, hour: int, minute: int = 20, weekday: int | None = None) -> list[datetime]:
    """Local moments at hour:minute on each of the `days` days before AS_OF (only on `weekday` if given)."""
    start = AS_OF.replace(tzinfo=None)
    moments = [start - timedelta(days=day) + timedelta(hours=hour, minutes=minute) for day in range(1, days + 1)]
    return [moment for moment in moments if weekday is None or moment.weekday() == weekday]


@pytest.fixture
def patterns(db, monkeypatch):
    """Sixty readers at 10:00 local; an early Tuesday reader in Berlin, an evening reader in New York, a thin
    noon reader in Tokyo; machine opens at 03:00 that must not count."""
    # One shrinkage, so that the thin reader's outcome is the one this test states.
    monkeypatch.setattr(send_time_registry, "PRIOR_STRENGTHS", (5.0,))
    monkeypatch.setattr(send_time_registry, "WEEKLY_MINIMUMS", (10,))
    for _ in range(60):
        reader = CustomerFactory(timezone="Europe/London")
        opens(reader, "Europe/London", days_back(120, 10)[::6])
    berlin = CustomerFactory(timezone="Europe/Berlin")
    opens(berlin, "Europe/Berlin", days_back(300, 8, weekday=TUESDAY))
    opens(berlin, "Europe/Berlin", days_back(300, 3, minute=5)[::2], name="email_machine_opened")
    new_york = CustomerFactory(timezone="America/New_York")
    opens(new_york, "America/New_York", days_back(200, 20, minute=30)[::3])
    tokyo = CustomerFactory(timezone="Asia/Tokyo")
    opens(tokyo, "Asia/Tokyo", days_back(90, 12)[::15])
    return berlin, new_york, tokyo


def test_the_learned_hours_match_the_built_in_patterns(patterns):
    berlin, new_york, tokyo = patterns

    output = StringIO()
    call_command("train_send_times", "--as-of", AS_OF.isoformat(), "--activate", stdout=output)

    version = ModelVersion.objects.get(task=SEND_TIMES)
    assert version.status == ModelStatus.ACTIVE
    assert version.metrics["model"] > version.metrics["shop_wide"]
    hours = {row.customer_id: row for row in SendTime.objects.filter(model_version=version)}
    assert (hours[berlin.pk].weekly, hours[berlin.pk].hours[0]) == (True, TUESDAY * 24 + 8)
    assert hours[berlin.pk].engagements == len(days_back(300, 8, weekday=TUESDAY))  # machine opens left out
    assert hours[new_york.pk].weekly is True
    assert {hour % 24 for hour in hours[new_york.pk].hours[:7]} == {20}
    assert (hours[tokyo.pk].weekly, hours[tokyo.pk].hours[0]) == (False, 12)
    assert version.params["shop_hours"][0] % 24 == 10
    assert "Kairos send time" in output.getvalue()


# Monday 10:00 UTC: Berlin's best is Tuesday 08:00 CET (07:00 UTC); New York's 20:00 EST tonight (01:00 UTC);
# Tokyo's 12:00 JST tomorrow (03:00 UTC). All fall within 24 hours and outside quiet hours.
EXPECTED = {
    "berlin": datetime(2026, 3, 3, 7, 0, tzinfo=UTC),
    "new_york": datetime(2026, 3, 3, 1, 0, tzinfo=UTC),
    "tokyo": datetime(2026, 3, 3, 3, 0, tzinfo=UTC),
}


def test_a_send_step_at_the_best_time_delivers_at_those_hours_in_each_zone(
    patterns, welcome_template, clock, run, smtp_settings
):
    # given
    call_command("train_send_times", "--as-of", AS_OF.isoformat(), "--activate", stdout=StringIO())
    people = dict(zip(("berlin", "new_york", "tokyo"), patterns, strict=True))
    campaign = Campaign.objects.create(name="Best time", trigger_type="manual", trigger_config={}, quiet_hours=True)
    Step.objects.create(
        campaign=campaign, position=0, key="send", type="send_email",
        config={"template": welcome_template.pk, "send_time": "best"},
    )  # fmt: skip
    launch(campaign)

    # when: enrolled on Monday morning
    run(enroll_by_hand, campaign, [person.pk for person in people.values()])

    # then: each waits for their own moment, and nothing is sent before it
    waits = {name: Enrollment.objects.get(customer=person).next_run_at for name, person in people.items()}
    assert waits == EXPECTED
    assert smtp_settings.messages == []
    for name in sorted(EXPECTED, key=EXPECTED.get):
        clock.now = EXPECTED[name] - timedelta(minutes=1)
        run(tick)
        assert Message.objects.filter(customer=people[name]).count() == 0
        clock.now = EXPECTED[name]
        run(tick)
        sent = Message.objects.get(customer=people[name])
        assert (sent.status, sent.created_at) == (MessageStatus.SENT, EXPECTED[name])
    local_hours = {
        name: Message.objects.get(customer=person).created_at.astimezone(ZoneInfo(person.timezone)).hour
        for name, person in people.items()
    }
    assert local_hours == {"berlin": 8, "new_york": 20, "tokyo": 12}
    assert sorted(address for m in smtp_settings.messages for address in m.rcpt_tos) == sorted(
        person.email for person in people.values()
    )
    visit = StepVisit.objects.filter(enrollment__customer=people["berlin"]).order_by("pk").first()
    assert visit.outcome == "waiting for the customer's best time, 2026-03-03 07:00 UTC"


def test_the_best_time_never_falls_in_quiet_hours(patterns, welcome_template, clock, run, settings):
    # given: quiet hours from 07:00 to 09:00 cover Berlin's best hour
    settings.QUIET_HOURS_START_HOUR, settings.QUIET_HOURS_END_HOUR = 7, 9
    call_command("train_send_times", "--as-of", AS_OF.isoformat(), "--activate", stdout=StringIO())
    berlin = patterns[0]
    campaign = Campaign.objects.create(name="Quiet best", trigger_type="manual", trigger_config={}, quiet_hours=True)
    Step.objects.create(
        campaign=campaign, position=0, key="send", type="send_email",
        config={"template": welcome_template.pk, "send_time": "best"},
    )  # fmt: skip
    launch(campaign)

    run(enroll_by_hand, campaign, [berlin.pk])

    moment = Enrollment.objects.get().next_run_at.astimezone(ZoneInfo("Europe/Berlin"))
    assert not 7 <= moment.hour < 9
    assert Enrollment.objects.get().next_run_at <= NOW + timedelta(hours=24)


def test_a_broadcast_at_the_best_time_holds_each_message_until_its_customers_hour(
    patterns, welcome_template, clock, run, smtp_settings
):
    call_command("train_send_times", "--as-of", AS_OF.isoformat(), "--activate", stdout=StringIO())
    people = dict(zip(("berlin", "new_york", "tokyo"), patterns, strict=True))
    segment = Segment.objects.create(name="Three readers", kind=SegmentKind.STATIC)
    SegmentMembership.objects.bulk_create(
        SegmentMembership(segment=segment, customer=person, entered_at=NOW) for person in people.values()
    )
    broadcast = Broadcast.objects.create(
        name="Best-time news", template=welcome_template, segment=segment, send_at_best_time=True
    )

    run(queue_broadcast, broadcast.pk)

    scheduled = {name: Message.objects.get(customer=person).next_attempt_at for name, person in people.items()}
    assert scheduled == EXPECTED
    assert smtp_settings.messages == []
    clock.now = EXPECTED["new_york"]
    run(dispatch_due_messages)
    assert [m.rcpt_tos for m in smtp_settings.messages] == [[people["new_york"].email]]
