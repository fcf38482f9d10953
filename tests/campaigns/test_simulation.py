"""Simulation: stored events and segment changes replayed through a draft campaign, counted, and rolled back."""

from datetime import UTC, datetime, timedelta

import pytest

from campaigns.admission import is_holdout
from campaigns.engine import CampaignError
from campaigns.models import Campaign, CampaignStatus, Enrollment, Message, Step, StepVisit
from campaigns.simulation import SimulatedStep, simulate
from marketing.models import OrderStatus, Segment, SegmentChange, SegmentChangeKind, SegmentKind
from tests.factories import CustomerFactory, EventFactory, OrderFactory

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


def build(name: str, trigger_type: str, trigger_config: dict, step_list: list[tuple], **fields) -> Campaign:
    campaign = Campaign.objects.create(
        name=name, trigger_type=trigger_type, trigger_config=trigger_config, quiet_hours=False, **fields
    )
    for position, (key, type_, config) in enumerate(step_list, start=1):
        Step.objects.create(campaign=campaign, position=position, key=key, type=type_, config=config)
    return campaign


@pytest.fixture
def abandoned_cart(welcome_template):
    """cart_added → wait an hour → ordered since entering? exit : send a reminder → exit."""
    return build(
        "Abandoned cart",
        "event",
        {"event": "cart_added"},
        [
            ("pause", "wait", {"hours": 1}),
            ("check", "branch", {"ordered_since_entry": True, "then": "done", "else": "remind"}),
            ("remind", "send_email", {"template": welcome_template.name}),
            ("done", "exit", {}),
        ],
    )


def cart_added(customer, at: datetime) -> None:
    EventFactory(customer=customer, name="cart_added", occurred_at=at)


@pytest.fixture
def stored_carts():
    """Carts and orders of the last days; the comments give each customer's path."""
    # No order: reminded.
    cart_added(CustomerFactory(), NOW - timedelta(days=2))
    # Ordered half an hour after the cart: exits at the branch.
    ordered_quickly = CustomerFactory()
    cart_added(ordered_quickly, NOW - timedelta(days=3))
    OrderFactory(customer=ordered_quickly, placed_at=NOW - timedelta(days=3) + timedelta(minutes=30))
    # Ordered two hours later, after the branch looked: reminded.
    ordered_late = CustomerFactory()
    cart_added(ordered_late, NOW - timedelta(days=1))
    OrderFactory(customer=ordered_late, placed_at=NOW - timedelta(days=1) + timedelta(hours=2))
    # A cancelled order does not count: reminded.
    cancelled = CustomerFactory()
    cart_added(cancelled, NOW - timedelta(days=4, hours=6))
    OrderFactory(
        customer=cancelled, placed_at=NOW - timedelta(days=4, hours=5, minutes=30), status=OrderStatus.CANCELLED
    )
    # Before the window: never enters.
    cart_added(CustomerFactory(), NOW - timedelta(days=8))
    # Two carts: enters once (re-entry "once"), reminded once.
    twice = CustomerFactory()
    cart_added(twice, NOW - timedelta(days=5))
    cart_added(twice, NOW - timedelta(days=4))
    # Half an hour ago: still waiting when the window ends.
    cart_added(CustomerFactory(), NOW - timedelta(minutes=30))
    # Another event: never enters.
    EventFactory(customer=CustomerFactory(), name="product_viewed", occurred_at=NOW - timedelta(days=2))
    # No address: reaches the reminder, which sends nothing.
    cart_added(CustomerFactory(email=""), NOW - timedelta(days=6))


def test_abandoned_cart_simulation_reports_each_step(abandoned_cart, stored_carts):
    report = simulate(abandoned_cart, days=7, now=NOW)

    ids = dict(abandoned_cart.steps.values_list("key", "pk"))
    assert (report.since, report.until) == (NOW - timedelta(days=7), NOW)
    assert (report.fired, report.entered, report.held_out) == (8, 7, 0)
    assert (report.completed, report.exited, report.failed, report.waiting) == (0, 6, 0, 1)
    assert report.steps == (
        SimulatedStep(ids["pause"], 1, "pause", "wait", reached=7, visits=13, would_send=0, would_act=0),
        SimulatedStep(ids["check"], 2, "check", "branch", reached=6, visits=6, would_send=0, would_act=0),
        SimulatedStep(ids["remind"], 3, "remind", "send_email", reached=5, visits=5, would_send=4, would_act=0),
        SimulatedStep(ids["done"], 4, "done", "exit", reached=6, visits=6, would_send=0, would_act=0),
    )
    assert report.would_send == 4


def test_simulation_leaves_nothing_behind_and_queues_nothing(
    abandoned_cart, stored_carts, django_capture_on_commit_callbacks
):
    before = (Enrollment.objects.count(), StepVisit.objects.count(), Message.objects.count())

    with django_capture_on_commit_callbacks() as callbacks:
        report = simulate(abandoned_cart, days=7, now=NOW)

    assert report.entered == 7
    assert callbacks == []
    assert (Enrollment.objects.count(), StepVisit.objects.count(), Message.objects.count()) == before == (0, 0, 0)
    abandoned_cart.refresh_from_db()
    assert abandoned_cart.status == CampaignStatus.DRAFT
    assert abandoned_cart.steps.get(key="remind").config == {"template": "Welcome"}


