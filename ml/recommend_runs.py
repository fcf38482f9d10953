"""Recommendation runs: every customer's picks from the active recommender, in chunks Celery workers take.

The same rows as scoring (`ScoringRun`, `ScoringChunk`): the run and its chunks exist before any task is
sent, and a chunk is computed and written in one transaction that marks it done under a lock on its row,
so a task delivered twice writes its customers' picks once. Out-of-stock products are left out here and
again at send time (`ml.recommendations`), since stock changes after a run.
"""

import json
from datetime import datetime, timedelta

import numpy as np
from django.conf import settings
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from marketing.models import Customer, Product
from ml.models import (
    PRODUCT_RECOMMENDATIONS,
    ChunkStatus,
    ModelVersion,
    Recommendation,
    RunStatus,
    ScoringChunk,
    ScoringRun,
)
from ml.queries import customer_ids, id_ranges
from ml.recommend_queries import Catalogue, read_interactions
from ml.recommend_registry import recommender_for
from ml.runs import NoActiveModel, copy_rows, enqueue_pending_chunks


def start_recommendation_run(as_of: datetime | None = None) -> ScoringRun:
    """Create a run and its chunks for the active recommender, and enqueue the chunks after commit."""
    version = ModelVersion.objects.active(PRODUCT_RECOMMENDATIONS).first()
    if version is None:
        raise NoActiveModel("no active recommender: train one with train_recommendations --activate")
    recommender_for(version)  # an unreadable artifact fails here, before anything is written
    as_of = as_of or timezone.now()
    chunk_customers = settings.ML_RECOMMEND_CHUNK_CUSTOMERS
    ranges = id_ranges(customer_ids(as_of), chunk_customers)
    with transaction.atomic():
        run = ScoringRun.objects.create(
            model_version=version,
            as_of=as_of,
            chunk_customers=chunk_customers,
            chunks_total=len(ranges),
            status=RunStatus.RUNNING if ranges else RunStatus.DONE,
            finished_at=None if ranges else timezone.now(),
        )
        ScoringChunk.objects.bulk_create(ScoringChunk(run=run, first_id=first, last_id=last) for first, last in ranges)
        enqueue_pending_chunks(run)
    return run


def recommend_chunk(chunk_id: int) -> int:
    """Compute and store one chunk's picks; return how many customers, 0 if it was already done."""
    with transaction.atomic():
        chunk = ScoringChunk.objects.select_for_update().filter(pk=chunk_id, status=ChunkStatus.PENDING).first()
        if chunk is None:
            return 0
        run = ScoringRun.objects.select_related("model_version").get(pk=chunk.run_id)
        model = recommender_for(run.model_version)
        ids = np.fromiter(
            Customer.objects.known_at(run.as_of)
            .filter(pk__gte=chunk.first_id, pk__lte=chunk.last_id)
            .order_by("pk")
            .values_list("pk", flat=True)
            .iterator(chunk_size=settings.ML_RECOMMEND_CHUNK_CUSTOMERS),
            dtype=np.int64,
        )
        catalogue = Catalogue(model.product_ids, in_stock_of(model.product_ids), [])
        since = run.as_of - timedelta(days=settings.ML_RECOMMEND_HISTORY_DAYS)
        interactions = read_interactions(catalogue, run.as_of, since, chunk.first_id, chunk.last_id)
        picks = model.recommend(ids, interactions, settings.ML_RECOMMEND_STORED, catalogue.in_stock)
        write_recommendations(run, chunk, picks.customers, model.product_ids, picks.products, picks.scores)
        now = timezone.now()
        chunk.status, chunk.customers, chunk.finished_at = ChunkStatus.DONE, len(ids), now
        chunk.attempts += 1
        chunk.save(update_fields=["status", "customers", "finished_at", "attempts"])
        ScoringRun.objects.filter(pk=run.pk).update(
            chunks_done=F("chunks_done") + 1, customers_scored=F("customers_scored") + chunk.customers, updated_at=now
        )
        ScoringRun.objects.filter(pk=run.pk, status=RunStatus.RUNNING, chunks_done=F("chunks_total")).update(
            status=RunStatus.DONE, finished_at=now
        )
    return chunk.customers


def in_stock_of(product_ids: np.ndarray) -> np.ndarray:
    """Return, per product id (ascending), whether it still exists and is in stock now."""
    existing = np.fromiter(Product.objects.order_by("pk").values_list("pk", flat=True), dtype=np.int64)
    missing = np.fromiter(Product.objects.filter(in_stock=False).values_list("pk", flat=True), dtype=np.int64)
    return np.isin(product_ids, existing) & ~np.isin(product_ids, missing)


def json_rows(product_ids: np.ndarray, columns: np.ndarray, scores: np.ndarray) -> tuple[list[str], list[str]]:
    """Return each row's product ids and scores as JSON arrays, leaving out the -1 columns of missing picks.

    One json.dumps of the whole matrix, split into rows, costs a fraction of one call per customer.
    """
    found = columns >= 0
    picked = np.where(found, product_ids[np.maximum(columns, 0)], -1)
    rounded = np.round(scores.astype(np.float64), 4)
    if found.all():
        return _split_rows(json.dumps(picked.tolist())), _split_rows(json.dumps(rounded.tolist()))
    counts = found.sum(axis=1).tolist()
    return (
        [json.dumps(row[:count]) for row, count in zip(picked.tolist(), counts, strict=True)],
        [json.dumps(row[:count]) for row, count in zip(rounded.tolist(), counts, strict=True)],
    )


def _split_rows(matrix_json: str) -> list[str]:
    if matrix_json == "[]":
        return []
    return [f"[{row}]" for row in matrix_json[2:-2].split("], [")]


def write_recommendations(run: ScoringRun, chunk: ScoringChunk, customers, product_ids, columns, scores) -> None:
    """Replace the version's picks of the chunk's id range with these, in bulk."""
    version_id = run.model_version_id
    Recommendation.objects.filter(
        model_version_id=version_id, customer_id__gte=chunk.first_id, customer_id__lte=chunk.last_id
    ).delete()
    rows = list(zip(customers.tolist(), *json_rows(product_ids, columns, scores), strict=True))
    if connection.vendor == "postgresql":
        computed_at = run.as_of.isoformat()
        payload = "".join(
            f"{customer}\t{version_id}\t{ids}\t{values}\t{computed_at}\n" for customer, ids, values in rows
        )
        copy_rows(Recommendation, "customer_id, model_version_id, product_ids, scores, computed_at", payload)
        return
    Recommendation.objects.bulk_create(
        (
            Recommendation(
                customer_id=customer,
                model_version_id=version_id,
                product_ids=json.loads(ids),
                scores=json.loads(values),
                computed_at=run.as_of,
            )
            for customer, ids, values in rows
        ),
        batch_size=500,
    )
