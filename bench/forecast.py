"""Benchmark: build C categories with W weeks of orders, then backtest and forecast them as train_forecast does.

    python bench/forecast.py --categories 500 --weeks 156

Writes a synthetic shop into a fresh PostgreSQL database with COPY: each category has its own
level (log-normal, from a few units a week to hundreds), yearly growth, yearly season, a Black
Friday week and negative-binomial noise; one in ten categories was launched during the history and
one in ten sells only now and then, so the fallbacks run too. Orders carry one line of two units (or
one), placed at random moments of their week; one in twenty is refunded. Then it reads the weekly sales through the same query
as the command, runs the rolling-origin backtest and the forecast of units and revenue (the whole
`forecast_sales`), and stores the version with every forecast week. The last line printed is one
JSON object: `train_s` is fitting every series' chosen method on its whole history (both targets),
`backtest_s` the four origins of every method (both targets); reading and storing are timed apart.
"""

import argparse
import json
import os
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.databases import recreate_database  # noqa: E402 - needs the project root on the path
from bench.synthetic_store import Clock, copy_rows  # noqa: E402

BENCH_DATABASE = "kairos_bench_forecast"
FIRST_MONDAY = date(2023, 1, 2)
CUSTOMERS = 50_000
WEEK_S = 7 * 86_400
LAUNCHED_SHARE = 0.1  # categories that started selling during the history
INTERMITTENT_SHARE = 0.1  # categories that sell a unit or two in some weeks only
NB_DISPERSION = 8.0  # negative-binomial size: variance = mean + mean^2 / 8


