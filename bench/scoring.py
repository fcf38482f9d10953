"""Benchmark: train on N customers, then score every one of them end to end through Celery.

    python bench/scoring.py --customers 1000000

Writes a synthetic shop of N customers with orders, lines and events into a fresh PostgreSQL
database, trains a purchase-propensity version (data gates, snapshots, both baselines, fairness,
model card: the whole `train_model`), then starts a scoring run and waits for real Celery prefork
workers on Redis to finish it: the decile sample, every chunk's feature query, prediction,
explanations and COPY of the scores. In the same run it times a raw `Booster.predict` of the
same feature matrix on all cores. The last line printed is one JSON object; `e2e_vs_raw` is the
end-to-end rate divided by the raw predict rate.
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
    import lightgbm as lgb
    import pandas as pd
    import redis
    from django.core.management import call_command
    from django.db import connection

    from bench.synthetic_store import write_store
    from ml.features import build_features
    from ml.models import RunStatus, ScoringRun
    from ml.queries import iter_aggregates
    from ml.registry import TrainingOptions, activate_version, train_model
    from ml.runs import start_scoring_run

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
        f"{metrics['recency']['roc_auc']}, logistic {metrics['logistic']['roc_auc']}; log loss model "
        f"{metrics['model']['log_loss']}, logistic {metrics['logistic']['log_loss']}",
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

    matrix = pd.concat(build_features(frame, as_of.timestamp()) for frame in iter_aggregates(as_of)).to_numpy()
    booster = lgb.Booster(model_str=version.artifact)
    started = time.perf_counter()
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
                "workers": args.workers,
                "beats_baselines": version.beats_baselines,
                "model_roc_auc": metrics["model"]["roc_auc"],
                "logistic_roc_auc": metrics["logistic"]["roc_auc"],
            }
        )
    )


if __name__ == "__main__":
    main()
