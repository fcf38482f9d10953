"""The Celery application: configured from Django settings, one queue per `Queue` member."""

import os

from celery import Celery
from celery.signals import worker_process_init
from kombu import Queue as KombuQueue

from marketing.queues import Queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "marketing.settings")

app = Celery("kairos")
app.config_from_object("django.conf:settings", namespace="CELERY")
# A worker started without -Q consumes every queue declared here.
app.conf.task_queues = [KombuQueue(queue.value, routing_key=queue.value) for queue in Queue]
app.autodiscover_tasks()


@worker_process_init.connect
def limit_pool_process(**kwargs) -> None:
    """Cap each pool process's memory (WORKER_MEMORY_LIMIT_MB) as it starts."""
    from marketing.resources import limit_worker_memory

    limit_worker_memory()
