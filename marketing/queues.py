"""The Celery queues Kairos uses, named once."""

from enum import StrEnum


class Queue(StrEnum):
    """A queue per kind of work, so a slow kind never starves another."""

    DEFAULT = "default"
    IMPORTS = "imports"
    SEGMENTS = "segments"
    SCORING = "scoring"
    ENGINE = "engine"
    EMAIL = "email"