@pytest.mark.django_db(transaction=True)
def test_simulation_in_its_own_transaction_commits_nothing(monkeypatch, welcome_template):
    handed_over = []
    monkeypatch.setattr("campaigns.engine._advance_later", handed_over.append)
    campaign = build(
        "Abandoned cart", "event", {"event": "cart_added"}, [("hello", "send_email", {"template": welcome_template.pk})]
    )
    cart_added(CustomerFactory(), NOW - timedelta(hours=3))

    report = simulate(campaign, days=1, now=NOW)

    assert (report.entered, report.completed, report.would_send) == (1, 1, 1)
    assert handed_over == []
    assert (Enrollment.objects.count(), StepVisit.objects.count(), Message.objects.count()) == (0, 0, 0)
    assert Campaign.objects.get(pk=campaign.pk).status == CampaignStatus.DRAFT


def test_simulation_reports_what_it_cannot_reproduce(abandoned_cart):
    report = simulate(abandoned_cart, days=7, now=NOW)

    assert report.entered == 0
    assert report.notes == (
        "Nothing was sent or kept: the replay ran in a transaction that was rolled back.",
        "Frequency cap: the simulation writes no messages, so its own would-be sends never count towards the cap "
        "(messages really sent at the time do); the real campaign may send fewer.",
        "Consent and the suppression list are checked at delivery: would-send counts include messages delivery "
        "would suppress.",
        "Webhooks count as answered; customer updates and segment changes are counted, not applied, so later "
        "branches see the data as stored.",
    )


def test_a_shorter_window_replays_fewer_events(abandoned_cart, stored_carts):
    report = simulate(abandoned_cart, days=2, now=NOW)

    # The carts of a day and of half an hour ago; the one of exactly two days ago is outside (now - 2 days, now].
    assert (report.fired, report.entered, report.exited, report.waiting) == (2, 2, 1, 1)
    assert [(step.key, step.reached, step.would_send) for step in report.steps] == [
        ("pause", 2, 0),
        ("check", 1, 0),
        ("remind", 1, 1),
        ("done", 1, 0),
    ]


def test_the_holdout_is_the_same_customers_as_for_real(welcome_template):
    campaign = build(
        "Held out",
        "event",
        {"event": "cart_added"},
        [("hello", "send_email", {"template": welcome_template.pk})],
        holdout_percent=50,
    )
    customers = [CustomerFactory() for _ in range(12)]
    for index, customer in enumerate(customers):
        cart_added(customer, NOW - timedelta(hours=index + 1))
    held_out = sum(is_holdout(campaign, customer.pk) for customer in customers)
    assert 0 < held_out < 12

    report = simulate(campaign, days=1, now=NOW)

    assert (report.entered, report.held_out, report.completed) == (12, held_out, 12 - held_out)
    assert [(step.reached, step.would_send) for step in report.steps] == [(12 - held_out, 12 - held_out)]
    assert report.notes[-1] == "50 % are held out, the same customers as for real."


def test_a_segment_trigger_is_polled_once_per_simulated_day(welcome_template):
    segment = Segment.objects.create(name="Lapsing buyers", kind=SegmentKind.DYNAMIC)
    campaign = build(
        "Win-back",
        "segment_entered",
        {"segment": "Lapsing buyers"},
        [
            ("hello", "send_email", {"template": welcome_template.pk}),
            ("flag", "update_attribute", {"field": "attributes.winback", "value": "sent"}),
        ],
    )
    entered_recently, entered_long_ago, left, entered_an_hour_ago = (CustomerFactory() for _ in range(4))
    for customer, kind, at in [
        (entered_recently, SegmentChangeKind.ENTERED, NOW - timedelta(days=3)),
        (entered_long_ago, SegmentChangeKind.ENTERED, NOW - timedelta(days=10)),
        (left, SegmentChangeKind.EXITED, NOW - timedelta(days=2)),
        (entered_an_hour_ago, SegmentChangeKind.ENTERED, NOW - timedelta(hours=1)),
    ]:
        SegmentChange.objects.create(segment=segment, customer=customer, kind=kind, version=1, at=at)

    report = simulate(campaign, days=7, now=NOW)

    assert (report.fired, report.entered, report.completed) == (2, 2, 2)
    assert [(step.key, step.reached, step.would_send, step.would_act) for step in report.steps] == [
        ("hello", 2, 2, 0),
        ("flag", 2, 0, 2),
    ]
    assert report.notes[-1] == (
        "The trigger was asked once per simulated day: customers enter at the end of the day they qualified."
    )
    entered_recently.refresh_from_db()
    assert entered_recently.attributes == {}


def test_a_campaign_that_cannot_run_is_refused_with_its_field(welcome_template):
    campaign = build("Empty", "event", {"event": "cart_added"}, [])

    with pytest.raises(CampaignError) as refused:
        simulate(campaign, days=7, now=NOW)

    assert (refused.value.field, refused.value.message) == ("steps", "a campaign needs at least one step")


def test_an_active_campaign_is_not_simulated(abandoned_cart, stored_carts):
    Campaign.objects.filter(pk=abandoned_cart.pk).update(status=CampaignStatus.ACTIVE)

    with pytest.raises(CampaignError) as refused:
        simulate(abandoned_cart, days=7, now=NOW)

    assert refused.value.field == "status"
    assert Enrollment.objects.count() == 0


def test_a_manual_trigger_has_nothing_to_replay(welcome_template):
    campaign = build("By hand", "manual", {}, [("hello", "send_email", {"template": welcome_template.pk})])

    with pytest.raises(CampaignError) as refused:
        simulate(campaign, days=7, now=NOW)

    assert refused.value.field == "trigger_type"


@pytest.mark.parametrize("days", [0, 366, True])
def test_the_window_is_between_one_day_and_a_year(abandoned_cart, days):
    with pytest.raises(CampaignError) as refused:
        simulate(abandoned_cart, days=days, now=NOW)

    assert (refused.value.field, refused.value.message) == ("days", "must be a whole number from 1 to 365")
