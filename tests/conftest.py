"""Suite-wide hooks: PostgreSQL-only tests are skipped, with their reason, on the SQLite run."""

import pytest


def pytest_collection_modifyitems(config, items) -> None:
    from django.db import connection

    if connection.vendor == "postgresql":
        return
    skip = pytest.mark.skip(reason="needs PostgreSQL (COPY, ON CONFLICT, or a test database a worker process can share); this run is on SQLite")
    for item in items:
        if "postgres_only" in item.keywords:
            item.add_marker(skip)
