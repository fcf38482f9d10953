"""The SQL that feeds the pure ML modules: one statement per chunk of customers.

`read_aggregates` returns, for every customer in an id range known before the cutoff, the
order, basket and engagement aggregates `ml.features` needs, all computed from rows strictly
before the cutoff. `read_labels` is the only reader of anything after a cutoff, and it is kept
apart so that nothing it sees can reach a feature.
"""

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
from django.db import connection
from django.db.models import Count, Q

from marketing.models import Customer, Event, Order, OrderLine, OrderStatus, Product
from ml.features import (
    ENGAGEMENT_EVENTS,
    EVENT_WINDOWS_DAYS,
    ORDER_WINDOWS_DAYS,
    SEASON_YEAR_DAYS,
    aggregate_columns,
    season_index,
    window_starts,
)

RETURNED_STATUSES = (OrderStatus.CANCELLED.value, OrderStatus.REFUNDED.value)
# One chunk of customers is one statement; its cost grows with their orders and events, not with
# the table, because every read is a range scan of a (customer_id, time) index.
READ_CHUNK_CUSTOMERS = 20_000
# Samples (training on large stores, decile cut points) keep whole blocks of consecutive customers.
SAMPLE_BLOCK_CUSTOMERS = 2_000


# A customer is known from their first sign of life; one without any (a sign-up list without dates)
# from the moment their row was written, so that today's scoring still includes them.
KNOWN_SINCE = "COALESCE(c.first_seen_at, c.created_at)"


def _epoch(column: str) -> str:
    if connection.vendor == "postgresql":
        return f"date_part('epoch', {column})"  # double precision; EXTRACT would build numerics
    return f"((julianday({column}) - 2440587.5) * 86400.0)"


def _day(epoch_column: str) -> str:
    """Return the UTC day number of an epoch-seconds column (PostgreSQL rounds a cast to integer; SQLite truncates)."""
    if connection.vendor == "postgresql":
        return f"FLOOR({epoch_column} / 86400.0)"
    return f"CAST({epoch_column} / 86400 AS INTEGER)"


def _moment(epoch_s: float) -> str:
    """Return a SQL literal of the moment, comparable with stored timestamps without a per-row conversion."""
    moment = datetime.fromtimestamp(epoch_s, tz=UTC)
    if connection.vendor == "postgresql":
        return f"'{moment.isoformat()}'::timestamptz"
    return f"'{moment.replace(tzinfo=None).isoformat(sep=' ')}'"  # Django stores naive UTC text on SQLite


def _stored(moment: datetime) -> datetime:
    """Return the moment as raw SQL must compare it: SQLite holds naive UTC text, PostgreSQL takes it aware."""
    if connection.vendor == "postgresql":
        return moment
    return moment.astimezone(UTC).replace(tzinfo=None)


def _sum_if(condition: str, value: str = "1") -> str:
    return f"SUM(CASE WHEN {condition} THEN {value} ELSE 0 END)"


