"""Handing work to Celery by task name, so that only `tasks.py` modules import the domain code they run.

Every task has an explicit name and a queue in CELERY_TASK_ROUTES; a domain module, an admin action
or a command enqueues by that name instead of importing the task, which would import the tasks
module and, through it, every domain module it calls (the engine would import itself back).
Without a broker the registered task runs in-process, in the caller, as `delay` would.
"""

import logging
import threading

from django.db import transaction

from marketing.celery import app

logger = logging.getLogger("kairos")

# Ids per gathered task at most: a burst becomes several tasks, each a bounded batch.
GATHER_MAX_IDS = 200


def enqueue(name: str, *args, **kwargs) -> None:
    """Send the task registered under `name` with these arguments, now; an unknown name raises."""
    task = app.tasks.get(name)
    if task is None:
        # Discovery is lazy; a process that never imported the tasks modules imports them once here.
        app.autodiscover_tasks(force=True)
        task = app.tasks.get(name)
    if task is None:
        raise LookupError(f"no task named {name!r} is registered (is its app's tasks.py discovered?)")
    task.apply_async(args, kwargs)


def app_is_eager() -> bool:
    """Whether tasks run in-process, in the caller (no broker configured)."""
    return bool(app.conf.task_always_eager)


def enqueue_on_commit(name: str, *args, **kwargs) -> None:
    """Send the task once the current transaction commits (at once outside one); a rollback sends nothing."""
    transaction.on_commit(lambda: enqueue(name, *args, **kwargs))


class _Gatherer:
    """Ids handed over within a short window, sent as one task per name when it closes."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.pending: dict[str, list[int]] = {}
        self.timer: threading.Timer | None = None

    def add(self, name: str, ids: list[int], window_s: float) -> None:
        with self.lock:
            self.pending.setdefault(name, []).extend(ids)
            if self.timer is None:
                self.timer = threading.Timer(window_s, self.flush)
                self.timer.daemon = True
                self.timer.start()

    def flush(self) -> None:
        with self.lock:
            pending, self.pending, self.timer = self.pending, {}, None
        for name, ids in pending.items():
            for start in range(0, len(ids), GATHER_MAX_IDS):
                try:
                    enqueue(name, ids[start : start + GATHER_MAX_IDS])
                except Exception:
                    # The rows are stored; whatever repairs a lost hand-over (the engine's tick) finds them.
                    logger.exception("%s: handing over %d ids failed", name, len(ids[start : start + GATHER_MAX_IDS]))


_gatherer = _Gatherer()


def enqueue_gathered(name: str, ids: list[int], window_ms: int) -> None:
    """Send `ids` to the task `name`, gathered with the other ids this process hands it within `window_ms`.

    At a hundred requests a second, one task per few requests instead of one per request: the
    worker pays its per-task cost once per batch. The ids wait in this process's memory until the
    window closes, so the caller must own a repair for a process that dies meanwhile (as for a lost
    broker). Without a broker, or with a window of 0, the task is sent at once.
    """
    if window_ms <= 0 or app.conf.task_always_eager:
        enqueue(name, ids)
        return
    _gatherer.add(name, list(ids), window_ms / 1000)
