"""Benchmark: train the recommender on a generated store, then store every customer's picks through Celery.

    python bench/recommend.py --customers 1000000 --products 10000

Writes a synthetic shop into a fresh PostgreSQL database with COPY: customers (the propensity bench's),
a catalogue of `--products` in 100 categories, a year of orders whose lines follow each customer's
favourite category and each product's few complements, and product views before each order and while
browsing. Then it trains a recommender through `train_recommender` (one read of a year and a month of
interactions, tuning, the judged window with both baselines, the refit) and starts a recommendation
run that real Celery prefork workers on Redis finish: every chunk's read, picks and COPY.

`total_s` is training plus the run; `peak_rss_mb` the largest resident memory of this process and the
workers' process tree together, sampled during the run. As the raw baseline, the same picks are
computed in this process straight from the arrays already in memory, with no database or broker
(`raw_s`); `e2e_vs_raw` is the run's rate divided by that one. The last line printed is one JSON object.
"""

import argparse
import json
import os
import resource
import signal
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.databases import recreate_database  # noqa: E402 - needs the project root on the path
from bench.workers import start_worker  # noqa: E402 - needs the project root on the path

BENCH_DATABASE = "kairos_bench_recommend"
BROKER_DB = 14
DAY_S = 86_400
CATEGORIES = 100
COMPLEMENTS = 3  # products each product is usually bought with
COMPLEMENT_SHARE = 0.7
VIEWS_BEFORE_ORDER = 2
BROWSING_VIEWS_PER_YEAR = 1.5
OUT_OF_STOCK_SHARE = 0.03
RSS_SAMPLE_S = 0.2


