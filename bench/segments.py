"""Benchmark: counting and refreshing a four-rule segment against a hand-written SQL count.

    python bench/segments.py --customers 1000000

Fills a fresh PostgreSQL database with N customers, ~10 orders and ~20 events each, generated in
SQL from hashes of the row number (the same N gives the same rows on every run, with times
relative to its start). Then times, on one segment (country in DE/FR, 2+ completed orders in a
year, viewed a product in 30 days, started no checkout in 30 days): Kairos's count, its first
refresh, and a second refresh after 1% of customers changed; and a hand-written `SELECT count(*)`
of the same four predicates. The last line printed is one JSON object with the timings and
refresh_vs_raw = refresh_s / raw_count_s.
"""

import argparse
import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from itertools import zip_longest
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.databases import recreate_database  # noqa: E402 - needs the project root on the path

BENCH_DATABASE = "kairos_bench_segments"
ORDERS_PER_CUSTOMER = 10
EVENTS_PER_CUSTOMER = 20
# Rows per INSERT ... SELECT: ~1-2 s each, small enough to spread over every core.
GENERATE_CHUNK_ROWS = 1_000_000
# One of every CHANGE_MODULUS customers changes country, and another one of them views a product,
# between the two refreshes: 1% of customers in all.
CHANGE_MODULUS = 200

# (value, cumulative share of rows): picked with one width_bucket() on one hash per row.
COUNTRIES = [("DE", 0.125), ("FR", 0.25), ("GB", 0.375), ("US", 0.5), ("NL", 0.625), ("ES", 0.75), ("IT", 0.875), ("PL", 1)]
CONSENT_STATES = [("opted_in", 0.85), ("unknown", 0.95), ("opted_out", 1)]
ORDER_STATUSES = [("completed", 0.90), ("refunded", 0.95), ("cancelled", 0.98), ("pending", 1)]
EVENT_NAMES = [
    ("session_started", 0.25),
    ("product_viewed", 0.55),
    ("cart_added", 0.70),
    ("checkout_started", 0.80),
    ("email_opened", 0.92),
    ("email_clicked", 1),
]

RULES = [
    ("attribute", {"field": "country", "op": "in", "value": ["DE", "FR"]}, False),
    ("purchase", {"measure": "order_count", "op": "at_least", "value": 2, "within_days": 365}, False),
    ("event", {"name": "product_viewed", "op": "at_least", "count": 1, "within_days": 30}, False),
    ("event", {"name": "checkout_started", "op": "at_least", "count": 1, "within_days": 30}, True),
]

# The same four predicates as RULES. Each EXISTS stops at the first row it needs (the OFFSET makes
# "at least two orders" stop at the second); the planner turns the event ones into semi/anti-joins.
RAW_COUNT_SQL = """
SELECT count(*) FROM marketing_customer c
WHERE c.country IN ('DE', 'FR')
  AND EXISTS (
    SELECT 1 FROM marketing_order o
    WHERE o.customer_id = c.id AND o.status = 'completed'
      AND o.placed_at >= %(orders_since)s AND o.placed_at <= %(now)s
    OFFSET 1
  )
  AND EXISTS (
    SELECT 1 FROM marketing_event e
    WHERE e.customer_id = c.id AND e.name = 'product_viewed'
      AND e.occurred_at >= %(events_since)s AND e.occurred_at <= %(now)s
  )
  AND NOT EXISTS (
    SELECT 1 FROM marketing_event e
    WHERE e.customer_id = c.id AND e.name = 'checkout_started'
      AND e.occurred_at >= %(events_since)s AND e.occurred_at <= %(now)s
  )
"""

# A uniform number in [0, 1) from a row number and a salt; inlined by the planner, and the same on
# every run, whatever the chunking.
UNIT_FUNCTION_SQL = """
CREATE FUNCTION bench_unit(n bigint, salt bigint) RETURNS double precision
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT (hashint8extended(n, salt) & 2147483647)::double precision / 2147483648 $$
"""



def _pick(shares: list[tuple[str, float]], salt: int) -> str:
    """Return SQL choosing one of the values with its share, from the row's hash for `salt`."""
    values = ", ".join(f"'{value}'" for value, _ in shares)
    bounds = ", ".join(str(share) for _, share in shares[:-1])
    return f"(ARRAY[{values}])[1 + width_bucket(bench_unit(g, {salt}), ARRAY[{bounds}]::double precision[])]"


def _moment(salt: int, days: int) -> str:
    """Return SQL for a time in the `days` before the anchor that rises with the row number.

    Rows are stored in the order they happened, as in a live shop, so a recent window is a recent
    stretch of the table rather than a few rows on every page.
    """
    return f"%(anchor)s - (%(total)s - g + bench_unit(g, {salt})) / %(total)s * interval '{days} days'"


