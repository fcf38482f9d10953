"""Celery tasks of the audience app: thin shells over plain functions (queues: CELERY_TASK_ROUTES)."""

import logging

from celery import shared_task

from marketing.imports import import_file
from marketing.segments.refresh import refresh_all_segments, refresh_due_segments, refresh_segment

logger = logging.getLogger("kairos")


@shared_task(name="marketing.import_file")
def import_file_task(kind: str, path: str, mapping: dict[str, str] | None = None, date_format: str = "auto") -> None:
    """Import a file that the web process saved where the workers can read it."""
    report = import_file(kind, path, mapping=mapping, date_format=date_format)
    logger.info("import of %s finished: %s", path, report.summary())
    if report.inserted or report.updated:
        refresh_all_segments_task.delay()


@shared_task(name="marketing.refresh_segment")
def refresh_segment_task(segment_id: int) -> None:
    """Refresh one segment's stored membership; a second refresh of it meanwhile skips."""
    refresh_segment(segment_id)


@shared_task(name="marketing.refresh_due_segments")
def refresh_due_segments_task() -> None:
    """Refresh the dynamic segments whose interval has passed (run by beat every minute)."""
    refresh_due_segments()


@shared_task(name="marketing.refresh_all_segments")
def refresh_all_segments_task() -> None:
    """Refresh every dynamic segment: queued after an import changed the audience."""
    refresh_all_segments()
