"""A large synthetic shop written straight into PostgreSQL with COPY, for the propensity benchmark.

    python bench/synthetic_store.py --customers 1000000 --database kairos_bench_synth

Each customer has a latent order rate (lognormal) and a lifetime (exponential) after which they
stop buying and mostly stop browsing, as in the Pareto/NBD model. Whether a customer buys in the
last 90 days before `as_of` is therefore predictable from earlier frequency, recency and
engagement, but far from certain. Browsing, carts and checkouts cluster in the days before each
order; e-mail opens and clicks follow engagement. Country, gender and age shift the order rate
by at most ~10%, so a fairness report on them should be unremarkable. The same seed gives the
same rows.
"""

import argparse
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import psycopg
from psycopg import sql
from psycopg.copy import QueuedLibpqWriter

ROOT = Path(__file__).resolve().parent.parent

DAY_S = 86_400
YEAR_DAYS = 365.25
# Rows per COPY write: 15-30 MB of text, ~1 s to format, queued while the server parses the last one.
COPY_CHUNK_ROWS = 250_000
PRE_HISTORY_SHARE = 0.3
PRE_HISTORY_DAYS = 730
SIGNUP_ORDER_SHARE = 0.45
MEDIAN_ORDERS_PER_YEAR = 2.6
ORDER_RATE_SIGMA = 1.2
MAX_ORDERS_PER_YEAR = 52.0
MEAN_LIFETIME_DAYS = 500.0
RATE_BLOCK_DAYS = 60
RATE_DRIFT_SIGMA = 0.6
BROWSE_SESSIONS_PER_YEAR = 0.9
EMAIL_OPENS_PER_YEAR = 1.1
AFTER_CHURN_ACTIVITY = 0.25

# (code, locale, timezone, share, order-rate log shift): mild on purpose.
COUNTRIES = [
    ("DE", "de-DE", "Europe/Berlin", 0.34, 0.05),
    ("FR", "fr-FR", "Europe/Paris", 0.18, -0.05),
    ("NL", "nl-NL", "Europe/Amsterdam", 0.12, 0.08),
    ("AT", "de-AT", "Europe/Vienna", 0.10, 0.0),
    ("ES", "es-ES", "Europe/Madrid", 0.10, -0.08),
    ("IT", "it-IT", "Europe/Rome", 0.09, -0.03),
    ("BE", "fr-BE", "Europe/Brussels", 0.07, 0.02),
]
# (stored value, share, order-rate log shift); "" is unknown.
GENDERS = [("female", 0.47, 0.06), ("male", 0.42, -0.04), ("", 0.11, 0.0)]
CONSENT_STATES = [("opted_in", 0.86), ("unknown", 0.09), ("opted_out", 0.05)]
ORDER_STATUSES = [("completed", 0.94), ("cancelled", 0.03), ("refunded", 0.03)]
# Female names first, then as many male ones.
FIRST_NAMES = ["Anna", "Marie", "Sophie", "Lena", "Julia", "Emma", "Laura", "Clara", "Lucia", "Eva", "Lukas", "Jan",
               "Thomas", "Paul", "Luca", "Hugo", "Pablo", "Marco", "Daan", "Felix"]  # fmt: skip
LAST_NAMES = ["Müller", "Schmidt", "Martin", "Bernard", "Jansen", "Bakker", "García", "Rossi", "Peeters", "Huber"]
CATEGORIES = ["Shoes", "Jackets", "Shirts", "Trousers", "Dresses", "Bags", "Jewellery", "Sport", "Home", "Beauty"]
PRODUCTS = 200
EVENT_NAMES = ["product_viewed", "cart_added", "checkout_started", "email_opened", "email_clicked", "session_started"]
VIEWED, CART, CHECKOUT, OPENED, CLICKED, SESSION = range(len(EVENT_NAMES))


