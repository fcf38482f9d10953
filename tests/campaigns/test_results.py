"""Campaign results: counts per step and per campaign from hand-built enrollments, and uplift with Newcombe's interval."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from campaigns.models import Campaign, Enrollment, EnrollmentState, Message, MessageStatus, Step, StepVisit
from campaigns.results import (
    CampaignResults,
    StepResults,
    campaign_results,
    measure_uplift,
    newcombe_interval,
    results_table_html,
    wilson_interval,
)
from marketing.models import OrderStatus
from tests.factories import CustomerFactory, EventFactory, OrderFactory

ENTERED = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
NOW = ENTERED + timedelta(days=30)


def make_campaign(template, **fields) -> Campaign:
    """A three-step campaign: welcome e-mail, wait two days, reminder e-mail."""
    campaign = Campaign.objects.create(
        name=fields.pop("name", "Win-back"),
        trigger_type="event",
        trigger_config={"event": "cart_added", "properties": {}},
        **fields,
    )
    for position, (key, type_, config) in enumerate(
        [
            ("welcome", "send_email", {"template": template.pk}),
            ("pause", "wait", {"days": 2}),
            ("reminder", "send_email", {"template": template.pk}),
        ],
        start=1,
    ):
        Step.objects.create(campaign=campaign, position=position, key=key, type=type_, config=config)
    return campaign


def enter(campaign, customer, state=EnrollmentState.EXITED, visits=(), at=ENTERED) -> Enrollment:
    """An enrollment that entered at `at` and visited the named steps (a key twice for a wait that waited)."""
    enrollment = Enrollment.objects.create(
        campaign=campaign, customer=customer, state=state, entered_at=at, next_run_at=at, step=None
    )
    for offset, key in enumerate(visits):
        StepVisit.objects.create(
            enrollment=enrollment, step=campaign.steps.get(key=key), at=at + timedelta(minutes=offset), outcome=key
        )
    return enrollment


def message(enrollment, key, status, template, **fields) -> Message:
    return Message.objects.create(
        enrollment=enrollment,
        step=enrollment.campaign.steps.get(key=key),
        customer=enrollment.customer,
        template=template,
        to_email=enrollment.customer.email,
        status=status,
        **fields,
    )


@pytest.fixture
def campaign_with_history(welcome_template):
    """Four treated enrollments with messages and orders, three held out; see the expected counts in the tests."""
    campaign = make_campaign(welcome_template, holdout_percent=30)
    c1, c2, c3, c4, c5, c6, c7 = (CustomerFactory() for _ in range(7))
    opened = ENTERED + timedelta(hours=2)

    # Got both e-mails, opened and clicked the first, ordered on day 3: converted, 50.00.
    e1 = enter(campaign, c1, EnrollmentState.COMPLETED, ["welcome", "pause", "pause", "reminder"])
    message(e1, "welcome", MessageStatus.SENT, welcome_template, opened_at=opened, clicked_at=opened, open_count=1)
    message(e1, "reminder", MessageStatus.SENT, welcome_template, opened_at=opened + timedelta(days=2))
    OrderFactory(customer=c1, placed_at=ENTERED + timedelta(days=3), total=Decimal("50.00"))

    # Only machine opens; a cancelled order in the window, a real one after it: not converted.
    e2 = enter(campaign, c2, EnrollmentState.EXITED, ["welcome", "pause", "pause"])
    message(e2, "welcome", MessageStatus.SENT, welcome_template, machine_open_count=2)
    OrderFactory(
        customer=c2, placed_at=ENTERED + timedelta(days=1), total=Decimal("20.00"), status=OrderStatus.CANCELLED
    )
    OrderFactory(customer=c2, placed_at=ENTERED + timedelta(days=8), total=Decimal("99.00"))

    # Suppressed; a refunded order in the window does not convert.
    e3 = enter(campaign, c3, EnrollmentState.EXITED, ["welcome"])
    message(e3, "welcome", MessageStatus.SUPPRESSED, welcome_template)
    OrderFactory(
        customer=c3, placed_at=ENTERED + timedelta(days=2), total=Decimal("70.00"), status=OrderStatus.REFUNDED
    )

    # Failed, then unknown; a pending order on day 2 and one exactly at the window's end: 40.00. One before entering.
    e4 = enter(campaign, c4, EnrollmentState.COMPLETED, ["welcome", "pause", "reminder"])
    message(e4, "welcome", MessageStatus.FAILED, welcome_template)
    message(e4, "reminder", MessageStatus.UNKNOWN, welcome_template)
    OrderFactory(customer=c4, placed_at=ENTERED - timedelta(hours=1), total=Decimal("500.00"))
    OrderFactory(customer=c4, placed_at=ENTERED + timedelta(days=2), total=Decimal("10.00"), status=OrderStatus.PENDING)
    OrderFactory(customer=c4, placed_at=ENTERED + timedelta(days=7), total=Decimal("30.00"))

    # Held out: one of three orders in the window.
    enter(campaign, c5, EnrollmentState.HOLDOUT)
    OrderFactory(customer=c5, placed_at=ENTERED + timedelta(days=4), total=Decimal("25.00"))
    enter(campaign, c6, EnrollmentState.HOLDOUT)
    enter(campaign, c7, EnrollmentState.HOLDOUT)
    return campaign


def step_ids(campaign) -> dict[str, int]:
    return dict(campaign.steps.values_list("key", "pk"))


def test_results_count_each_step_and_the_campaign(campaign_with_history):
    results = campaign_results(campaign_with_history, now=NOW)

    ids = step_ids(campaign_with_history)
    assert results.steps == (
        StepResults(
            step_id=ids["welcome"],
            position=1,
            key="welcome",
            type="send_email",
            entered=4,
            sent=2,
            suppressed=1,
            failed=1,
            unknown=0,
            opened=1,
            clicked=1,
            converted=2,
            revenue=Decimal("90.00"),
        ),
        StepResults(
            step_id=ids["pause"],
            position=2,
            key="pause",
            type="wait",
            entered=3,
            sent=0,
            suppressed=0,
            failed=0,
            unknown=0,
            opened=0,
            clicked=0,
            converted=2,
            revenue=Decimal("90.00"),
        ),
        StepResults(
            step_id=ids["reminder"],
            position=3,
            key="reminder",
            type="send_email",
            entered=2,
            sent=1,
            suppressed=0,
            failed=0,
            unknown=1,
            opened=1,
            clicked=0,
            converted=2,
            revenue=Decimal("90.00"),
        ),
    )
    assert (results.entered, results.held_out, results.treated) == (7, 3, 4)
    assert (results.sent, results.suppressed, results.failed, results.unknown) == (3, 1, 1, 1)
    assert (results.opened, results.clicked) == (2, 1)
    assert (results.converted, results.revenue) == (2, Decimal("90.00"))
    assert (results.goal_event, results.goal_days, results.as_of) == ("order_placed", 7, NOW)


def test_uplift_compares_the_treated_with_the_holdout(campaign_with_history):
    uplift = campaign_results(campaign_with_history, now=NOW).uplift

    assert (uplift.treated, uplift.treated_converted, uplift.holdout, uplift.holdout_converted) == (4, 2, 3, 1)
    assert uplift.treated_rate == 0.5
    assert round(uplift.holdout_rate, 4) == 0.3333
    assert round(uplift.absolute, 4) == 0.1667
    assert round(uplift.relative, 4) == 0.5
    assert (round(uplift.low, 4), round(uplift.high, 4)) == (-0.4105, 0.6098)
    assert uplift.confidence == 0.95


def test_conversions_count_only_what_happened_by_now(campaign_with_history):
    results = campaign_results(campaign_with_history, now=ENTERED + timedelta(days=2))

    assert (results.converted, results.revenue) == (1, Decimal("10.00"))
    assert (results.uplift.treated_converted, results.uplift.holdout_converted) == (1, 0)
    assert results.uplift.relative is None


def test_results_take_a_fixed_number_of_queries(campaign_with_history, welcome_template, django_assert_num_queries):
    for _ in range(5):
        customer = CustomerFactory()
        enrollment = enter(campaign_with_history, customer, EnrollmentState.COMPLETED, ["welcome", "pause", "pause"])
        message(enrollment, "welcome", MessageStatus.SENT, welcome_template)
        OrderFactory(customer=customer, placed_at=ENTERED + timedelta(days=1), total=Decimal("5.00"))

    with django_assert_num_queries(4):
        results = campaign_results(campaign_with_history, now=NOW)

    assert (results.entered, results.sent, results.converted, results.revenue) == (12, 8, 7, Decimal("115.00"))


def test_an_event_goal_counts_events_in_the_window_and_no_revenue(welcome_template):
    campaign = make_campaign(welcome_template, goal_event="review_written", goal_days=3)
    inside, late, other = CustomerFactory(), CustomerFactory(), CustomerFactory()
    for customer in (inside, late, other):
        enter(campaign, customer, EnrollmentState.COMPLETED, ["welcome"])
    EventFactory(customer=inside, name="review_written", occurred_at=ENTERED + timedelta(days=3))
    EventFactory(customer=late, name="review_written", occurred_at=ENTERED + timedelta(days=3, seconds=1))
    EventFactory(customer=other, name="product_viewed", occurred_at=ENTERED + timedelta(days=1))
    OrderFactory(customer=other, placed_at=ENTERED + timedelta(days=1), total=Decimal("80.00"))

    results = campaign_results(campaign, now=NOW)

    assert (results.entered, results.converted, results.revenue) == (3, 1, None)
    assert [(step.key, step.entered, step.converted, step.revenue) for step in results.steps] == [
        ("welcome", 3, 1, None),
        ("pause", 0, 0, None),
        ("reminder", 0, 0, None),
    ]
    assert results.uplift is None


def test_a_campaign_without_entries_has_zero_results(welcome_template):
    campaign = make_campaign(welcome_template, holdout_percent=10)

    results = campaign_results(campaign, now=NOW)

    assert results == CampaignResults(
        campaign_id=campaign.pk,
        goal_event="order_placed",
        goal_days=7,
        as_of=NOW,
        entered=0,
        held_out=0,
        sent=0,
        suppressed=0,
        failed=0,
        unknown=0,
        opened=0,
        clicked=0,
        converted=0,
        revenue=Decimal("0.00"),
        steps=results.steps,
        uplift=None,
    )
    assert [(step.entered, step.sent, step.converted, step.revenue) for step in results.steps] == [
        (0, 0, 0, Decimal("0.00"))
    ] * 3


def test_messages_of_other_campaigns_and_broadcasts_do_not_count(campaign_with_history, welcome_template):
    other = make_campaign(welcome_template, name="Other")
    enrollment = enter(other, CustomerFactory(), EnrollmentState.COMPLETED, ["welcome"])
    message(enrollment, "welcome", MessageStatus.SENT, welcome_template, opened_at=NOW)
    Message.objects.create(template=welcome_template, to_email="someone@example.com", status=MessageStatus.SENT)

    results = campaign_results(campaign_with_history, now=NOW)

    assert (results.entered, results.sent, results.opened) == (7, 3, 2)


@pytest.mark.parametrize(
    ("x1", "n1", "x2", "n2", "difference", "low", "high"),
    [
        # Newcombe (1998), Statistics in Medicine 17:873-890, table II, method 10.
        (56, 70, 48, 80, 0.2000, 0.0524, 0.3339),
        (9, 10, 3, 10, 0.6000, 0.1705, 0.8090),
        (6, 7, 2, 7, 0.5714, 0.0582, 0.8062),
        (5, 56, 0, 29, 0.0893, -0.0381, 0.1926),
    ],
)
def test_newcombe_interval_matches_the_paper(x1, n1, x2, n2, difference, low, high):
    interval = newcombe_interval(x1, n1, x2, n2)

    assert round(x1 / n1 - x2 / n2, 4) == difference
    assert (round(interval[0], 4), round(interval[1], 4)) == (low, high)


@pytest.mark.parametrize(
    ("successes", "trials", "low", "high"),
    [
        # Newcombe (1998), Statistics in Medicine 17:857-872, method 3 (Wilson score).
        (81, 263, 0.2553, 0.3662),
        (15, 148, 0.0624, 0.1605),
        (0, 20, 0.0000, 0.1611),
        (1, 29, 0.0061, 0.1718),
    ],
)
def test_wilson_interval_matches_the_paper(successes, trials, low, high):
    interval = wilson_interval(successes, trials)

    assert (round(interval[0], 4), round(interval[1], 4)) == (low, high)


def test_wilson_interval_refuses_an_empty_group():
    with pytest.raises(ValueError, match="trials > 0"):
        wilson_interval(0, 0)


def test_relative_uplift_is_undefined_when_the_holdout_never_converted():
    uplift = measure_uplift(5, 56, 0, 29)

    assert (round(uplift.absolute, 4), uplift.relative) == (0.0893, None)
    assert (round(uplift.low, 4), round(uplift.high, 4)) == (-0.0381, 0.1926)


def test_the_table_shows_each_step_the_total_and_the_uplift(campaign_with_history):
    html = results_table_html(campaign_results(campaign_with_history, now=NOW))

    assert (
        "<tr><th scope='row'>1. welcome (send_email)</th>"
        "<td>4</td><td>2</td><td>1</td><td>1</td><td>0</td><td>1</td><td>1</td><td>2</td><td>90.00</td></tr>"
    ) in html
    assert (
        "<tfoot><tr><th scope='row'>Campaign</th>"
        "<td>7</td><td>3</td><td>1</td><td>1</td><td>1</td><td>2</td><td>1</td><td>2</td><td>90.00</td></tr></tfoot>"
    ) in html
    assert (
        "<p>Goal: order_placed within 7 days of entering; 3 held out; counted up to 2026-03-31 09:00 UTC.</p>" in html
    )
    assert (
        "<p>Conversion: treated 2 of 4 (50.0 %), holdout 1 of 3 (33.3 %). "
        "Uplift +16.7 pp (95 % CI -41.1 pp to +61.0 pp), relative +50.0 %.</p>"
    ) in html


def test_the_table_escapes_what_the_campaign_names(welcome_template):
    campaign = make_campaign(welcome_template, goal_event="<script>alert(1)</script>")

    html = results_table_html(campaign_results(campaign, now=NOW))

    assert "<script>" not in html
    assert "Goal: &lt;script&gt;alert(1)&lt;/script&gt; within 7 days" in html
    assert "<p>No uplift yet: it needs a holdout and entrants in both groups.</p>" in html
