"""Process limits for workers: a runaway task is stopped by the kernel and Celery, not only by its own checks."""

import resource

from django.conf import settings


def limit_worker_memory(limit_mb: int | None = None) -> int:
    """Cap this process's data segment (heap and anonymous maps) at `limit_mb`; return the cap in bytes (0: none).

    Past the cap an allocation raises MemoryError in the task, which fails that task alone; the
    worker process survives and takes the next one.
    """
    limit_mb = settings.WORKER_MEMORY_LIMIT_MB if limit_mb is None else limit_mb
    if limit_mb <= 0:
        return 0
    limit = limit_mb * 1024 * 1024
    _, hard = resource.getrlimit(resource.RLIMIT_DATA)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_DATA, (limit, hard))
    return limit