def weekly_units(rng: np.random.Generator, categories: int, weeks: int) -> np.ndarray:
    """Return the units each category sells each week."""
    t = np.arange(weeks)
    level = rng.lognormal(np.log(20), 1.0, categories)
    growth = rng.normal(0.0, 0.25, categories)
    swing, peak = rng.uniform(0.0, 0.5, categories), rng.uniform(0, 52, categories)
    mean = level[:, None] * np.exp(growth[:, None] * (t - weeks)[None, :] / 52)
    mean = mean * (1 + swing[:, None] * np.cos(2 * np.pi * (t[None, :] - peak[:, None]) / 52))
    mean = mean * np.where(t % 52 == 47, 1.8, 1.0)[None, :]  # the week of Black Friday
    kind = rng.random(categories)
    mean[kind < INTERMITTENT_SHARE] = rng.uniform(0.2, 0.6, (int((kind < INTERMITTENT_SHARE).sum()), 1))
    units = rng.negative_binomial(NB_DISPERSION, NB_DISPERSION / (NB_DISPERSION + mean))
    launched = (kind >= INTERMITTENT_SHARE) & (kind < INTERMITTENT_SHARE + LAUNCHED_SHARE)
    start = rng.integers(weeks // 2, weeks - 10, categories)
    units[launched[:, None] & (t[None, :] < start[:, None])] = 0
    return units


def write_shop(conn, rng: np.random.Generator, units: np.ndarray) -> dict[str, int]:
    """Write customers, one product per category, and one order per line; return the row counts."""
    categories, weeks = units.shape
    first_s = int(datetime.combine(FIRST_MONDAY, datetime.min.time(), tzinfo=UTC).timestamp())
    clock = Clock.spanning(first_s, first_s + weeks * WEEK_S)
    # Each (category, week) sells in lines of two units, the last line of an odd count one.
    per_cell = units.ravel()
    lines_per_cell = (per_cell + 1) // 2
    cell_of_line = np.repeat(np.arange(per_cell.size), lines_per_cell)
    quantities = np.full(len(cell_of_line), 2, dtype=np.int64)
    last = np.cumsum(lines_per_cell)[per_cell % 2 == 1] - 1
    quantities[last] = 1
    category, week = np.divmod(cell_of_line, weeks)
    placed = first_s + week * WEEK_S + rng.integers(0, WEEK_S, len(week))
    order = np.argsort(placed, kind="stable")
    category, placed, quantities = category[order], placed[order], quantities[order]
    lines = len(placed)
    price_cents = (rng.lognormal(np.log(2500), 0.6, categories)).astype(np.int64) // 10 * 10 + 9
    with conn.transaction(), conn.cursor() as cursor:
        day, hms = clock.split(np.full(CUSTOMERS, first_s))
        copy_rows(
            cursor, "marketing_customer", "id, external_id, email, created_at, updated_at",
            "{0}\tC{0:07d}\tc{0:07d}@example.test\t{1} {2}+00\t{1} {2}+00\n",
            [np.arange(1, CUSTOMERS + 1), day, hms],
        )  # fmt: skip
        names = np.array([f"category-{k:04d}" for k in range(categories)], dtype=object)
        copy_rows(
            cursor, "marketing_product", "id, sku, name, category, price, created_at, updated_at",
            "{0}\tSKU-{0:05d}\t{1} product\t{1}\t{2}.{3:02d}\t2022-12-01 00:00:00+00\t2022-12-01 00:00:00+00\n",
            [np.arange(1, categories + 1), names, price_cents // 100, price_cents % 100],
        )  # fmt: skip
        total = quantities * price_cents[category]
        day, hms = clock.split(placed)
        status = np.where(rng.random(lines) < 0.05, "refunded", "completed").astype(object)
        copy_rows(
            cursor, "marketing_order", "id, external_id, customer_id, placed_at, total, status, created_at, updated_at",
            "{0}\tO{0:09d}\t{1}\t{2} {3}+00\t{4}.{5:02d}\t{6}\t{2} {3}+00\t{2} {3}+00\n",
            [np.arange(1, lines + 1), rng.integers(1, CUSTOMERS + 1, lines), day, hms, total // 100, total % 100, status],
        )  # fmt: skip
        copy_rows(
            cursor, "marketing_orderline", "id, order_id, product_id, quantity, unit_price",
            "{0}\t{0}\t{1}\t{2}\t{3}.{4:02d}\n",
            [np.arange(1, lines + 1), category + 1, quantities, price_cents[category] // 100, price_cents[category] % 100],
        )  # fmt: skip
        for table, rows in (("marketing_customer", CUSTOMERS), ("marketing_product", categories),
                            ("marketing_order", lines), ("marketing_orderline", lines)):  # fmt: skip
            cursor.execute("SELECT setval(pg_get_serial_sequence(%s, 'id'), %s)", [table, rows])
            cursor.execute(f"ANALYZE {table}")
    return {"customers": CUSTOMERS, "products": categories, "orders": lines, "order_lines": lines}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--categories", type=int, default=500)
    parser.add_argument("--weeks", type=int, default=156)
    parser.add_argument("--horizon", type=int, default=8, help="Weeks to forecast.")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--server", default=os.environ.get("BENCH_POSTGRES", "postgres://postgres@127.0.0.1:5432"))
    args = parser.parse_args()

    os.environ["DATABASE_URL"] = recreate_database(args.server, BENCH_DATABASE)
    os.environ.setdefault("SECRET_KEY", "kairos-benchmark-only-secret-key-0123456789abcdefghijklmnop")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "marketing.settings")
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection

    from ml.forecast import forecast_sales, history_from_frame
    from ml.forecast_queries import read_weekly_sales
    from ml.forecast_registry import ForecastTrainingOptions, forecast_options, register_forecast, shop_zone

    call_command("migrate", verbosity=0)
    rng = np.random.default_rng(args.seed)
    units = weekly_units(rng, args.categories, args.weeks)
    started = time.perf_counter()
    with connection.cursor() as cursor:
        counts = write_shop(cursor.connection, rng, units)
    print(f"store written in {time.perf_counter() - started:.1f}s: {counts}", flush=True)

    as_of = datetime.combine(FIRST_MONDAY + timedelta(weeks=args.weeks), datetime.min.time(), tzinfo=UTC)
    options = forecast_options(args.horizon)
    started = time.perf_counter()
    read = read_weekly_sales(as_of, shop_zone())
    history = history_from_frame(read.frame, read.first_week, read.end_week)
    read_s = time.perf_counter() - started
    forecast = forecast_sales(history, options)
    started = time.perf_counter()
    version = register_forecast(ForecastTrainingOptions(as_of=as_of, weeks=args.horizon), read, history, forecast, options)
    register_s = time.perf_counter() - started
    overall = forecast.figures["units"]["overall"]
    fallbacks = sum(1 for row in forecast.figures["units"]["series"] if row["fallback"])
    print(
        f"{version}: {history.weeks} weeks, {len(history.names) - 1} categories ({fallbacks} falling back); "
        f"units MASE {json.dumps({name: figures['mase'] for name, figures in overall['methods'].items()})}",
        flush=True,
    )
    print(
        json.dumps(
            {
                "categories": len(history.names) - 1,
                "weeks": history.weeks,
                "train_s": round(forecast.timings["train_s"], 2),
                "backtest_s": round(forecast.timings["backtest_s"], 2),
                "read_s": round(read_s, 2),
                "register_s": round(register_s, 2),
                "order_lines": counts["order_lines"],
                "horizon_weeks": args.horizon,
                "origins": options.origins,
                "threads": settings.FORECAST_THREADS,
                "fallback_categories": fallbacks,
                "chosen": overall["chosen"],
                "selected_mase": overall["methods"]["selected"]["mase"],
                "seasonal_naive_mase": overall["methods"]["seasonal_naive"]["mase"],
                "auto_ets_mase": overall["methods"]["auto_ets"]["mase"],
                "model_mase": overall["methods"]["model"]["mase"],
                "beats_seasonal_naive": overall["beats_seasonal_naive"],
            }
        )
    )


if __name__ == "__main__":
    main()