@dataclass(frozen=True)
class Clock:
    """Turns epoch seconds into the date and time halves of a timestamp, by table lookup."""

    first_day_s: int
    dates: np.ndarray
    times: np.ndarray

    @classmethod
    def spanning(cls, first_s: int, last_s: int) -> "Clock":
        first_day_s = first_s - first_s % DAY_S
        days = np.arange(first_day_s, last_s + DAY_S, DAY_S).astype("datetime64[s]").astype("datetime64[D]")
        times = [f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}" for s in range(DAY_S)]
        return cls(first_day_s, days.astype(str).astype(object), np.array(times, dtype=object))

    def split(self, epoch_s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Return the date strings and time strings of UTC epoch seconds."""
        offset = epoch_s - self.first_day_s
        return self.dates[offset // DAY_S], self.times[offset % DAY_S]


def copy_rows(cursor: psycopg.Cursor, table: str, columns: str, template: str, values: Sequence[np.ndarray]) -> int:
    """COPY rows formatted by `template` from parallel columns of values; return the row count."""
    rows = len(values[0])
    # The queued writer sends from a worker thread, so the server parses one chunk while we format the next.
    with cursor.copy(f"COPY {table} ({columns}) FROM STDIN", writer=QueuedLibpqWriter(cursor)) as copy:
        for begin in range(0, rows, COPY_CHUNK_ROWS):
            chunk = [column[begin : begin + COPY_CHUNK_ROWS].tolist() for column in values]
            copy.write("".join(map(template.format, *chunk)).encode())
    return rows


def pick(rng: np.random.Generator, weights: Sequence[float], size: int) -> np.ndarray:
    """Draw `size` indexes into `weights`, which sum to 1."""
    return rng.choice(len(weights), size=size, p=weights)


def scatter_in_windows(
    rng: np.random.Generator, starts: np.ndarray, ends: np.ndarray | int, per_day: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Draw a Poisson process in each [start, end) window; return the owners' indexes and times in seconds."""
    lengths = np.clip(ends - starts, 0, None)
    counts = rng.poisson(per_day * lengths / DAY_S)
    owners = np.repeat(np.arange(len(starts)), counts)
    times = starts[owners] + (rng.random(len(owners)) * lengths[owners]).astype(np.int64)
    return owners, times


def suspend_secondary_structures(cursor: psycopg.Cursor, tables: Sequence[str]) -> list[str]:
    """Drop foreign keys and constraint-free indexes on `tables`; return the statements that restore them.

    Building such an index once after the load costs about half of keeping it up to date row by row,
    and re-adding a foreign key checks it with one join instead of a trigger per row (Django makes
    them deferred, so those would all run at commit). Primary keys and unique constraints stay.
    """
    cursor.execute(
        "SELECT format('DROP INDEX %%I.%%I', n.nspname, c.relname), pg_get_indexdef(i.indexrelid)"
        " FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE i.indrelid = ANY(%(tables)s::regclass[]) AND NOT EXISTS"
        " (SELECT FROM pg_constraint k WHERE k.conindid = i.indexrelid AND k.conrelid = i.indrelid)"
        " UNION ALL SELECT format('ALTER TABLE %%s DROP CONSTRAINT %%I', conrelid::regclass, conname),"
        " format('ALTER TABLE %%s ADD CONSTRAINT %%I %%s', conrelid::regclass, conname, pg_get_constraintdef(oid))"
        " FROM pg_constraint WHERE contype = 'f' AND conrelid = ANY(%(tables)s::regclass[])",
        {"tables": list(tables)},
    )
    structures = cursor.fetchall()
    for drop, _ in structures:
        cursor.execute(drop)
    return [restore for _, restore in structures]


@dataclass(frozen=True)
class Audience:
    """Per-customer arrays that drive behaviour, indexed by customer id - 1; times in epoch seconds."""

    created: np.ndarray
    opted_in: np.ndarray
    rate: np.ndarray  # orders per year while active, before drift
    engagement: np.ndarray  # scales browsing and e-mail activity
    active_from: np.ndarray  # sign-up, or the start of the history
    active_to: np.ndarray  # churn, or as_of
    dormant_from: np.ndarray  # from here to as_of: a little browsing and e-mail, no orders


def write_customers(
    cursor: psycopg.Cursor, rng: np.random.Generator, n: int, start_s: int, end_s: int, clock: Clock
) -> Audience:
    """Write customers with ids 1..n, some created before `start_s`, and draw their latent behaviour."""
    before = start_s - rng.random(n) * PRE_HISTORY_DAYS * DAY_S
    during = start_s + rng.random(n) * (end_s - start_s - DAY_S)
    created = np.where(rng.random(n) < PRE_HISTORY_SHARE, before, during).astype(np.int64)
    created.sort()  # ids follow sign-up order, as in a real shop
    country = pick(rng, [c[3] for c in COUNTRIES], n)
    gender = pick(rng, [g[1] for g in GENDERS], n)
    consent = pick(rng, [c[1] for c in CONSENT_STATES], n)
    age_years = np.minimum(18 + rng.gamma(4.0, 6.0, n), 90)
    birth_day = created // DAY_S - (age_years * YEAR_DAYS).astype(np.int64)
    birth_dates = np.where(rng.random(n) < 0.8, birth_day.astype("datetime64[D]").astype(str).astype(object), "\\N")
    male_name = (gender == 1) | ((gender == 2) & (rng.random(n) < 0.5))
    half = len(FIRST_NAMES) // 2
    first_names = np.array(FIRST_NAMES, dtype=object)[rng.integers(0, half, n) + male_name * half]
    last_names = np.array(LAST_NAMES, dtype=object)[rng.integers(0, len(LAST_NAMES), n)]
    code, locale, zone = (np.array([row[i] for row in COUNTRIES], dtype=object)[country] for i in range(3))
    date, hms = clock.split(created)
    copy_rows(
        cursor, "marketing_customer",
        "id, external_id, email, email_hash, first_name, last_name, locale, timezone, country, birth_date, gender, "
        "attributes, consent_state, signed_up_at, first_seen_at, created_at, updated_at",
        "{0}\tC{0:07d}\tc{0:07d}@example.test\t\t{1}\t{2}\t{3}\t{4}\t{5}\t{6}\t{7}\t{{}}\t{8}"
        "\t{9} {10}+00\t{9} {10}+00\t{9} {10}+00\t{9} {10}+00\n",
        [np.arange(1, n + 1), first_names, last_names, locale, zone, code, birth_dates,
         np.array([g[0] for g in GENDERS], dtype=object)[gender],
         np.array([c[0] for c in CONSENT_STATES], dtype=object)[consent], date, hms],
    )  # fmt: skip

    shift = (np.array([c[4] for c in COUNTRIES])[country] + np.array([g[2] for g in GENDERS])[gender]
             + np.clip((age_years - 40) * 0.004, -0.08, 0.08))  # fmt: skip
    rate = np.minimum(MEDIAN_ORDERS_PER_YEAR * np.exp(rng.normal(0, ORDER_RATE_SIGMA, n) + shift), MAX_ORDERS_PER_YEAR)
    engagement = np.sqrt(rate) * rng.lognormal(0, 0.5, n)
    churned = created + (rng.exponential(MEAN_LIFETIME_DAYS, n) * DAY_S).astype(np.int64)
    active_from, active_to = np.maximum(created, start_s), np.minimum(churned, end_s)
    dormant_from = np.maximum(active_to, active_from)
    return Audience(created, consent == 0, rate, engagement, active_from, active_to, dormant_from)


def write_products(cursor: psycopg.Cursor, rng: np.random.Generator, start_s: int, clock: Clock) -> np.ndarray:
    """Write PRODUCTS products, PRODUCTS // len(CATEGORIES) per category; return their prices in cents."""
    ids = np.arange(1, PRODUCTS + 1)
    category = (ids - 1) * len(CATEGORIES) // PRODUCTS
    base_cents = np.exp(np.linspace(np.log(1500), np.log(9000), len(CATEGORIES)))[rng.permutation(len(CATEGORIES))]
    cents = (base_cents[category] * rng.lognormal(0, 0.4, PRODUCTS)).astype(np.int64) // 100 * 100 + 99
    date, hms = clock.split(np.full(PRODUCTS, start_s - 30 * DAY_S))
    copy_rows(
        cursor, "marketing_product", "id, sku, name, category, price, currency, url, created_at, updated_at",
        "{0}\tSKU-{0:05d}\t{1} no. {0}\t{1}\t{2}.{3:02d}\tEUR\thttps://shop.example.test/p/{0}\t{4} {5}+00\t{4} {5}+00\n",
        [ids, np.array(CATEGORIES, dtype=object)[category], cents // 100, cents % 100, date, hms],
    )  # fmt: skip
    return cents


def draw_orders(
    rng: np.random.Generator, audience: Audience, start_s: int, end_s: int
) -> tuple[np.ndarray, np.ndarray]:
    """Return the customer index and time of every order, in time order.

    Half of those who sign up during the history buy at once; after that, orders follow a Poisson
    process at the customer's rate, which drifts from one RATE_BLOCK_DAYS block to the next so that
    the past predicts the future imperfectly, until the customer churns.
    """
    customers = len(audience.created)
    blocks = -(-(end_s - start_s) // (RATE_BLOCK_DAYS * DAY_S))
    edges = np.minimum(start_s + np.arange(blocks + 1) * RATE_BLOCK_DAYS * DAY_S, end_s)
    drift = rng.lognormal(-(RATE_DRIFT_SIGMA**2) / 2, RATE_DRIFT_SIGMA, (customers, blocks))
    owners, placed = scatter_in_windows(
        rng,
        np.maximum(audience.active_from[:, None], edges[:-1]).ravel(),
        np.minimum(audience.active_to[:, None], edges[1:]).ravel(),
        (audience.rate[:, None] * drift).ravel() / YEAR_DAYS,
    )
    signup = np.flatnonzero((audience.created >= start_s) & (rng.random(customers) < SIGNUP_ORDER_SHARE))
    owners = np.concatenate([owners // blocks, signup])
    placed = np.concatenate([placed, audience.created[signup] + rng.integers(60, 6 * 3600, len(signup))])
    by_time = np.argsort(placed, kind="stable")
    return owners[by_time], placed[by_time]


def draw_events(
    rng: np.random.Generator, audience: Audience, owners: np.ndarray, placed: np.ndarray, lead: np.ndarray, end_s: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Return customer index, time, name index and product id (0: none) of every event, in time order.

    A funnel leads up to each order (`lead` is its first product), closer to the order the further
    down the funnel; browsing follows engagement while active and a little after churn; e-mail opens
    and clicks come only to customers who opted in.
    """
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
    for name, mean_days, share in [(VIEWED, 3.0, 1.0), (SESSION, 1.0, 0.3), (CART, 0.5, 0.5), (CHECKOUT, 0.02, 0.35)]:
        chosen = np.flatnonzero(rng.random(len(owners)) < share)
        at = placed[chosen] - (rng.exponential(mean_days, len(chosen)) * DAY_S).astype(np.int64) - 1
        at = np.maximum(at, audience.active_from[owners[chosen]])
        shown = lead[chosen] + 1 if name in (VIEWED, CART) else np.zeros(len(chosen), np.int64)
        parts.append((owners[chosen], at, np.full(len(chosen), name), shown))
    windows = [(1.0, audience.active_from, audience.active_to), (AFTER_CHURN_ACTIVITY, audience.dormant_from, end_s)]
    for scale, starts, ends in windows:
        per_day = scale * audience.engagement / YEAR_DAYS
        who, at = scatter_in_windows(rng, starts, ends, per_day * BROWSE_SESSIONS_PER_YEAR)
        name = pick(rng, [0.4, 0.1, 0.0, 0.0, 0.0, 0.5], len(who))
        parts.append((who, at, name, np.where(name <= CART, rng.integers(1, PRODUCTS + 1, len(who)), 0)))
        who, at = scatter_in_windows(rng, starts, ends, np.where(audience.opted_in, per_day * EMAIL_OPENS_PER_YEAR, 0))
        clicked = np.flatnonzero(rng.random(len(who)) < 0.3)
        click_at = np.minimum(at[clicked] + rng.integers(5, 3600, len(clicked)), end_s - 1)
        parts.append((who, at, np.full(len(who), OPENED), np.zeros(len(who), np.int64)))
        parts.append((who[clicked], click_at, np.full(len(clicked), CLICKED), np.zeros(len(clicked), np.int64)))
    who, at, name, shown = (np.concatenate(column) for column in zip(*parts, strict=True))
    by_time = np.argsort(at, kind="stable")
    return who[by_time], at[by_time], name[by_time], shown[by_time]


def write_store(
    conn: psycopg.Connection, customers: int, seed: int, as_of: datetime, days: int = 365
) -> dict[str, int]:
    """Write a synthetic shop of `customers` customers whose history ends at `as_of`; return the row counts.

    The tables must be migrated and empty. Ids are set explicitly and the sequences moved past them;
    all is written in one transaction, and the tables are analysed at the end.
    """
    rng = np.random.default_rng(seed)
    end_s = int(as_of.replace(tzinfo=as_of.tzinfo or UTC).timestamp())  # a naive as_of is taken as UTC
    start_s = end_s - days * DAY_S
    clock = Clock.spanning(start_s - PRE_HISTORY_DAYS * DAY_S, end_s)
    tables = ["marketing_customer", "marketing_product", "marketing_order", "marketing_orderline", "marketing_event"]
    with conn.transaction(), conn.cursor() as cursor:
        # Enough to sort the largest index in memory when it is rebuilt (~0.5 GB at 1M customers).
        cursor.execute("SET LOCAL maintenance_work_mem = '1GB'")
        restore = suspend_secondary_structures(cursor, tables)
        audience = write_customers(cursor, rng, customers, start_s, end_s, clock)
        prices = write_products(cursor, rng, start_s, clock)
        owners, placed = draw_orders(rng, audience, start_s, end_s)
        orders = len(placed)

        # Lines: distinct products per order (a per-order stride from the first, the "lead"), the
        # lead usually from the customer's favourite category.
        lines_per_order = 1 + rng.binomial(2, 0.35, orders)
        line_order = np.repeat(np.arange(orders), lines_per_order)
        first_line = np.cumsum(lines_per_order) - lines_per_order
        position = np.arange(len(line_order)) - first_line[line_order]
        per_category = PRODUCTS // len(CATEGORIES)
        favourite = rng.integers(0, len(CATEGORIES), customers)[owners]
        category = np.where(rng.random(orders) < 0.6, favourite, rng.integers(0, len(CATEGORIES), orders))
        lead = category * per_category + np.minimum(rng.geometric(0.15, orders) - 1, per_category - 1)
        product = (lead[line_order] + position * rng.integers(1, PRODUCTS // 3, orders)[line_order]) % PRODUCTS
        quantity = 1 + (rng.random(len(line_order)) < 0.15) + (rng.random(len(line_order)) < 0.05)
        unit_cents = prices[product]
        total_cents = np.add.reduceat(quantity * unit_cents, first_line) if orders else np.zeros(0, np.int64)
        status = pick(rng, [s[1] for s in ORDER_STATUSES], orders)
        date, hms = clock.split(placed)
        copy_rows(
            cursor, "marketing_order",
            "id, external_id, customer_id, placed_at, total, currency, status, created_at, updated_at",
            "{0}\tO{0:09d}\t{1}\t{2} {3}+00\t{4}.{5:02d}\tEUR\t{6}\t{2} {3}+00\t{2} {3}+00\n",
            [np.arange(1, orders + 1), owners + 1, date, hms, total_cents // 100, total_cents % 100,
             np.array([s[0] for s in ORDER_STATUSES], dtype=object)[status]],
        )  # fmt: skip
        copy_rows(
            cursor, "marketing_orderline", "id, order_id, product_id, quantity, unit_price",
            "{0}\t{1}\t{2}\t{3}\t{4}.{5:02d}\n",
            [np.arange(1, len(line_order) + 1), line_order + 1, product + 1, quantity, unit_cents // 100,
             unit_cents % 100],
        )  # fmt: skip

        who, occurred, name, shown = draw_events(rng, audience, owners, placed, lead, end_s)
        properties = np.array(["{}"] + [f'{{"product_id": {p}}}' for p in range(1, PRODUCTS + 1)], dtype=object)
        date, hms = clock.split(occurred)
        copy_rows(
            cursor, "marketing_event", "id, external_id, customer_id, name, occurred_at, properties, created_at",
            "{0}\tE{0:010d}\t{1}\t{2}\t{3} {4}+00\t{5}\t{3} {4}+00\n",
            [np.arange(1, len(occurred) + 1), who + 1, np.array(EVENT_NAMES, dtype=object)[name], date, hms,
             properties[shown]],
        )  # fmt: skip

        counts = {"customers": customers, "products": PRODUCTS, "orders": orders,
                  "order_lines": len(line_order), "events": len(occurred)}  # fmt: skip
        for statement in restore:
            cursor.execute(statement)
        for table, rows in zip(tables, counts.values(), strict=True):
            cursor.execute("SELECT setval(pg_get_serial_sequence(%s, 'id'), %s, %s)", [table, max(rows, 1), rows > 0])
            cursor.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(table)))
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--database", default="kairos_bench_synth")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--as-of", type=datetime.fromisoformat, default=datetime(2026, 11, 1, tzinfo=UTC))
    parser.add_argument("--server", default=os.environ.get("BENCH_POSTGRES", "postgres://postgres@127.0.0.1:5432"))
    args = parser.parse_args()

    with psycopg.connect(f"{args.server}/postgres", autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(args.database)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(args.database)))
    os.environ["DATABASE_URL"] = f"{args.server}/{args.database}"
    os.environ["DEBUG"] = "1"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "marketing.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    with psycopg.connect(os.environ["DATABASE_URL"]) as conn:
        started = time.perf_counter()
        counts = write_store(conn, args.customers, args.seed, args.as_of, args.days)
        seconds = time.perf_counter() - started
    print(", ".join(f"{rows:,} {name}" for name, rows in counts.items()), f"in {seconds:.1f}s", flush=True)


if __name__ == "__main__":
    main()
