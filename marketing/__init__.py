"""The Kairos project package and the app that owns the audience."""

from marketing.celery import app as celery_app

__all__ = ["celery_app"]
