"""The events API fuzzed from its own OpenAPI document (schemathesis): whatever arrives, no 5xx.

Bounded in time by the number of generated cases per operation (FUZZ_EXAMPLES), so it runs in
`make test` on every commit; raise KAIROS_FUZZ_EXAMPLES for a longer hunt.
"""

import os

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from marketing.models import ApiKey, Event
from marketing.openapi import openapi_document

FUZZ_EXAMPLES = int(os.environ.get("KAIROS_FUZZ_EXAMPLES", "60"))

schema = schemathesis.openapi.from_dict(openapi_document()).include(path_regex=r"^/api/v1/(events|messages)$")


@pytest.fixture
def wsgi_app():
    """The project's WSGI application, keeping the test's database connection open as Django's test client does."""
    from django.core import signals
    from django.core.wsgi import get_wsgi_application
    from django.db import close_old_connections

    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield get_wsgi_application()
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@pytest.fixture
def api_key_header(db):
    api_key = ApiKey(name="fuzz")
    raw = api_key.assign_new_key()
    api_key.save()
    return {"Authorization": f"Bearer {raw}"}


@pytest.mark.django_db
@schema.parametrize()
@settings(
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_the_api_answers_every_generated_request_without_a_server_error(case, api_key_header, wsgi_app):
    response = case.call(app=wsgi_app, headers=api_key_header)

    assert response.status_code < 500, (response.status_code, response.text[:500])
    assert response.status_code in {200, 202, 400, 401, 405, 413, 415, 429}, response.status_code
    if response.status_code >= 400:
        assert "error" in response.json() or "errors" in response.json()


def test_the_fuzzed_operations_are_the_events_and_messages_endpoints():
    assert sorted(result.ok().path for result in schema.get_all_operations()) == ["/api/v1/events", "/api/v1/messages"]


def test_a_fuzz_run_stores_nothing_it_did_not_accept(db):
    assert Event.objects.count() == 0
