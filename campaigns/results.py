"""What a campaign did: entries, messages, opens, clicks and conversions per step, and uplift over the holdout.

Every number comes from a handful of aggregate queries over the whole campaign (the steps, their
first visits, the messages, the enrollments), so the cost does not grow with a query per
enrollment. A conversion is the campaign's goal reached in the goal window after entering:
`order_placed` counts a non-cancelled, non-refunded order placed in [entered_at, entered_at +
goal_days]; any other goal counts an event of that name in the same window. Windows still open
count what has happened up to `now`.
"""

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from statistics import NormalDist

from django.db.models import (
    Count,
    DateTimeField,
    DecimalField,
    Exists,
    ExpressionWrapper,
    F,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Sum,
    Value,
)
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from campaigns.models import Campaign, Enrollment, EnrollmentState, Message, MessageStatus, StepVisit
from marketing.models import Event, Order, OrderStatus

ORDER_GOAL = "order_placed"
# Orders that do not count as a conversion, nor towards revenue.
NOT_CONVERTING_STATUSES = (OrderStatus.CANCELLED, OrderStatus.REFUNDED)
UPLIFT_CONFIDENCE = 0.95


@dataclass(frozen=True)
class StepResults:
    """One step: distinct enrollments that reached it, its messages by outcome, and their conversions."""

    step_id: int
    position: int
    key: str
    type: str
    entered: int
    sent: int
    suppressed: int
    failed: int
    unknown: int
    opened: int
    clicked: int
    converted: int
    revenue: Decimal | None  # None when the goal is not order_placed


@dataclass(frozen=True)
class Uplift:
    """Conversion of the treated (everyone who got the campaign) against the holdout, with Newcombe's interval."""

    treated: int
    treated_converted: int
    holdout: int
    holdout_converted: int
    treated_rate: float
    holdout_rate: float
    absolute: float  # treated_rate - holdout_rate
    low: float
    high: float
    relative: float | None  # absolute / holdout_rate; None when nobody in the holdout converted
    confidence: float = UPLIFT_CONFIDENCE


@dataclass(frozen=True)
class CampaignResults:
    """A campaign's results up to `as_of`. `converted` and `revenue` count the treated only, never the holdout."""

    campaign_id: int
    goal_event: str
    goal_days: int
    as_of: datetime
    entered: int  # every enrollment, holdout included
    held_out: int
    sent: int
    suppressed: int
    failed: int
    unknown: int
    opened: int
    clicked: int
    converted: int
    revenue: Decimal | None  # None when the goal is not order_placed
    steps: tuple[StepResults, ...]
    uplift: Uplift | None  # None without a holdout, or while either group is empty

    @property
    def treated(self) -> int:
        return self.entered - self.held_out


@dataclass(frozen=True)
class _Goal:
    reached: Exists
    revenue: Subquery | None


def _goal(campaign: Campaign, now: datetime, enrollment: str = "") -> _Goal:
    """Return the goal as subqueries correlated to an enrollment (reached through `enrollment`, e.g. "enrollment__")."""
    customer, entered_at = OuterRef(f"{enrollment}customer_id"), OuterRef(f"{enrollment}entered_at")
    # "placed_at <= entered_at + goal_days" written on the inner row, whose column type the database knows.
    window = Value(timedelta(days=campaign.goal_days))
    if campaign.goal_event == ORDER_GOAL:
        orders = (
            Order.objects.alias(window_opened=ExpressionWrapper(F("placed_at") - window, output_field=DateTimeField()))
            .filter(customer_id=customer, placed_at__gte=entered_at, window_opened__lte=entered_at, placed_at__lte=now)
            .exclude(status__in=NOT_CONVERTING_STATUSES)
            .order_by()
        )
        total = orders.values("customer_id").annotate(total=Sum("total")).values("total")[:1]
        return _Goal(Exists(orders), Subquery(total, output_field=DecimalField(max_digits=14, decimal_places=2)))
    events = (
        Event.objects.alias(window_opened=ExpressionWrapper(F("occurred_at") - window, output_field=DateTimeField()))
        .filter(
            customer_id=customer,
            name=campaign.goal_event,
            occurred_at__gte=entered_at,
            window_opened__lte=entered_at,
            occurred_at__lte=now,
        )
        .order_by()
    )
    return _Goal(Exists(events), None)


def _zero_money() -> Value:
    return Value(Decimal("0.00"), output_field=DecimalField(max_digits=14, decimal_places=2))


def _with_goal(rows: QuerySet, goal: _Goal) -> QuerySet:
    rows = rows.annotate(goal_reached=goal.reached)
    if goal.revenue is not None:
        rows = rows.annotate(goal_revenue=Coalesce(goal.revenue, _zero_money()))
    return rows


def _money(value: Decimal | None, goal: _Goal) -> Decimal | None:
    if goal.revenue is None:
        return None
    return value if value is not None else Decimal("0.00")


