"""Celery tasks of the ML app: thin shells over `ml.registry` and `ml.runs` (queues: CELERY_TASK_ROUTES)."""

import logging
from datetime import datetime

from celery import shared_task
from django.db import InterfaceError, OperationalError

from ml.recommend_runs import recommend_chunk
from ml.runs import record_chunk_failure, resume_stalled_runs, score_chunk, start_scoring_run

logger = logging.getLogger("kairos")


@shared_task(name="ml.start_scoring_run")
def start_scoring_run_task(as_of: str | None = None) -> None:
    """Plan a scoring run of every customer with the active model; its chunks are queued on commit."""
    run = start_scoring_run(datetime.fromisoformat(as_of) if as_of else None)
    logger.info("scoring run %s started: %d chunks", run.pk, run.chunks_total)


@shared_task(
    name="ml.score_chunk",
    autoretry_for=(OperationalError, InterfaceError),
    retry_backoff=2,
    retry_backoff_max=120,
    max_retries=5,
)
def score_chunk_task(chunk_id: int) -> None:
    """Score one chunk of a run; a chunk already written is skipped, so redelivery is harmless."""
    try:
        score_chunk(chunk_id)
    except (OperationalError, InterfaceError):
        raise
    except Exception as error:
        record_chunk_failure(chunk_id, f"{type(error).__name__}: {error}")
        raise


@shared_task(name="ml.resume_stalled_runs")
def resume_stalled_runs_task() -> None:
    """Re-send chunks of runs that stopped progressing (run by beat every five minutes)."""
    sent = resume_stalled_runs()
    if sent:
        logger.warning("re-sent %d chunks of stalled scoring runs", sent)


@shared_task(
    name="ml.recommend_chunk",
    autoretry_for=(OperationalError, InterfaceError),
    retry_backoff=2,
    retry_backoff_max=120,
    max_retries=5,
)
def recommend_chunk_task(chunk_id: int) -> None:
    """Compute and store one chunk of a recommendation run; a chunk already written is skipped."""
    try:
        recommend_chunk(chunk_id)
    except (OperationalError, InterfaceError):
        raise
    except Exception as error:
        record_chunk_failure(chunk_id, f"{type(error).__name__}: {error}")
        raise
