"""Handing work to Celery by task name, so that only `tasks.py` modules import the domain code they run.

Every task has an explicit name and a queue in CELERY_TASK_ROUTES; a domain module, an admin action
or a command enqueues by that name instead of importing the task, which would import the tasks
module and, through it, every domain module it calls (the engine would import itself back).
Without a broker the registered task runs in-process, in the caller, as `delay` would.
"""

from django.db import transaction

from marketing.celery import app


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


def enqueue_on_commit(name: str, *args, **kwargs) -> None:
    """Send the task once the current transaction commits (at once outside one); a rollback sends nothing."""
    transaction.on_commit(lambda: enqueue(name, *args, **kwargs))