_MESSAGE_COUNTS = {
    "sent": Count("pk", filter=Q(status=MessageStatus.SENT)),
    "suppressed": Count("pk", filter=Q(status=MessageStatus.SUPPRESSED)),
    "failed": Count("pk", filter=Q(status=MessageStatus.FAILED)),
    "unknown": Count("pk", filter=Q(status=MessageStatus.UNKNOWN)),
    # opened_at records a person's first open only; machine opens (image proxies, scanners) never set it.
    "opened": Count("pk", filter=Q(opened_at__isnull=False)),
    "clicked": Count("pk", filter=Q(clicked_at__isnull=False)),
}
_NO_MESSAGES = dict.fromkeys(_MESSAGE_COUNTS, 0)


def campaign_results(campaign: Campaign, now: datetime | None = None) -> CampaignResults:
    """Count a campaign's entries, messages and conversions, per step and in total, and its uplift over the holdout."""
    now = now or timezone.now()
    goal = _goal(campaign, now)
    step_goal = _goal(campaign, now, enrollment="enrollment__")

    campaign_steps = list(campaign.steps.order_by("position").values("pk", "position", "key", "type"))

    # A wait step is visited twice (waiting, then waited): count each enrollment at its first visit only.
    earlier = StepVisit.objects.filter(
        enrollment_id=OuterRef("enrollment_id"), step_id=OuterRef("step_id"), pk__lt=OuterRef("pk")
    )
    first_visits = _with_goal(StepVisit.objects.filter(step__campaign=campaign).filter(~Exists(earlier)), step_goal)
    visit_counts = {"entered": Count("pk"), "converted": Count("pk", filter=Q(goal_reached=True))}
    if step_goal.revenue is not None:
        visit_counts["revenue"] = Sum("goal_revenue")
    visits = {row["step_id"]: row for row in first_visits.order_by().values("step_id").annotate(**visit_counts)}

    messages = {
        row["step_id"]: row
        for row in Message.objects.filter(enrollment__campaign=campaign)
        .order_by()
        .values("step_id")
        .annotate(**_MESSAGE_COUNTS)
    }

    holdout = Q(state=EnrollmentState.HOLDOUT)
    enrollment_counts = {
        "entered": Count("pk"),
        "held_out": Count("pk", filter=holdout),
        "converted": Count("pk", filter=Q(goal_reached=True) & ~holdout),
        "holdout_converted": Count("pk", filter=Q(goal_reached=True) & holdout),
    }
    if goal.revenue is not None:
        enrollment_counts["revenue"] = Sum("goal_revenue", filter=~holdout)
    totals = _with_goal(Enrollment.objects.filter(campaign=campaign), goal).aggregate(**enrollment_counts)

    step_results = tuple(
        StepResults(
            step_id=step["pk"],
            position=step["position"],
            key=step["key"],
            type=step["type"],
            entered=visits.get(step["pk"], {}).get("entered", 0),
            **{name: messages.get(step["pk"], _NO_MESSAGES)[name] for name in _MESSAGE_COUNTS},
            converted=visits.get(step["pk"], {}).get("converted", 0),
            revenue=_money(visits.get(step["pk"], {}).get("revenue"), step_goal),
        )
        for step in campaign_steps
    )
    treated = totals["entered"] - totals["held_out"]
    uplift = None
    if treated and totals["held_out"]:
        uplift = measure_uplift(totals["converted"], treated, totals["holdout_converted"], totals["held_out"])
    return CampaignResults(
        campaign_id=campaign.pk,
        goal_event=campaign.goal_event,
        goal_days=campaign.goal_days,
        as_of=now,
        entered=totals["entered"],
        held_out=totals["held_out"],
        **{name: sum(row[name] for row in messages.values()) for name in _MESSAGE_COUNTS},
        converted=totals["converted"],
        revenue=_money(totals.get("revenue"), goal),
        steps=step_results,
        uplift=uplift,
    )


# --- Uplift -----------------------------------------------------------------------------------


def _z(confidence: float) -> float:
    return NormalDist().inv_cdf(0.5 + confidence / 2)


def wilson_interval(successes: int, trials: int, confidence: float = UPLIFT_CONFIDENCE) -> tuple[float, float]:
    """Return Wilson's score interval for a proportion (without continuity correction).

    With p = x / n and z the normal quantile for the confidence level, the bounds are the roots of
    |p - π| = z·sqrt(π(1 - π) / n):

        (2np + z² ∓ z·sqrt(z² + 4np(1 - p))) / (2(n + z²))

    Wilson, E. B. (1927). Probable inference, the law of succession, and statistical inference.
    Journal of the American Statistical Association 22, 209–212. Method 3 in Newcombe (1998).
    """
    if trials <= 0 or not 0 <= successes <= trials:
        raise ValueError(f"need 0 <= successes <= trials and trials > 0; got {successes} of {trials}")
    z = _z(confidence)
    p = successes / trials
    centre = 2 * trials * p + z * z
    spread = z * math.sqrt(z * z + 4 * trials * p * (1 - p))
    denominator = 2 * (trials + z * z)
    return max(0.0, (centre - spread) / denominator), min(1.0, (centre + spread) / denominator)


