"""A category's likely buyers: purchase propensity combined with category affinity, in one SQL query.

A customer's chance of buying in a category is read as P(orders soon) x P(the category | an order):
- P(orders soon) is the customer's probability under the active purchase-propensity version;
- P(the category | an order) is the share of the customer's order lines (cancelled and refunded
  orders left out) that were in the category, smoothed towards the category's share of all lines
  with AFFINITY_PRIOR_LINES pseudo-lines, so one lucky order is not read as a passion and a
  customer who never ordered gets the shop's average.
Without an active propensity version, customers are ranked by affinity alone, and the result says so.
For the whole shop (`__all__`) the affinity is 1: the likely buyers are the likeliest to order.
"""

from dataclasses import dataclass
from datetime import datetime

from django.db import connection

from marketing.models import Customer, Order, OrderLine, OrderStatus, Product
from ml.forecast import ALL_SERIES
from ml.models import PURCHASE_PROPENSITY, ModelVersion, Score

AFFINITY_PRIOR_LINES = 2.0
EXCLUDED_STATUSES = (OrderStatus.CANCELLED.value, OrderStatus.REFUNDED.value)


@dataclass(frozen=True)
class LikelyBuyer:
    customer_id: int
    likelihood: float
    probability: float | None  # None when no propensity version is active
    affinity: float


@dataclass(frozen=True)
class LikelyBuyers:
    category: str
    buyers: list[LikelyBuyer]
    propensity_version: int | None  # the pk of the propensity version read, None if none was active

    @property
    def ranked_by(self) -> str:
        return (
            "propensity x affinity" if self.propensity_version is not None else "affinity (no active propensity model)"
        )


def category_share(category: str, before: datetime) -> float:
    """Return the category's share of all order lines of kept orders placed before `before`."""
    lines = OrderLine.objects.filter(order__placed_at__lt=before).exclude(order__status__in=EXCLUDED_STATUSES)
    total = lines.count()
    if not total:
        return 0.0
    return lines.filter(product__category=category).count() / total


def likely_buyers(category: str, now: datetime, limit: int, min_likelihood: float = 0.0) -> LikelyBuyers:
    """Return up to `limit` customers most likely to buy in the category, likeliest first (ties by id)."""
    version = ModelVersion.objects.active(PURCHASE_PROPENSITY).first()
    whole_shop = category == ALL_SERIES
    share = 1.0 if whole_shop else category_share(category, now)
    line, order, product = OrderLine._meta.db_table, Order._meta.db_table, Product._meta.db_table
    excluded = ", ".join(["%s"] * len(EXCLUDED_STATUSES))
    affinity = (
        "1.0"
        if whole_shop
        else f"(COALESCE(lc.in_category, 0) + {AFFINITY_PRIOR_LINES} * %s) / (COALESCE(lc.lines, 0) + {AFFINITY_PRIOR_LINES})"
    )
    if version is not None:
        people = f"SELECT customer_id, probability FROM {Score._meta.db_table} WHERE model_version_id = %s"
        people_params: list = [version.pk]
    else:
        people = f"SELECT id AS customer_id, 1.0 AS probability FROM {Customer._meta.db_table}"
        people_params = []
    sql = f"""
WITH lc AS (
    SELECT o.customer_id, COUNT(*) AS lines, SUM(CASE WHEN p.category = %s THEN 1 ELSE 0 END) AS in_category
    FROM {line} l JOIN {order} o ON o.id = l.order_id JOIN {product} p ON p.id = l.product_id
    WHERE o.placed_at < %s AND o.status NOT IN ({excluded})
    GROUP BY o.customer_id
), ranked AS (
    SELECT people.customer_id, people.probability, {affinity} AS affinity
    FROM ({people}) people LEFT JOIN lc ON lc.customer_id = people.customer_id
)
SELECT customer_id, probability * affinity AS likelihood, probability, affinity FROM ranked
WHERE probability * affinity >= %s
ORDER BY likelihood DESC, customer_id
LIMIT %s
"""
    # Raw SQL compares stored timestamps as the database keeps them (naive UTC text on SQLite).
    params = [category, connection.ops.adapt_datetimefield_value(now), *EXCLUDED_STATUSES]
    if not whole_shop:
        params.append(share)
    params += [*people_params, min_likelihood, limit]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    buyers = [
        LikelyBuyer(
            int(customer_id),
            round(float(likelihood), 6),
            round(float(probability), 6) if version is not None else None,
            round(float(affinity_value), 6),
        )
        for customer_id, likelihood, probability, affinity_value in rows
    ]
    return LikelyBuyers(category, buyers, version.pk if version is not None else None)
