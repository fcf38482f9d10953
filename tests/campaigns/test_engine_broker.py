"""The engine across a broker restart: a Redis of the test's own, stopped with work queued and started empty."""

import os
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
from django.db import connection
from django.utils import timezone

from campaigns.delivery import dispatch_due_messages
from campaigns.engine import enroll_by_hand, enroll_for_events, launch, tick
from campaigns.models import Campaign, Enrollment, EnrollmentState, Message, MessageStatus, Step
from marketing.models import Consent, Customer
from marketing.queues import Queue
from marketing.suppression import email_hash
from tests.fixtures.services import CeleryWorker, celery_app_using_broker, wait_until, worker_database_url

RECIPIENTS = 20
READY_TIMEOUT_S = 10
PROGRESS_TIMEOUT_S = 120
POLL_S = 0.05


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class RedisServer:
    """A redis-server process that keeps nothing on disk, so a restart starts it empty."""

    port: int
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        command = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            try:
                redis.Redis.from_url(self.url, socket_timeout=1).ping()
                return
            except redis.RedisError:
                if time.monotonic() > deadline:
                    pytest.fail(f"redis-server on port {self.port} did not start", pytrace=False)
                time.sleep(POLL_S)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=READY_TIMEOUT_S)

    def queued(self) -> int:
        client = redis.Redis.from_url(self.url)
        return sum(client.llen(queue.value) for queue in Queue)


@pytest.fixture
def private_redis() -> Iterator[RedisServer]:
    server = RedisServer(_free_port())
    server.start()
    try:
        yield server
    finally:
        server.stop()


def worker_on(broker: str, smtp_server, tmp_path: Path) -> CeleryWorker:
    from marketing.celery import app

    hostname = f"kairos-broker-test-{uuid.uuid4().hex[:8]}@localhost"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": worker_database_url(connection.settings_dict),
        "CELERY_BROKER_URL": broker,
        "CELERY_RESULT_BACKEND": broker,
        "EMAIL_URL": f"smtp://{smtp_server.host}:{smtp_server.port}",
        "PYTHONUNBUFFERED": "1",
    }
    command = [
        sys.executable, "-m", "celery", "--app", "marketing", "worker", "--loglevel", "INFO", "--pool", "solo",
        "--queues", ",".join(queue.value for queue in Queue), "--hostname", hostname,
        "--without-heartbeat", "--without-gossip", "--without-mingle",
    ]  # fmt: skip
    return CeleryWorker(command=command, env=env, hostname=hostname, log_path=tmp_path / "worker.log", app=app)


@pytest.mark.postgres_only
@pytest.mark.django_db(transaction=True)
def test_work_queued_when_the_broker_restarts_empty_is_found_again_in_the_database(
    private_redis, smtp_server, welcome_template, tmp_path
):
    from marketing.celery import app

    # The worker reads its own clock, which this test does not move: sends must not wait for morning.
    campaign = Campaign.objects.create(name="Across a restart", trigger_type="manual", quiet_hours=False)
    Step.objects.create(
        campaign=campaign, position=0, key="hello", type="send_email", config={"template": welcome_template.name}
    )
    launch(campaign)
    addresses = [f"restart-{number:03d}@example.com" for number in range(RECIPIENTS)]
    Customer.objects.bulk_create(
        Customer(
            external_id=f"R{number:03d}", email=address, email_hash=email_hash(address), consent_state=Consent.OPTED_IN
        )
        for number, address in enumerate(addresses)
    )
    worker = worker_on(private_redis.url, smtp_server, tmp_path)
    with celery_app_using_broker(app, private_redis.url):
        # No worker runs yet: the hand-over sits in Redis when Redis goes down and comes back empty.
        enroll_by_hand(campaign, list(Customer.objects.values_list("pk", flat=True)))
        assert private_redis.queued() == 1
        private_redis.stop()
        private_redis.start()
        assert private_redis.queued() == 0
        worker.start()
        try:
            tick()  # what beat does every few seconds: the enrollments are due and unclaimed, so they go again
            wait_until(
                lambda: not Enrollment.objects.filter(state=EnrollmentState.ACTIVE).exists(),
                "every enrollment to finish",
                PROGRESS_TIMEOUT_S,
            )
            dispatch_due_messages()
            wait_until(
                lambda: not Message.objects.exclude(status=MessageStatus.SENT).exists(),
                "every message to be sent",
                PROGRESS_TIMEOUT_S,
            )
        finally:
            worker.stop()

    received = Counter(address for message in smtp_server.messages for address in message.rcpt_tos)
    assert received == Counter(dict.fromkeys(addresses, 1))
    assert Message.objects.filter(status=MessageStatus.SENT).count() == RECIPIENTS


@pytest.mark.postgres_only
@pytest.mark.django_db(transaction=True)
def test_an_event_stored_while_the_broker_is_down_is_enrolled_at_the_next_tick_exactly_once(
    private_redis, welcome_template, settings
):
    from marketing.celery import app
    from marketing.ingest import store_events

    settings.ENGINE_EVENT_REPAIR_S = 0  # the tick below runs right after; the wait itself is tested in test_triggers
    settings.ENGINE_EVENT_GATHER_MS = 0  # hand over in the request's own thread, while the broker is down
    campaign = Campaign.objects.create(
        name="Cart", trigger_type="event", trigger_config={"event": "cart_added"}, quiet_hours=False
    )
    Step.objects.create(campaign=campaign, position=0, key="hello", type="send_email", config={"template": welcome_template.name})
    launch(campaign)
    customer = Customer.objects.create(
        external_id="B1", email="b1@example.com", email_hash=email_hash("b1@example.com"), consent_state=Consent.OPTED_IN
    )
    with celery_app_using_broker(app, private_redis.url):
        private_redis.stop()
        # The API's transaction commits; its hand-over to the engine finds no broker and is lost.
        report = store_events(
            [{"id": "cart-1", "customer_id": "B1", "name": "cart_added", "occurred_at": "2026-03-02T10:00:00Z"}],
            timezone.now(),
        )
        assert Enrollment.objects.count() == 0
        private_redis.start()
        tick()
        tick()
        enroll_for_events(report.stored_ids)  # a late duplicate of the lost task admits nothing more

    assert list(Enrollment.objects.values_list("customer_id", "event_id", "state")) == [
        (customer.pk, report.stored_ids[0], EnrollmentState.ACTIVE)
    ]
    assert private_redis.queued() == 1  # its first steps were handed to the engine queue, once
