"""Celery tasks of the audience app: thin shells over plain functions (queues: CELERY_TASK_ROUTES)."""

import logging

from celery import shared_task

from marketing.imports import import_file

logger = logging.getLogger("kairos")


@shared_task(name="marketing.import_file")
def import_file_task(kind: str, path: str, mapping: dict[str, str] | None = None, date_format: str = "auto") -> None:
    """Import a file that the web process saved where the workers can read it."""
    report = import_file(kind, path, mapping=mapping, date_format=date_format)
    logger.info("import of %s finished: %s", path, report.summary())