def write_catalogue_and_history(conn, customers: int, products: int, seed: int, as_of: datetime) -> dict[str, int]:
    """Write customers, products, orders, lines and product views; return the row counts."""
    from bench.synthetic_store import (
        Clock,
        copy_rows,
        draw_orders,
        scatter_in_windows,
        suspend_secondary_structures,
        write_customers,
    )

    rng = np.random.default_rng(seed)
    end_s = int(as_of.timestamp())
    start_s = end_s - 400 * DAY_S
    clock = Clock.spanning(start_s - 800 * DAY_S, end_s)
    tables = ["marketing_customer", "marketing_product", "marketing_order", "marketing_orderline", "marketing_event"]
    with conn.transaction(), conn.cursor() as cursor:
        cursor.execute("SET LOCAL maintenance_work_mem = '1GB'")
        restore = suspend_secondary_structures(cursor, tables)
        audience = write_customers(cursor, rng, customers, start_s, end_s, clock)

        ids = np.arange(1, products + 1)
        category = (ids - 1) * CATEGORIES // products
        per_category = np.bincount(category, minlength=CATEGORIES)
        first_of = np.concatenate([[0], np.cumsum(per_category)[:-1]])
        cents = (rng.lognormal(np.log(3000), 0.6, products)).astype(np.int64) // 100 * 100 + 99
        in_stock = np.where(rng.random(products) < OUT_OF_STOCK_SHARE, "f", "t").astype(object)
        date, hms = clock.split(np.full(products, start_s - 30 * DAY_S))
        copy_rows(
            cursor, "marketing_product",
            "id, sku, name, category, price, currency, url, image_url, description, in_stock, created_at, updated_at",
            "{0}\tSKU-{0:06d}\tProduct {0}\tCategory {1}\t{2}.{3:02d}\tEUR\thttps://shop.example.test/p/{0}"
            "\thttps://shop.example.test/i/{0}.jpg\t\t{4}\t{5} {6}+00\t{5} {6}+00\n",
            [ids, category, cents // 100, cents % 100, in_stock, date, hms],
        )  # fmt: skip

        # Complements: a few products of the same category, fixed per product.
        offsets = rng.integers(1, np.maximum(per_category[category], 2)[:, None], (products, COMPLEMENTS))
        complements = first_of[category][:, None] + (ids[:, None] - 1 - first_of[category][:, None] + offsets) % (
            per_category[category][:, None]
        )

        owners, placed = draw_orders(rng, audience, start_s, end_s)
        orders = len(placed)
        favourite = rng.zipf(1.3, customers) % CATEGORIES
        chosen_category = np.where(rng.random(orders) < 0.7, favourite[owners], rng.integers(0, CATEGORIES, orders))
        rank = np.minimum(rng.geometric(0.04, orders) - 1, per_category[chosen_category] - 1)
        lead = first_of[chosen_category] + rank
        lines_per_order = 1 + rng.binomial(2, 0.4, orders)
        line_order = np.repeat(np.arange(orders), lines_per_order)
        first_line = np.cumsum(lines_per_order) - lines_per_order
        position = np.arange(len(line_order)) - first_line[line_order]
        partner = complements[lead[line_order], rng.integers(0, COMPLEMENTS, len(line_order))]
        wander = first_of[chosen_category[line_order]] + rng.integers(0, 10**9, len(line_order)) % per_category[
            chosen_category[line_order]
        ]
        product = np.where(
            position == 0, lead[line_order], np.where(rng.random(len(line_order)) < COMPLEMENT_SHARE, partner, wander)
        )
        # One line per product and order: a repeated product would break the (order, product) key.
        line_key = line_order.astype(np.int64) * products + product
        _, unique_lines = np.unique(line_key, return_index=True)
        unique_lines.sort()
        line_order, product = line_order[unique_lines], product[unique_lines]
        unit = cents[product]
        total = np.bincount(line_order, weights=unit, minlength=orders).astype(np.int64)
        date, hms = clock.split(placed)
        copy_rows(
            cursor, "marketing_order",
            "id, external_id, customer_id, placed_at, total, currency, status, created_at, updated_at",
            "{0}\tO{0:09d}\t{1}\t{2} {3}+00\t{4}.{5:02d}\tEUR\tcompleted\t{2} {3}+00\t{2} {3}+00\n",
            [np.arange(1, orders + 1), owners + 1, date, hms, total // 100, total % 100],
        )  # fmt: skip
        copy_rows(
            cursor, "marketing_orderline", "id, order_id, product_id, quantity, unit_price",
            "{0}\t{1}\t{2}\t1\t{3}.{4:02d}\n",
            [np.arange(1, len(line_order) + 1), line_order + 1, product + 1, unit // 100, unit % 100],
        )  # fmt: skip

        # Views: the lead and one of its complements in the days before each order, and some browsing.
        view_order = np.repeat(np.arange(orders), VIEWS_BEFORE_ORDER)
        viewed = np.where(
            np.arange(len(view_order)) % VIEWS_BEFORE_ORDER == 0,
            lead[view_order],
            complements[lead[view_order], rng.integers(0, COMPLEMENTS, len(view_order))],
        )
        view_at = placed[view_order] - (rng.exponential(2.0, len(view_order)) * DAY_S).astype(np.int64) - 1
        who, browse_at = scatter_in_windows(
            rng, audience.active_from, audience.active_to, np.full(customers, BROWSING_VIEWS_PER_YEAR / 365.25)
        )
        browse_category = favourite[who]
        browsed = first_of[browse_category] + np.minimum(
            rng.geometric(0.04, len(who)) - 1, per_category[browse_category] - 1
        )
        viewers = np.concatenate([owners[view_order], who])
        at = np.maximum(np.concatenate([view_at, browse_at]), start_s - 800 * DAY_S + 1)
        items = np.concatenate([viewed, browsed])
        date, hms = clock.split(at)
        copy_rows(
            cursor, "marketing_event", "id, external_id, customer_id, name, occurred_at, properties, created_at",
            '{0}\tV{0:010d}\t{1}\tproduct_viewed\t{2} {3}+00\t{{"sku": "SKU-{4:06d}"}}\t{2} {3}+00\n',
            [np.arange(1, len(at) + 1), viewers + 1, date, hms, items + 1],
        )  # fmt: skip
        counts = {
            "customers": customers,
            "products": products,
            "orders": orders,
            "order_lines": len(line_order),
            "events": len(at),
        }
        for statement in restore:
            cursor.execute(statement)
        for table, rows in zip(tables, counts.values(), strict=True):
            cursor.execute("SELECT setval(pg_get_serial_sequence(%s, 'id'), %s, %s)", [table, max(rows, 1), rows > 0])
    return counts


def tree_rss_mb(pid: int) -> float:
    """Return the resident memory of a process and its living descendants, in MB (Linux /proc)."""
    total_kb = 0
    pending = [pid]
    while pending:
        current = pending.pop()
        try:
            status = Path(f"/proc/{current}/status").read_text()
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except FileNotFoundError:
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                total_kb += int(line.split()[1])
        pending.extend(int(child) for child in children)
    return total_kb / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--products", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2, help="Prefork worker processes.")
    parser.add_argument("--server", default=os.environ.get("BENCH_POSTGRES", "postgres://postgres@127.0.0.1:5432"))
    parser.add_argument("--redis", default=os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6379"))
    args = parser.parse_args()
    if args.customers < 1 or args.products < CATEGORIES:
        raise SystemExit(f"--customers must be at least 1 and --products at least {CATEGORIES}")

    broker = f"{args.redis}/{BROKER_DB}"
    os.environ["DATABASE_URL"] = recreate_database(args.server, BENCH_DATABASE)
    os.environ["CELERY_BROKER_URL"] = broker
    os.environ["CELERY_RESULT_BACKEND"] = broker
    os.environ.setdefault("SECRET_KEY", "kairos-benchmark-only-secret-key-0123456789abcdefghijklmnop")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "marketing.settings")
    import django

    django.setup()
    import redis
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection

    from ml.models import Recommendation, RunStatus, ScoringRun
    from ml.recommend_queries import read_catalogue, read_interactions
    from ml.recommend_registry import RecommenderOptions, activate_recommender, recommender_for, train_recommender
    from ml.recommend_runs import start_recommendation_run

    redis.Redis.from_url(broker).flushdb()
    call_command("migrate", verbosity=0)
    as_of = datetime(2026, 11, 1, tzinfo=UTC)
    started = time.perf_counter()
    with connection.cursor() as cursor:
        counts = write_catalogue_and_history(cursor.connection, args.customers, args.products, args.seed, as_of)
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
    print(f"store written in {time.perf_counter() - started:.1f}s: {counts}", flush=True)

    started = time.perf_counter()
    version = train_recommender(RecommenderOptions(as_of=as_of))
    train_s = time.perf_counter() - started
    metrics = version.metrics
    print(f"trained {version} in {train_s:.1f}s:", flush=True)
    for name in ("model", "popularity", "item_knn"):
        print(f"  {name:<10} {metrics[name]}", flush=True)
    activate_recommender(version, force=True)  # the figures above say whether it earned it

    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    log_path = Path(os.environ.get("TMPDIR", "/tmp")) / "kairos-bench-recommend-worker.log"
    worker = start_worker(env, args.workers, log_path, "scoring")
    peak = {"mb": 0.0}
    sampling = threading.Event()

    def sample() -> None:
        while not sampling.is_set():
            peak["mb"] = max(peak["mb"], tree_rss_mb(worker.pid) + tree_rss_mb(os.getpid()))
            time.sleep(RSS_SAMPLE_S)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        started = time.perf_counter()
        run = start_recommendation_run(as_of)
        while run.status == RunStatus.RUNNING:
            time.sleep(0.1)
            run = ScoringRun.objects.get(pk=run.pk)
        run_s = time.perf_counter() - started
    finally:
        sampling.set()
        sampler.join()
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(timeout=60)
    if run.status != RunStatus.DONE:
        raise SystemExit(f"recommendation run failed: {run.error}\n{log_path.read_text()[-4000:]}")
    stored = Recommendation.objects.filter(model_version=version).count()
    print(f"stored picks of {stored:,} customers in {run_s:.1f}s over {run.chunks_total} chunks", flush=True)

    # The raw baseline: the same picks from arrays in memory, in this process, without database or broker.
    model = recommender_for(version)
    catalogue = read_catalogue()
    interactions = read_interactions(
        catalogue, as_of, as_of - timedelta(days=settings.ML_RECOMMEND_HISTORY_DAYS)
    )
    customers = np.arange(1, args.customers + 1, dtype=np.int64)
    started = time.perf_counter()
    for begin in range(0, len(customers), settings.ML_RECOMMEND_CHUNK_CUSTOMERS):
        block = customers[begin : begin + settings.ML_RECOMMEND_CHUNK_CUSTOMERS]
        mask = (interactions.customers >= block[0]) & (interactions.customers <= block[-1])
        model.recommend(block, interactions.where(mask), settings.ML_RECOMMEND_STORED, catalogue.in_stock)
    raw_s = time.perf_counter() - started
    own_peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    total_s = train_s + run_s
    print(
        json.dumps(
            {
                "customers": stored,
                "products": args.products,
                "train_s": round(train_s, 2),
                "run_s": round(run_s, 2),
                "total_s": round(total_s, 2),
                "customers_per_s": round(stored / total_s),
                "peak_rss_mb": round(max(peak["mb"], own_peak_mb)),
                "raw_s": round(raw_s, 2),
                "e2e_vs_raw": round(raw_s / run_s, 3),
                "workers": args.workers,
                "beats_baselines": version.beats_baselines,
                "model_recall_at_10": metrics["model"]["recall_at_10"],
                "popularity_recall_at_10": metrics["popularity"]["recall_at_10"],
                "item_knn_recall_at_10": metrics["item_knn"]["recall_at_10"],
            }
        )
    )


if __name__ == "__main__":
    main()