CUSTOMERS_SQL = f"""
INSERT INTO marketing_customer (id, external_id, email, country, consent_state, consent_at, created_at, updated_at)
SELECT g, 'C' || lpad(g::text, 8, '0'), 'customer' || g || '@example.com', {_pick(COUNTRIES, 1)},
       {_pick(CONSENT_STATES, 2)}, moment, moment, moment
FROM generate_series(%(first)s::bigint, %(last)s::bigint) g, LATERAL (SELECT {_moment(3, 1095)} AS moment) since
"""

ORDERS_SQL = f"""
INSERT INTO marketing_order (external_id, customer_id, placed_at, total, status)
SELECT 'O' || lpad(g::text, 10, '0'), 1 + floor(bench_unit(g, 11) * %(customers)s)::bigint, {_moment(12, 730)},
       round((5 + bench_unit(g, 13) * 495)::numeric, 2), {_pick(ORDER_STATUSES, 14)}
FROM generate_series(%(first)s::bigint, %(last)s::bigint) g
"""

EVENTS_SQL = f"""
INSERT INTO marketing_event (external_id, customer_id, name, occurred_at)
SELECT 'E' || lpad(g::text, 10, '0'), 1 + floor(bench_unit(g, 21) * %(customers)s)::bigint,
       {_pick(EVENT_NAMES, 22)}, {_moment(23, 365)}
FROM generate_series(%(first)s::bigint, %(last)s::bigint) g
"""

GENERATED_TABLES = ["marketing_customer", "marketing_order", "marketing_event"]


def _chunks(total: int) -> list[tuple[int, int]]:
    return [(first, min(first + GENERATE_CHUNK_ROWS - 1, total)) for first in range(1, total + 1, GENERATE_CHUNK_ROWS)]


def _secondary_indexes(conn, table: str) -> list[tuple[str, str, bool]]:
    """Return (name, CREATE INDEX statement, backs a unique constraint) for each non-primary index."""
    return conn.execute(
        """
        SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid),
               EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid AND k.contype = 'u')
        FROM pg_index i WHERE i.indrelid = %s::regclass AND NOT i.indisprimary
        """,
        [table],
    ).fetchall()


def generate(database_url: str, customers: int, anchor: datetime, workers: int) -> float:
    """Fill customers, orders and events; return the seconds it took.

    Secondary indexes are dropped first and built once at the end (a sorted build is several times
    cheaper than keeping them up to date row by row); inserts and index builds run on `workers`
    connections at once, since PostgreSQL runs each INSERT ... SELECT on one core.
    """
    import psycopg

    started = time.perf_counter()

    def connect():
        conn = psycopg.connect(database_url, autocommit=True)
        conn.execute("SET synchronous_commit = off")
        conn.execute("SET maintenance_work_mem = '1GB'")
        return conn

    def run(statement: str, params: dict | None = None) -> None:
        with connect() as conn:
            conn.execute(statement, params)

    with connect() as conn:
        conn.execute(UNIT_FUNCTION_SQL)
        indexes = [(table, *index) for table in GENERATED_TABLES for index in _secondary_indexes(conn, table)]
        for table, name, _, is_constraint in indexes:
            conn.execute(f"ALTER TABLE {table} DROP CONSTRAINT {name}" if is_constraint else f"DROP INDEX {name}")

    tables = [
        [(statement, first, last, total) for first, last in _chunks(total)]
        for statement, total in [
            (CUSTOMERS_SQL, customers),
            (ORDERS_SQL, customers * ORDERS_PER_CUSTOMER),
            (EVENTS_SQL, customers * EVENTS_PER_CUSTOMER),
        ]
    ]
    # Interleaved, so that concurrent inserts mostly extend different tables.
    jobs = [job for round_ in zip_longest(*tables) for job in round_ if job is not None]
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(
            lambda job: run(job[0], {"first": job[1], "last": job[2], "total": job[3], "customers": customers,
                                     "anchor": anchor}),
            jobs,
        ))
    inserted_s = time.perf_counter() - started

    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(lambda index: run(index[2]), indexes))
    with connect() as conn:
        for table, name, _, is_constraint in indexes:
            if is_constraint:
                conn.execute(f"ALTER TABLE {table} ADD CONSTRAINT {name} UNIQUE USING INDEX {name}")
        conn.execute("SELECT setval(pg_get_serial_sequence('marketing_customer', 'id'), %s)", [customers])
        conn.execute("DROP FUNCTION bench_unit")
    indexed_s = time.perf_counter() - started - inserted_s

    # VACUUM sets hint bits and the visibility map now, so neither side pays for them in the timings
    # and index-only scans are possible.
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(lambda table: run(f"VACUUM (ANALYZE) {table}"), GENERATED_TABLES))
    elapsed = time.perf_counter() - started
    print(
        f"generated {customers:,} customers, {customers * ORDERS_PER_CUSTOMER:,} orders, "
        f"{customers * EVENTS_PER_CUSTOMER:,} events in {elapsed:.1f}s (insert {inserted_s:.1f}s, "
        f"indexes {indexed_s:.1f}s, vacuum {elapsed - inserted_s - indexed_s:.1f}s)",
        flush=True,
    )
    return elapsed