def _aggregates_sql(as_of_t: float) -> str:
    starts = {name: _moment(moment) for name, moment in window_starts(as_of_t).items()}
    returned = ", ".join(f"'{status}'" for status in RETURNED_STATUSES)
    order_windows = []
    for days in ORDER_WINDOWS_DAYS:
        since = f"kept = 1 AND placed_at >= {starts[f'{days}d']}"
        order_windows += [f"{_sum_if(since)} AS orders_{days}d", f"{_sum_if(since, 'total')} AS revenue_{days}d"]
    previous = f"kept = 1 AND placed_at >= {starts['prev_90d']} AND placed_at < {starts['90d']}"
    # Events are counted per (customer, name) first, with a handful of aggregates, then pivoted:
    # one CASE per output column over millions of event rows would cost several times more.
    per_name = ", ".join(
        f"{_sum_if('occurred_at >= ' + starts[f'{days}d'])} AS n_{days}d" for days in EVENT_WINDOWS_DAYS
    )
    event_columns = []
    for name in ENGAGEMENT_EVENTS:
        for days in EVENT_WINDOWS_DAYS:
            is_name = f"name = '{name}'"
            event_columns.append(f"{_sum_if(is_name, f'n_{days}d')} AS {name}_{days}d")
        event_columns.append(f"MAX(CASE WHEN name = '{name}' THEN {_epoch('last_at')} END) AS last_{name}_t")
    names = ", ".join(f"'{name}'" for name in ENGAGEMENT_EVENTS)
    event_outputs = ", ".join(f"ea.{column.split(' AS ')[-1]}" for column in event_columns)
    customer, order, line = Customer._meta.db_table, Order._meta.db_table, OrderLine._meta.db_table
    product, event = Product._meta.db_table, Event._meta.db_table
    return f"""
WITH c AS (
    SELECT c.id, {_epoch(KNOWN_SINCE)} AS first_seen_t FROM {customer} c
    WHERE c.id BETWEEN %s AND %s AND {KNOWN_SINCE} < %s
), o AS (
    SELECT id, customer_id, placed_at, {_epoch("placed_at")} AS t, CAST(total AS DOUBLE PRECISION) AS total,
           CASE WHEN status IN ({returned}) THEN 0 ELSE 1 END AS kept
    FROM {order} WHERE customer_id BETWEEN %s AND %s AND placed_at < %s
), oa AS (
    SELECT customer_id, SUM(kept) AS orders_all, COUNT(DISTINCT CASE WHEN kept = 1 THEN {_day("t")} END) AS order_days_all,
           {_sum_if("kept = 1", "total")} AS revenue_all,
           MIN(CASE WHEN kept = 1 THEN t END) AS first_order_t, MAX(CASE WHEN kept = 1 THEN t END) AS last_order_t,
           SUM(1 - kept) AS returned_orders, {", ".join(order_windows)},
           {_sum_if(previous, "total")} AS revenue_prev_90d
    FROM o GROUP BY customer_id
), og AS (
    SELECT customer_id, (t - LAG(t) OVER (PARTITION BY customer_id ORDER BY t)) / 86400.0 AS gap
    FROM o WHERE kept = 1
), ga AS (
    SELECT customer_id, COUNT(gap) AS gap_n, SUM(gap) AS gap_sum_d, SUM(gap * gap) AS gap_sq_sum_d
    FROM og GROUP BY customer_id
), lc AS (
    SELECT o.customer_id, p.category, SUM(l.quantity) AS items,
           SUM(l.quantity * CAST(l.unit_price AS DOUBLE PRECISION)) AS spend
    FROM o JOIN {line} l ON l.order_id = o.id JOIN {product} p ON p.id = l.product_id
    WHERE o.kept = 1 GROUP BY o.customer_id, p.category
), la AS (
    SELECT customer_id, SUM(items) AS items_all, COUNT(*) AS categories,
           CASE WHEN SUM(spend) > 0 THEN MAX(spend) / SUM(spend) ELSE 0 END AS top_category_share
    FROM lc GROUP BY customer_id
), en AS (
    SELECT customer_id, name, {per_name}, MAX(occurred_at) AS last_at FROM {event}
    WHERE customer_id BETWEEN %s AND %s AND name IN ({names}) AND occurred_at >= %s AND occurred_at < %s
    GROUP BY customer_id, name
), ea AS (
    SELECT customer_id, {", ".join(event_columns)} FROM en GROUP BY customer_id
)
SELECT c.id AS customer_id, c.first_seen_t, oa.orders_all, oa.order_days_all, oa.revenue_all, oa.first_order_t, oa.last_order_t,
       oa.returned_orders, {", ".join(f"oa.orders_{d}d, oa.revenue_{d}d" for d in ORDER_WINDOWS_DAYS)},
       oa.revenue_prev_90d, ga.gap_n, ga.gap_sum_d, ga.gap_sq_sum_d, la.items_all, la.categories,
       la.top_category_share, {event_outputs}
FROM c LEFT JOIN oa ON oa.customer_id = c.id LEFT JOIN ga ON ga.customer_id = c.id
LEFT JOIN la ON la.customer_id = c.id LEFT JOIN ea ON ea.customer_id = c.id
ORDER BY c.id
"""


def read_aggregates(as_of: datetime, first_id: int, last_id: int) -> pd.DataFrame:
    """Return one row of aggregates per customer with an id in [first_id, last_id] known before `as_of`."""
    as_of_t = as_of.timestamp()
    lookback = as_of - timedelta(days=(as_of_t - window_starts(as_of_t)["lookback"]) / 86_400)
    as_of, lookback = _stored(as_of), _stored(lookback)
    params = [first_id, last_id, as_of, first_id, last_id, as_of, first_id, last_id, lookback, as_of]
    with connection.cursor() as cursor:
        cursor.execute(_aggregates_sql(as_of_t), params)
        rows = cursor.fetchall()
    columns = ["customer_id", *aggregate_columns()]
    if not rows:
        return pd.DataFrame({column: pd.Series(dtype=float) for column in columns}).astype({"customer_id": "int64"})
    # Every column is numeric; numpy turns the NULLs of customers without orders or events into NaN
    # far faster than a per-cell DataFrame construction.
    frame = pd.DataFrame(np.array(rows, dtype=np.float64), columns=columns)
    return frame.astype({"customer_id": "int64"})


