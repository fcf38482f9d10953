"""Celery tasks of the audience app: thin shells over plain functions (queues: CELERY_TASK_ROUTES)."""

import logging

from celery import shared_task

from marketing.enqueue import enqueue
from marketing.imports import import_file
from marketing.segments.refresh import due_segments, refresh_all_segments, refresh_segment

logger = logging.getLogger("kairos")


@shared_task(name="marketing.import_file")
def import_file_task(kind: str, path: str, mapping: dict[str, str] | None = None, date_format: str = "auto") -> None:
    """Import a file that the web process saved where the workers can read it."""
    report = import_file(kind, path, mapping=mapping, date_format=date_format)
    logger.info("import of %s finished: %s", path, report.summary())
    if report.inserted or report.updated:
        refresh_all_segments_task.delay()


@shared_task(name="marketing.refresh_segment", ignore_result=True)
def refresh_segment_task(segment_id: int) -> None:
    """Refresh one segment's stored membership; a second refresh of it meanwhile skips.

    A failure is recorded on the segment with its next try (backing off), and logged; it is not
    raised again, so beat's next pass, not a broker retry, decides when to try once more.
    """
    try:
        refresh_segment(segment_id)
    except Exception:
        logger.warning("segment %s: refresh failed; recorded with its next try", segment_id)


@shared_task(name="marketing.refresh_due_segments")
def refresh_due_segments_task() -> None:
    """Queue one refresh per dynamic segment due now, the longest-waiting first (run by beat every minute)."""
    for segment_id in due_segments():
        enqueue("marketing.refresh_segment", segment_id)


@shared_task(name="marketing.refresh_all_segments")
def refresh_all_segments_task() -> None:
    """Refresh every dynamic segment: queued after an import changed the audience."""
    refresh_all_segments()
