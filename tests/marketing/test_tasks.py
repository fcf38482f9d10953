"""The import task: named, routed to the imports queue, and run in-process when no broker is set."""

import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest
import redis
from celery.result import EagerResult

from marketing.celery import app as celery_app
from marketing.models import Consent, Customer, Order
from marketing.queues import Queue
from marketing.tasks import import_file_task
from tests.factories import CustomerFactory


def test_import_file_task_has_its_explicit_name_and_the_imports_queue():
    assert import_file_task.name == "marketing.import_file"
    registered = celery_app.tasks["marketing.import_file"]
    assert registered.run is import_file_task.run
    route = celery_app.amqp.router.route({}, "marketing.import_file")
    assert route["queue"].name == Queue.IMPORTS == "imports"


@pytest.mark.services
def test_import_file_task_is_published_to_the_imports_queue(celery_broker, tmp_path):
    path = tmp_path / "customers.csv"

    result = import_file_task.delay("customers", str(path))

    client = redis.Redis.from_url(celery_broker)
    queued = {queue.value: client.llen(queue.value) for queue in Queue}
    message = json.loads(client.lindex(Queue.IMPORTS.value, 0))
    client.close()
    assert queued == {"default": 0, "imports": 1, "segments": 0, "scoring": 0, "engine": 0, "email": 0}
    assert message["headers"]["task"] == "marketing.import_file"
    assert message["headers"]["id"] == result.id
    assert message["properties"]["delivery_info"]["routing_key"] == "imports"


def test_import_file_task_runs_in_process_without_a_broker(db, tmp_path):
    path = tmp_path / "customers.csv"
    path.write_text(
        "external_id,email,first_name,consent_state\n"
        "C00001,ada@example.com,Ada,opted_in\n"
        "C00002,Grace@Example.com,Grace,unsubscribed\n"
    )

    result = import_file_task.delay("customers", str(path))

    assert celery_app.conf.task_always_eager is True
    assert isinstance(result, EagerResult)
    assert result.state == "SUCCESS"
    assert result.get() is None
    rows = list(Customer.objects.order_by("external_id").values_list("external_id", "email", "first_name", "consent_state"))
    assert rows == [
        ("C00001", "ada@example.com", "Ada", Consent.OPTED_IN),
        ("C00002", "grace@example.com", "Grace", Consent.OPTED_OUT),
    ]


def test_import_file_task_passes_mapping_and_date_format_to_the_importer(db, tmp_path):
    customer = CustomerFactory(external_id="C00042")
    path = tmp_path / "orders.csv"
    path.write_text(
        "order_no,buyer,placed,amount\n"
        "A-1,C00042,31/01/2024 10:15,19.90\n"
        "A-2,C00042,01/02/2024 08:00,5.00\n"
    )

    import_file_task.delay(
        "orders",
        str(path),
        mapping={"external_id": "order_no", "customer": "buyer", "placed_at": "placed", "total": "amount"},
        date_format="%d/%m/%Y %H:%M",
    )

    rows = list(Order.objects.order_by("external_id").values_list("external_id", "customer_id", "placed_at", "total"))
    assert rows == [
        ("A-1", customer.pk, datetime(2024, 1, 31, 10, 15, tzinfo=UTC), Decimal("19.90")),
        ("A-2", customer.pk, datetime(2024, 2, 1, 8, 0, tzinfo=UTC), Decimal("5.00")),
    ]
    assert Customer.objects.count() == 1