def newcombe_interval(x1: int, n1: int, x2: int, n2: int, confidence: float = UPLIFT_CONFIDENCE) -> tuple[float, float]:
    """Return Newcombe's hybrid score interval for the difference of two independent proportions p1 - p2.

    Method 10 of Newcombe, R. G. (1998). Interval estimation for the difference between
    independent proportions: comparison of eleven methods. Statistics in Medicine 17, 873–890.
    With D = p1 - p2 and (l1, u1), (l2, u2) the Wilson score intervals of p1 and p2:

        lower = D - sqrt((p1 - l1)² + (u2 - p2)²)
        upper = D + sqrt((u1 - p1)² + (p2 - l2)²)

    It keeps close to nominal coverage for small samples and for rates near 0 or 1, where the
    Wald interval fails; the paper's example 56/70 - 48/80 gives 0.2000 (0.0524, 0.3339).
    """
    p1, p2 = x1 / n1, x2 / n2
    l1, u1 = wilson_interval(x1, n1, confidence)
    l2, u2 = wilson_interval(x2, n2, confidence)
    difference = p1 - p2
    low = difference - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    high = difference + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    return low, high


def measure_uplift(
    treated_converted: int, treated: int, holdout_converted: int, holdout: int, confidence: float = UPLIFT_CONFIDENCE
) -> Uplift:
    """Compare the treated group's conversion rate with the holdout's."""
    treated_rate, holdout_rate = treated_converted / treated, holdout_converted / holdout
    low, high = newcombe_interval(treated_converted, treated, holdout_converted, holdout, confidence)
    absolute = treated_rate - holdout_rate
    return Uplift(
        treated=treated,
        treated_converted=treated_converted,
        holdout=holdout,
        holdout_converted=holdout_converted,
        treated_rate=treated_rate,
        holdout_rate=holdout_rate,
        absolute=absolute,
        low=low,
        high=high,
        relative=absolute / holdout_rate if holdout_rate else None,
        confidence=confidence,
    )


# --- Display ----------------------------------------------------------------------------------


def _percent(value: float) -> str:
    return f"{value * 100:+.1f} pp" if value else "0.0 pp"


def _revenue(value: Decimal | None) -> str:
    return "—" if value is None else f"{value:,.2f}"


_COLUMNS = ("Entered", "Sent", "Suppressed", "Failed", "Unknown", "Opened", "Clicked", "Converted", "Revenue")


def _cells(row: StepResults | CampaignResults) -> tuple:
    return (
        row.entered,
        row.sent,
        row.suppressed,
        row.failed,
        row.unknown,
        row.opened,
        row.clicked,
        row.converted,
        _revenue(row.revenue),
    )


def _row(label: str, cells: tuple) -> str:
    return format_html(
        "<tr><th scope='row'>{}</th>{}</tr>", label, format_html_join("", "<td>{}</td>", ((cell,) for cell in cells))
    )


def results_table_html(results: CampaignResults) -> str:
    """Render the results as an HTML table for the campaign's admin page, every value escaped."""
    header = format_html_join("", "<th scope='col'>{}</th>", ((column,) for column in _COLUMNS))
    body = format_html_join(
        "", "{}", ((_row(f"{step.position}. {step.key} ({step.type})", _cells(step)),) for step in results.steps)
    )
    total = _row("Campaign", _cells(results))
    goal = format_html(
        "<p>Goal: {} within {} days of entering; {} held out; counted up to {} UTC.</p>",
        results.goal_event,
        results.goal_days,
        results.held_out,
        results.as_of.astimezone(UTC).strftime("%Y-%m-%d %H:%M"),
    )
    table = format_html(
        "<table class='campaign-results'><thead><tr><th scope='col'>Step</th>{}</tr></thead>"
        "<tbody>{}</tbody><tfoot>{}</tfoot></table>",
        header,
        body,
        total,
    )
    return format_html("{}{}{}", goal, table, _uplift_html(results))


def _uplift_html(results: CampaignResults) -> str:
    uplift = results.uplift
    if uplift is None:
        return format_html("<p>{}</p>", "No uplift yet: it needs a holdout and entrants in both groups.")
    relative = "—" if uplift.relative is None else f"{uplift.relative * 100:+.1f} %"
    return format_html(
        "<p>Conversion: treated {} of {} ({}), holdout {} of {} ({}). Uplift {} ({} % CI {} to {}), relative {}.</p>",
        uplift.treated_converted,
        uplift.treated,
        f"{uplift.treated_rate * 100:.1f} %",
        uplift.holdout_converted,
        uplift.holdout,
        f"{uplift.holdout_rate * 100:.1f} %",
        _percent(uplift.absolute),
        round(uplift.confidence * 100),
        _percent(uplift.low),
        _percent(uplift.high),
        relative,
    )
