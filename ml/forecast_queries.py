"""The SQL that feeds the forecasts: weekly units and revenue per category and for the whole shop.

Weeks are Mondays in the shop's time zone (TIME_ZONE): an order placed at 23:30 on a Sunday in
Berlin belongs to that week even though it is Monday in UTC. The history ends with the last
complete week before the moment the forecast is made for; the week that moment falls in is the
first week forecast.

What counts:
- Cancelled and refunded orders are left out, and counted (with their totals) in the report.
- A category's units and revenue are its order lines' quantities and quantity x unit price. The
  category is the product's current one, so a category renamed in the catalogue keeps its history.
- The whole shop's units are all lines' quantities; its revenue is the sum of order totals, so it
  includes orders imported without lines (counted in the report), which no category can claim.
"""

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pandas as pd
from django.db.models import Count, DateField, DecimalField, Exists, F, Max, Min, OuterRef, Sum
from django.db.models.functions import Trunc

from marketing.models import Order, OrderLine, OrderStatus
from ml.forecast import ALL_SERIES
from ml.forecast.calendar import monday_of

EXCLUDED_STATUSES = (OrderStatus.CANCELLED.value, OrderStatus.REFUNDED.value)
_AMOUNT = DecimalField(max_digits=20, decimal_places=2)


class CategoryNameClash(ValueError):
    """A category is named like the whole shop's series."""


@dataclass(frozen=True)
class WeeklySalesRead:
    frame: pd.DataFrame  # series, week_start, units, revenue: one row per series and week with sales
    first_week: date | None  # the first complete week with a kept order; None without any
    end_week: date  # the Monday the history stops before (the first forecast week)
    cutoff: datetime  # end_week's midnight in the shop's zone: orders from here on are not read
    kept_orders: int
    excluded: dict[str, dict[str, float]]  # per status: orders and their total
    orders_without_lines: int
    revenue_without_lines: float
    last_order_at: datetime | None

    @property
    def weeks(self) -> int:
        return (self.end_week - self.first_week).days // 7 if self.first_week else 0

    def report(self) -> dict:
        """Return what was read, left out and why, as plain data for the version's metrics."""
        return {
            "first_week": self.first_week.isoformat() if self.first_week else None,
            "end_week": self.end_week.isoformat(),
            "weeks": self.weeks,
            "kept_orders": self.kept_orders,
            "excluded": self.excluded,
            "orders_without_lines": self.orders_without_lines,
            "revenue_without_lines": round(self.revenue_without_lines, 2),
            "categories": int(self.frame.loc[self.frame["series"] != ALL_SERIES, "series"].nunique()),
        }


def forecast_start(as_of: datetime, zone: ZoneInfo) -> tuple[date, datetime]:
    """Return the Monday (in the shop's zone) of the week `as_of` falls in, and that Monday's midnight."""
    monday = monday_of(as_of.astimezone(zone).date())
    return monday, datetime.combine(monday, time(), tzinfo=zone)


def _week(field: str, zone: ZoneInfo) -> Trunc:
    return Trunc(field, "week", output_field=DateField(), tzinfo=zone)


def read_weekly_sales(as_of: datetime, zone: ZoneInfo) -> WeeklySalesRead:
    """Return every series' weekly sales in the complete weeks before the week of `as_of`."""
    end_week, cutoff = forecast_start(as_of, zone)
    span = (
        Order.objects.filter(placed_at__lt=cutoff)
        .exclude(status__in=EXCLUDED_STATUSES)
        .aggregate(first=Min("placed_at"), last=Max("placed_at"))
    )
    first_week = first_complete_week(span["first"].astimezone(zone).date()) if span["first"] else None
    start = datetime.combine(first_week, time(), tzinfo=zone) if first_week else cutoff
    orders = Order.objects.filter(placed_at__gte=start, placed_at__lt=cutoff)
    kept = orders.exclude(status__in=EXCLUDED_STATUSES)
    lines = OrderLine.objects.filter(order__placed_at__gte=start, order__placed_at__lt=cutoff).exclude(
        order__status__in=EXCLUDED_STATUSES
    )
    by_category = (
        lines.annotate(week=_week("order__placed_at", zone))
        .values("week", "product__category")
        .annotate(units=Sum("quantity"), revenue=Sum(F("quantity") * F("unit_price"), output_field=_AMOUNT))
    )
    rows = [(row["product__category"], row["week"], float(row["units"]), float(row["revenue"])) for row in by_category]
    if any(category == ALL_SERIES for category, *_ in rows):
        raise CategoryNameClash(
            f"a product category is named {ALL_SERIES!r}, which names the whole shop in forecasts; "
            "rename it in the catalogue"
        )
    shop_units: dict[date, float] = {}
    for _, week, units, _ in rows:
        shop_units[week] = shop_units.get(week, 0.0) + units
    for row in kept.annotate(week=_week("placed_at", zone)).values("week").annotate(revenue=Sum("total")):
        rows.append((ALL_SERIES, row["week"], shop_units.get(row["week"], 0.0), float(row["revenue"])))
    without_lines = kept.filter(~Exists(OrderLine.objects.filter(order=OuterRef("pk")))).aggregate(
        orders=Count("id"), revenue=Sum("total")
    )
    excluded = {status: {"orders": 0, "total": 0.0} for status in EXCLUDED_STATUSES}
    for row in orders.filter(status__in=EXCLUDED_STATUSES).values("status").annotate(n=Count("id"), total=Sum("total")):
        excluded[row["status"]] = {"orders": row["n"], "total": round(float(row["total"] or Decimal(0)), 2)}
    return WeeklySalesRead(
        frame=pd.DataFrame(rows, columns=["series", "week_start", "units", "revenue"]),
        first_week=first_week,
        end_week=end_week,
        cutoff=cutoff,
        kept_orders=kept.count(),
        excluded=excluded,
        orders_without_lines=without_lines["orders"],
        revenue_without_lines=float(without_lines["revenue"] or 0),
        last_order_at=span["last"],
    )


def first_complete_week(first_day: date) -> date:
    """Return the Monday of the first whole week of sales: a shop (or a data export) that starts on a
    Thursday has a first week of four days, which would read as a slump."""
    monday = monday_of(first_day)
    return monday if monday == first_day else monday + timedelta(weeks=1)
