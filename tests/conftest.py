"""Suite-wide hooks and fixtures: PostgreSQL-only tests skip, with their reason, on SQLite; a daytime clock."""

from datetime import UTC, datetime

import pytest

from tests.clock import NOW_ENV, STARTED_AT_ENV

# A Monday, 10:00 UTC: 11:00 in Berlin, where the factories' customers live, and outside quiet hours
# (21:00 to 08:00 by default) in every zone from UTC-2 to UTC+10.
OFFICE_HOURS = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


def pytest_report_header(config) -> str:
    """Say which clock the run reads, so a failure at night shows it in the header."""
    import os

    if not os.environ.get(NOW_ENV):
        return f"clock: real ({NOW_ENV} unset)"
    return f"clock: {NOW_ENV}={os.environ[NOW_ENV]}, ticking from {os.environ.get(STARTED_AT_ENV, '?')} (Unix time)"


def pytest_collection_modifyitems(config, items) -> None:
    from django.db import connection

    if connection.vendor == "postgresql":
        return
    skip = pytest.mark.skip(reason="needs PostgreSQL (COPY, ON CONFLICT, or a test database a worker process can share); this run is on SQLite")
    for item in items:
        if "postgres_only" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def office_hours(time_machine) -> datetime:
    """Stop this process's clock at OFFICE_HOURS, for a test whose sends must not wait for quiet hours to end."""
    time_machine.move_to(OFFICE_HOURS, tick=False)
    return OFFICE_HOURS


@pytest.fixture(autouse=True)
def fresh_cache():
    """Start every test with an empty cache: rate-limit counters of one test must not throttle the next."""
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()
