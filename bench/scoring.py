"""Benchmark: train on N customers, then score every one of them end to end through Celery.

    python bench/scoring.py --customers 1000000

Writes a synthetic shop of N customers with orders, lines and events into a fresh PostgreSQL
database, trains a purchase-propensity version (data gates, snapshots, the three baselines,
fairness, model card, refit: the whole `train_model`), then starts a scoring run and waits for real
Celery prefork workers on Redis to finish it: the decile sample, every chunk's feature query,
prediction and COPY of the scores. Reasons are computed on demand afterwards, one customer at a
time as a customer's page asks (`reasons_ms_per_customer`). In the same run it times a raw
`Booster.predict` of the same feature matrix on all cores. The last line printed is one JSON
object; `e2e_vs_raw` is the end-to-end rate divided by the raw predict rate.
"""

import argparse
import json
import os
import signal
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.databases import recreate_database  # noqa: E402 - needs the project root on the path
from bench.workers import start_worker  # noqa: E402 - needs the project root on the path

BENCH_DATABASE = "kairos_bench_scoring"
BROKER_DB = 13
REASONS_SAMPLE = 200  # customers explained on demand, one at a time, after the bulk run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2, help="Prefork worker processes.")
    parser.add_argument("--server", default=os.environ.get("BENCH_POSTGRES", "postgres://postgres@127.0.0.1:5432"))
    parser.add_argument("--redis", default=os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6379"))
    args = parser.parse_args()

    broker = f"{args.redis}/{BROKER_DB}"
    os.environ["DATABASE_URL"] = recreate_database(args.server, BENCH_DATABASE)
    os.environ["CELERY_BROKER_URL"] = broker
    os.environ["CELERY_RESULT_BACKEND"] = broker
    os.environ.setdefault("SECRET_KEY", "kairos-benchmark-only-secret-key-0123456789abcdefghijklmnop")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "marketing.settings")
    import django

    django.setup()
    import pandas as pd
    import redis
    from django.core.management import call_command
    from django.db import connection

    from bench.synthetic_store import write_store
    from ml.explanations import reasons_for
    from ml.models import RunStatus, Score, ScoringRun
    from ml.queries import iter_aggregates, read_season_index
    from ml.registry import TrainingOptions, activate_version, scorer_for, train_model
    from ml.runs import start_scoring_run
    from ml.scoring import load_boosters

    redis.Redis.from_url(broker).flushdb()
    call_command("migrate", verbosity=0)
    as_of = datetime(2026, 11, 1, tzinfo=UTC)
    started = time.perf_counter()
    with connection.cursor() as cursor:
        counts = write_store(cursor.connection, customers=args.customers, seed=args.seed, as_of=as_of)
    with connection.cursor() as cursor:
        # What autovacuum does to a settled database: statistics, and a visibility map for index-only scans.
        cursor.execute("VACUUM ANALYZE")
    print(f"store written in {time.perf_counter() - started:.1f}s: {counts}", flush=True)

    started = time.perf_counter()
    version = train_model(TrainingOptions(horizon_days=90, as_of=as_of))
    train_s = time.perf_counter() - started
    metrics = version.metrics
    print(
        f"trained {version} in {train_s:.1f}s: ROC AUC model {metrics['model']['roc_auc']}, recency "
        f"{metrics['recency']['roc_auc']}, logistic {metrics['logistic']['roc_auc']}, BG/NBD "
        f"{metrics['bgnbd']['roc_auc']}; log loss model {metrics['model']['log_loss']}, logistic "
        f"{metrics['logistic']['log_loss']}, BG/NBD {metrics['bgnbd']['log_loss']}",
        flush=True,
    )
    activate_version(version, force=True)  # the figures above say whether it earned it

    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    log_path = Path(os.environ.get("TMPDIR", "/tmp")) / "kairos-bench-scoring-worker.log"
    worker = start_worker(env, args.workers, log_path, "scoring")
    try:
        started = time.perf_counter()
        run = start_scoring_run(as_of)
        while run.status == RunStatus.RUNNING:
            time.sleep(0.1)
            run = ScoringRun.objects.get(pk=run.pk)
        score_e2e_s = time.perf_counter() - started
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(timeout=60)
    if run.status != RunStatus.DONE:
        raise SystemExit(f"scoring run failed: {run.error}\n{log_path.read_text()[-4000:]}")
    print(f"scored {run.customers_scored:,} customers in {score_e2e_s:.1f}s over {run.chunks_total} chunks", flush=True)

    # Reasons on demand, as a customer's page asks for them: a sample of customers, each explained once.
    sample = list(
        Score.objects.filter(model_version=version).select_related("model_version").order_by("?")[:REASONS_SAMPLE]
    )
    started = time.perf_counter()
    for score in sample:
        reasons_for(score)
    reasons_ms = (time.perf_counter() - started) * 1000 / max(len(sample), 1)
    print(f"explained {len(sample)} customers on demand: {reasons_ms:.1f} ms each", flush=True)

    scorer = scorer_for(version)
    season = read_season_index(as_of, version.horizon_days)
    matrix = pd.concat(
        scorer.features(frame, as_of.timestamp(), season) for frame in iter_aggregates(as_of)
    ).to_numpy()
    boosters = load_boosters(version.artifact)
    started = time.perf_counter()
    for booster in boosters:
        booster.predict(matrix, num_threads=os.cpu_count() or 2)
    raw_predict_s = time.perf_counter() - started
    assert len(matrix) == run.customers_scored, (len(matrix), run.customers_scored)

    customers_per_s = run.customers_scored / score_e2e_s
    raw_per_s = len(matrix) / raw_predict_s
    print(
        json.dumps(
            {
                "customers": run.customers_scored,
                "train_s": round(train_s, 2),
                "score_e2e_s": round(score_e2e_s, 2),
                "customers_per_s": round(customers_per_s),
                "raw_predict_s": round(raw_predict_s, 3),
                "raw_predict_rows_per_s": round(raw_per_s),
                "e2e_vs_raw": round(customers_per_s / raw_per_s, 3),
                "reasons_ms_per_customer": round(reasons_ms, 2),
                "workers": args.workers,
                "beats_baselines": version.beats_baselines,
                "model_roc_auc": metrics["model"]["roc_auc"],
                "logistic_roc_auc": metrics["logistic"]["roc_auc"],
                "bgnbd_roc_auc": metrics["bgnbd"]["roc_auc"],
            }
        )
    )


if __name__ == "__main__":
    main()
