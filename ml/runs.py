"""Scoring runs: every customer scored by the active model, in chunks that Celery workers take.

A `ScoringRun` row and one `ScoringChunk` row per id range exist before any task is sent. A chunk
is scored and written in one transaction that also marks it done, under a lock on its row, so a
task delivered twice, or retried after a crash, writes its customers' scores exactly once.
Deciles need the whole population: the run first scores a deterministic sample and keeps its
nine cut points, so that every chunk can assign deciles on its own.
"""

import json
import math
from datetime import datetime, timedelta

import numpy as np
from django.conf import settings
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from marketing.enqueue import enqueue
from ml.models import (
    PRODUCT_RECOMMENDATIONS,
    PURCHASE_PROPENSITY,
    ChunkStatus,
    ModelVersion,
    RunStatus,
    Score,
    ScoringChunk,
    ScoringRun,
)
from ml.queries import READ_CHUNK_CUSTOMERS, customer_ids, id_ranges, read_aggregates, read_season_index
from ml.registry import scorer_for
from ml.scoring import assign_deciles, decile_cut_points

MAX_CHUNK_ATTEMPTS = 3
NULL = "\\N"  # COPY's NULL


class NoActiveModel(Exception):
    """There is no active version of the task to score with."""


def start_scoring_run(as_of: datetime | None = None, task: str = PURCHASE_PROPENSITY) -> ScoringRun:
    """Create a run and its chunks for the active model, and enqueue the chunks after commit."""
    version = ModelVersion.objects.active(task).first()
    if version is None:
        raise NoActiveModel(f"no active {task} model: train one with train_propensity --activate")
    scorer = scorer_for(version)  # refuses a feature mismatch before anything is written
    as_of = as_of or timezone.now()
    ids = customer_ids(as_of)  # read once: the sample and the chunks both split these
    stride = max(1, math.ceil(len(ids) / settings.ML_DECILE_SAMPLE_CUSTOMERS))
    season = read_season_index(as_of, version.horizon_days)
    sample = [
        scorer.probability(scorer.features(read_aggregates(as_of, first, last), as_of.timestamp(), season))
        for first, last in id_ranges(ids, READ_CHUNK_CUSTOMERS, stride)
    ]
    cut_points = decile_cut_points(_concatenate(sample))
    chunk_customers = settings.ML_SCORING_CHUNK_CUSTOMERS
    ranges = id_ranges(ids, chunk_customers)
    with transaction.atomic():
        run = ScoringRun.objects.create(
            model_version=version,
            as_of=as_of,
            chunk_customers=chunk_customers,
            chunks_total=len(ranges),
            decile_cut_points=cut_points,
            season_index=season,
            status=RunStatus.RUNNING if ranges else RunStatus.DONE,
            finished_at=None if ranges else timezone.now(),
        )
        ScoringChunk.objects.bulk_create(ScoringChunk(run=run, first_id=first, last_id=last) for first, last in ranges)
        enqueue_pending_chunks(run)
    return run


def _concatenate(parts: list[np.ndarray]) -> np.ndarray:
    return np.concatenate(parts) if parts else np.empty(0)


def enqueue_pending_chunks(run: ScoringRun) -> int:
    """Send one task per pending chunk once the surrounding transaction commits."""
    # Recommendation runs share these rows; their chunks go to their own task.
    name = "ml.recommend_chunk" if run.model_version.task == PRODUCT_RECOMMENDATIONS else "ml.score_chunk"
    chunk_ids = list(run.chunks.pending().values_list("pk", flat=True))
    transaction.on_commit(lambda: [enqueue(name, chunk_id) for chunk_id in chunk_ids])
    return len(chunk_ids)