def read_season_index(cutoff: datetime, horizon_days: int) -> float:
    """Return how busy the horizon after `cutoff` was a year earlier, against that year's average (1.0 when unknown)."""
    year = timedelta(days=SEASON_YEAR_DAYS)
    kept = Order.objects.exclude(status__in=RETURNED_STATUSES)
    first = kept.order_by("placed_at").values_list("placed_at", flat=True).first()
    if first is None or first > cutoff - year:
        return 1.0
    counts = kept.filter(placed_at__gte=cutoff - year, placed_at__lt=cutoff).aggregate(
        window=Count("pk", filter=Q(placed_at__lt=cutoff - year + timedelta(days=horizon_days))), year=Count("pk")
    )
    return season_index(counts["window"], counts["year"], horizon_days)


def read_labels(cutoff: datetime, horizon_days: int, first_id: int, last_id: int) -> set[int]:
    """Return the ids in the range of customers who placed a kept order within `horizon_days` from `cutoff`."""
    ids = (
        Order.objects.filter(
            customer_id__gte=first_id,
            customer_id__lte=last_id,
            placed_at__gte=cutoff,
            placed_at__lt=cutoff + timedelta(days=horizon_days),
        )
        .exclude(status__in=RETURNED_STATUSES)
        .values_list("customer_id", flat=True)
        .distinct()
    )
    return set(ids)


def customer_ids(before: datetime) -> np.ndarray:
    """Return the ids of the customers known before `before`, ascending."""
    return np.fromiter(
        Customer.objects.known_at(before).order_by("pk").values_list("pk", flat=True).iterator(50_000), dtype=np.int64
    )


def id_ranges(ids: np.ndarray, chunk_customers: int, stride: int = 1) -> list[tuple[int, int]]:
    """Split ascending ids into ranges of `chunk_customers` ids each.

    With `stride` > 1, return a deterministic sample instead: every stride-th block of
    `SAMPLE_BLOCK_CUSTOMERS` consecutive customers, one range each. Whole blocks keep every read a
    cheap index range; a sample of scattered ids would scan every customer's rows to keep a few.
    """
    if not len(ids):
        return []
    if stride > 1:
        blocks = (
            ids[start : start + SAMPLE_BLOCK_CUSTOMERS] for start in range(0, len(ids), SAMPLE_BLOCK_CUSTOMERS * stride)
        )
        return [(int(block[0]), int(block[-1])) for block in blocks]
    starts = ids[::chunk_customers]
    ends = np.append(ids[chunk_customers - 1 :: chunk_customers], ids[-1])[: len(starts)]
    return [(int(first), int(last)) for first, last in zip(starts, ends, strict=True)]


def customer_id_ranges(before: datetime, chunk_customers: int, stride: int = 1) -> list[tuple[int, int]]:
    """Split the customers known before `before` into id ranges (see `id_ranges`)."""
    return id_ranges(customer_ids(before), chunk_customers, stride)


def iter_aggregates(as_of: datetime, stride: int = 1) -> Iterator[pd.DataFrame]:
    """Yield aggregates of every customer known before `as_of` (or of a sample), chunk by chunk."""
    for first_id, last_id in customer_id_ranges(as_of, READ_CHUNK_CUSTOMERS, stride):
        yield read_aggregates(as_of, first_id, last_id)


def sensitive_attributes(customer_ids: list[int]) -> pd.DataFrame:
    """Return gender, birth date and country of the customers, for the fairness report only."""
    rows = []
    for start in range(0, len(customer_ids), 10_000):
        rows += Customer.objects.filter(pk__in=customer_ids[start : start + 10_000]).values_list(
            "pk", "gender", "birth_date", "country"
        )
    frame = pd.DataFrame(rows, columns=["customer_id", "gender", "birth_date", "country"])
    return frame.set_index("customer_id")
