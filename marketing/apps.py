import logging

from django.apps import AppConfig
from django.conf import settings

logger = logging.getLogger("kairos")


class MarketingConfig(AppConfig):
    name = "marketing"
    verbose_name = "Audience"

    def ready(self) -> None:
        if settings.CELERY_TASK_ALWAYS_EAGER:
            logger.info("CELERY_BROKER_URL is not set: tasks run in-process, in the calling command.")