def score_chunk(chunk_id: int) -> int:
    """Score one chunk's customers and write their scores; return how many, 0 if it was already done."""
    with transaction.atomic():
        chunk = ScoringChunk.objects.select_for_update().filter(pk=chunk_id, status=ChunkStatus.PENDING).first()
        if chunk is None:
            return 0
        run = ScoringRun.objects.select_related("model_version").get(pk=chunk.run_id)
        scorer = scorer_for(run.model_version)
        aggregates = read_aggregates(run.as_of, chunk.first_id, chunk.last_id)
        features = scorer.features(aggregates, run.as_of.timestamp(), run.season_index)
        probability = scorer.probability(features)
        deciles = assign_deciles(probability, run.decile_cut_points)
        reasons = bulk_reasons(scorer, features, deciles, settings.ML_REASONS_TOP_DECILES)
        write_scores(run, chunk, features.index.to_numpy(dtype=np.int64), probability, deciles, reasons)
        now = timezone.now()
        chunk.status, chunk.customers, chunk.finished_at = ChunkStatus.DONE, len(features), now
        chunk.attempts += 1
        chunk.save(update_fields=["status", "customers", "finished_at", "attempts"])
        # Concurrent chunks serialise on the run row here; exactly one of them sees the last chunk done.
        ScoringRun.objects.filter(pk=run.pk).update(
            chunks_done=F("chunks_done") + 1, customers_scored=F("customers_scored") + chunk.customers, updated_at=now
        )
        ScoringRun.objects.filter(pk=run.pk, status=RunStatus.RUNNING, chunks_done=F("chunks_total")).update(
            status=RunStatus.DONE, finished_at=now
        )
    return chunk.customers


def record_chunk_failure(chunk_id: int, error: str) -> None:
    """Count a failed attempt; after the last one the chunk and its run are marked failed with the error."""
    with transaction.atomic():
        chunk = ScoringChunk.objects.select_for_update().filter(pk=chunk_id, status=ChunkStatus.PENDING).first()
        if chunk is None:
            return
        chunk.attempts += 1
        chunk.error = error
        if chunk.attempts >= MAX_CHUNK_ATTEMPTS:
            chunk.status = ChunkStatus.FAILED
            ScoringRun.objects.filter(pk=chunk.run_id).update(
                status=RunStatus.FAILED,
                error=f"customers {chunk.first_id}-{chunk.last_id}: {error}",
                finished_at=timezone.now(),
            )
        chunk.save(update_fields=["attempts", "error", "status"])


def bulk_reasons(scorer, features, deciles: np.ndarray, top_deciles: int) -> list[str | None]:
    """Return the JSON reasons of the customers in the `top_deciles` most likely deciles, None for the rest."""
    reasons: list[str | None] = [None] * len(features)
    wanted = np.flatnonzero(deciles <= top_deciles)
    if len(wanted):
        for row, text in zip(wanted.tolist(), scorer.score(features.iloc[wanted]).reasons, strict=True):
            reasons[row] = text
    return reasons


def write_scores(run: ScoringRun, chunk: ScoringChunk, customer_ids, probability, deciles, reasons) -> None:
    """Replace the version's scores of the chunk's id range with these, in bulk."""
    version_id = run.model_version_id
    Score.objects.filter(
        model_version_id=version_id, customer_id__gte=chunk.first_id, customer_id__lte=chunk.last_id
    ).delete()
    rows = zip(customer_ids.tolist(), probability.tolist(), deciles.tolist(), reasons, strict=True)
    if connection.vendor == "postgresql":
        scored_at = run.as_of.isoformat()
        payload = "".join(
            f"{customer}\t{version_id}\t{p!r}\t{decile}\t{_copy_escape(text) if text is not None else NULL}\t{scored_at}\n"
            for customer, p, decile, text in rows
        )
        copy_rows(Score, "customer_id, model_version_id, probability, decile, reasons, scored_at", payload)
        return
    Score.objects.bulk_create(
        (
            Score(
                customer_id=customer,
                model_version_id=version_id,
                probability=p,
                decile=decile,
                reasons=json.loads(text) if text is not None else None,
                scored_at=run.as_of,
            )
            for customer, p, decile, text in rows
        ),
        batch_size=500,
    )


def copy_rows(model, columns: str, payload: str) -> None:
    """Load tab-separated rows (PostgreSQL's COPY text format) into the model's table: one statement, no per-row INSERT."""
    with (
        connection.cursor() as cursor,
        cursor.cursor.copy(f"COPY {model._meta.db_table} ({columns}) FROM STDIN") as copy,
    ):
        copy.write(payload.encode())


def _copy_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")


def resume_stalled_runs(now: datetime | None = None) -> int:
    """Re-send the pending chunks of runs that made no progress for a while (a worker died, a task was lost)."""
    now = now or timezone.now()
    stalled = ScoringRun.objects.select_related("model_version").filter(
        status=RunStatus.RUNNING, updated_at__lt=now - timedelta(seconds=settings.ML_SCORING_STALL_S)
    )
    sent = 0
    for run in stalled:
        with transaction.atomic():
            ScoringRun.objects.filter(pk=run.pk).update(updated_at=now)
            sent += enqueue_pending_chunks(run)
    return sent
