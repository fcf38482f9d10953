"""Benchmark: importing an orders CSV against a raw COPY of the same file.

    python bench/import_orders.py --rows 1000000

Writes an N-row orders CSV (one customer per ten orders), imports it with Kairos's importer into
a fresh PostgreSQL database, then COPies the same file into an unindexed table of the same
column types. The last line printed is one JSON object with both rates and their ratio.
"""

import argparse
import csv
import json
import os
import random
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.databases import recreate_database  # noqa: E402 - needs the project root on the path

BENCH_DATABASE = "kairos_bench"


def write_orders_csv(path: Path, rows: int, seed: int) -> None:
    """Write `rows` orders with ids, customer ids, ISO timestamps, totals, currency and status."""
    rng = random.Random(seed)
    start = datetime(2024, 1, 1, tzinfo=UTC)
    customers = max(1, rows // 10)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["order_id", "customer_id", "placed_at", "total", "currency", "status"])
        for number in range(1, rows + 1):
            placed = start + timedelta(seconds=rng.randrange(365 * 86_400))
            writer.writerow([
                f"O{number:09d}",
                f"C{rng.randrange(customers):08d}",
                placed.strftime("%Y-%m-%dT%H:%M:%SZ"),
                f"{rng.randrange(500, 50_000) / 100:.2f}",
                "EUR",
                "completed" if rng.random() < 0.95 else "refunded",
            ])


def raw_copy(path: Path, indexed: bool = False) -> tuple[float, int]:
    """Return the seconds a plain COPY of the file takes, and the rows it copied.

    Unindexed is the baseline the target is stated against; `indexed` adds the two indexes an
    orders table needs (unique order id, customer + time), to show what index upkeep alone costs.
    """
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS bench_raw_orders")
        cursor.execute(
            "CREATE TABLE bench_raw_orders (order_id text, customer_id text, placed_at timestamptz, "
            "total numeric(12, 2), currency text, status text)"
        )
        if indexed:
            cursor.execute("CREATE UNIQUE INDEX ON bench_raw_orders (order_id)")
            cursor.execute("CREATE INDEX ON bench_raw_orders (customer_id, placed_at)")
        started = time.perf_counter()
        with open(path, "rb") as handle, cursor.cursor.copy(
            "COPY bench_raw_orders FROM STDIN WITH (FORMAT csv, HEADER true)"
        ) as copy:
            while chunk := handle.read(1 << 20):
                copy.write(chunk)
        elapsed = time.perf_counter() - started
        cursor.execute("SELECT count(*) FROM bench_raw_orders")
        copied = cursor.fetchone()[0]
        cursor.execute("DROP TABLE bench_raw_orders")
    return elapsed, copied


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--server", default=os.environ.get("BENCH_POSTGRES", "postgres://postgres@127.0.0.1:5432"))
    args = parser.parse_args()

    os.environ["DATABASE_URL"] = recreate_database(args.server, BENCH_DATABASE)
    os.environ.setdefault("SECRET_KEY", "kairos-benchmark-only-secret-key-0123456789abcdefghijklmnop")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "marketing.settings")
    import django

    django.setup()
    from django.core.management import call_command

    from marketing.imports import import_file
    from marketing.models import Customer, Order

    call_command("migrate", verbosity=0)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "orders.csv"
        write_orders_csv(path, args.rows, args.seed)
        mapping = {"external_id": "order_id", "customer": "customer_id"}

        started = time.perf_counter()
        report = import_file("orders", path, mapping=mapping)
        import_s = time.perf_counter() - started
        print(report.summary(), flush=True)
        assert report.reconciles and report.inserted == args.rows == Order.objects.count(), report.summary()

        copy_s, copied = raw_copy(path)
        indexed_s, indexed_copied = raw_copy(path, indexed=True)
        assert copied == indexed_copied == args.rows
        print(
            f"import {import_s:.2f}s, raw COPY {copy_s:.2f}s, raw COPY into an indexed table {indexed_s:.2f}s, "
            f"{Customer.objects.count():,} customers",
            flush=True,
        )

    import_rate = args.rows / import_s
    copy_rate = args.rows / copy_s
    print(json.dumps({
        "rows": args.rows,
        "import_s": round(import_s, 3),
        "raw_copy_s": round(copy_s, 3),
        "import_rows_per_s": round(import_rate),
        "raw_copy_rows_per_s": round(copy_rate),
        "raw_copy_indexed_rows_per_s": round(args.rows / indexed_s),
        "ratio": round(import_rate / copy_rate, 3),
        "ratio_vs_indexed_copy": round(import_rate / (args.rows / indexed_s), 3),
    }))


if __name__ == "__main__":
    main()
