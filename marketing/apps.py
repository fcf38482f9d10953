import logging

from django.apps import AppConfig
from django.conf import settings
from django.utils.module_loading import autodiscover_modules

logger = logging.getLogger("kairos")


class MarketingConfig(AppConfig):
    name = "marketing"
    verbose_name = "Audience"

    def ready(self) -> None:
        # Built-in segment rule types register on import; other apps add theirs in segment_rules.py.
        import marketing.segments.rule_types  # noqa: F401

        autodiscover_modules("segment_rules")
        if settings.CELERY_TASK_ALWAYS_EAGER:
            logger.info("CELERY_BROKER_URL is not set: tasks run in-process, in the calling command.")