def raw_count(now: datetime) -> tuple[int, float]:
    """Return the hand-written query's count and the seconds it took."""
    from django.db import connection

    params = {"now": now, "orders_since": now - timedelta(days=365), "events_since": now - timedelta(days=30)}
    with connection.cursor() as cursor:
        started = time.perf_counter()
        cursor.execute(RAW_COUNT_SQL, params)
        count = cursor.fetchone()[0]
        return count, time.perf_counter() - started


def change_one_percent(now: datetime) -> tuple[int, int]:
    """Move some customers out of (or into) DE/FR and give as many a product view; return both counts."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE marketing_customer SET country = CASE WHEN country IN ('DE', 'FR') THEN 'GB' ELSE 'DE' END, "
            "updated_at = %s WHERE id %% %s = 0",
            [now, CHANGE_MODULUS],
        )
        moved = cursor.rowcount
        cursor.execute(
            "INSERT INTO marketing_event (external_id, customer_id, name, occurred_at) "
            "SELECT 'bench-view-' || id, id, 'product_viewed', %s FROM marketing_customer WHERE id %% %s = %s",
            [now - timedelta(hours=1), CHANGE_MODULUS, CHANGE_MODULUS // 2],
        )
        return moved, cursor.rowcount


def timed(function, *args):
    started = time.perf_counter()
    result = function(*args)
    return result, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2, help="connections generating at once")
    parser.add_argument("--server", default=os.environ.get("BENCH_POSTGRES", "postgres://postgres@127.0.0.1:5432"))
    args = parser.parse_args()

    database_url = recreate_database(args.server, BENCH_DATABASE)
    os.environ["DATABASE_URL"] = database_url
    os.environ.setdefault("SECRET_KEY", "kairos-benchmark-only-secret-key-0123456789abcdefghijklmnop")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "marketing.settings")
    import django

    django.setup()
    from django.core.management import call_command

    import marketing.segments.rule_types  # noqa: F401  (registers the built-in rule types)
    from marketing.models import Match, Segment, SegmentRule
    from marketing.segments.compiler import RuleSpec, matching_customers
    from marketing.segments.refresh import preview, refresh_segment

    call_command("migrate", verbosity=0)
    # Whole seconds, so that the generated rows and every window below line up on one instant.
    now = datetime.now(UTC).replace(microsecond=0)
    generate_s = generate(database_url, args.customers, now, args.workers)

    segment = Segment.objects.create(name="Bench: DE/FR repeat buyers browsing, not checking out", match=Match.ALL)
    SegmentRule.objects.bulk_create(
        SegmentRule(segment=segment, position=position, type=rule_type, config=config, negate=negate)
        for position, (rule_type, config, negate) in enumerate(RULES)
    )
    specs = [RuleSpec(rule_type, config, negate) for rule_type, config, negate in RULES]

    # One untimed run brings the tables into shared buffers, so neither side pays for a cold cache.
    raw_count(now)
    raw, raw_count_s = raw_count(now)
    count, count_s = timed(lambda: matching_customers(Match.ALL, specs, now).count())
    first, refresh_s = timed(refresh_segment, segment.pk, now)
    print(f"raw count {raw:,} in {raw_count_s:.3f}s; Kairos count {count:,} in {count_s:.3f}s; "
          f"first refresh {first.size:,} members ({first.entered:,} entered) in {refresh_s:.3f}s", flush=True)
    assert raw == count == first.size == segment.memberships.count(), (raw, count, first)

    moved, viewed = change_one_percent(now)
    second, incremental_refresh_s = timed(refresh_segment, segment.pk, now)
    changed_raw, _ = raw_count(now)
    print(f"changed the country of {moved:,} customers and added a product view for {viewed:,}; second refresh "
          f"{second.size:,} members (+{second.entered:,} -{second.exited:,}) in {incremental_refresh_s:.3f}s; "
          f"raw count now {changed_raw:,}", flush=True)
    assert changed_raw == second.size == segment.memberships.count(), (changed_raw, second)
    shown, preview_s = timed(preview, Match.ALL, specs, segment.pk, now)
    assert (shown.count, shown.entering, shown.leaving) == (changed_raw, 0, 0), shown

    print(json.dumps({
        "customers": args.customers,
        "count_s": round(count_s, 3),
        "refresh_s": round(refresh_s, 3),
        "incremental_refresh_s": round(incremental_refresh_s, 3),
        "raw_count_s": round(raw_count_s, 3),
        "refresh_vs_raw": round(refresh_s / raw_count_s, 2),
        "count_vs_raw": round(count_s / raw_count_s, 2),
        "preview_s": round(preview_s, 3),
        "members": first.size,
        "generate_s": round(generate_s, 1),
    }))


if __name__ == "__main__":
    main()
