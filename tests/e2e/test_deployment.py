"""The production layout of docs/operations.md as real processes: gunicorn, a worker per queue, one beat.

A shop's backend posts an event to gunicorn; the engine worker enrolls the customer and runs the
campaign's step; the e-mail worker sends it to a real SMTP server; beat ticks the whole time.
"""

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest
from django.db import connection

from campaigns.engine import launch
from campaigns.models import Campaign, Message, MessageStatus, Step
from campaigns.versions import save_template
from marketing.models import ApiKey
from tests.campaigns.conftest import WELCOME_HTML
from tests.factories import CustomerFactory
from tests.fixtures.services import PROJECT_DIR, flush_redis, worker_database_url

START_TIMEOUT_S = 60
DELIVERY_TIMEOUT_S = 90


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Processes:
    """Real processes in sessions of their own, each with a log, all stopped at the end."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env, self.logs, self.running = env, logs, {}

    def start(self, name: str, command: list[str], ready: str) -> None:
        log_path = self.logs / f"{name}.log"
        with open(log_path, "w") as log:
            process = subprocess.Popen(
                command, cwd=PROJECT_DIR, env=self.env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        self.running[name] = (process, log_path)
        deadline = time.monotonic() + START_TIMEOUT_S
        while ready not in log_path.read_text(errors="replace"):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"{name} did not start:\n{log_path.read_text(errors='replace')}", pytrace=False)
            time.sleep(0.1)

    def logs_text(self) -> str:
        return "\n".join(f"== {name}\n{path.read_text(errors='replace')[-3000:]}" for name, (_, path) in self.running.items())

    def stop(self) -> None:
        for process, _ in self.running.values():
            if process.poll() is None:
                os.killpg(process.pid, 15)
        for process, _ in self.running.values():
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, 9)
                process.wait(timeout=10)


@pytest.mark.postgres_only
def test_an_event_posted_to_gunicorn_is_mailed_through_workers_on_separate_queues_with_one_beat(
    transactional_db, redis_url, smtp_server, tmp_path
):
    # given: a live campaign, a customer and an API key, committed for the other processes to see
    template = save_template("Welcome", subject="Welcome {{ customer.first_name }}", html=WELCOME_HTML)
    campaign = Campaign.objects.create(name="Welcome", trigger_type="event", trigger_config={"event": "signed_up"})
    Step.objects.create(campaign=campaign, position=0, key="hello", type="send_email", config={"template": template.name})
    launch(campaign)
    customer = CustomerFactory(external_id="shop-42", email="ada@example.org", first_name="Ada")
    api_key = ApiKey(name="shop backend")
    raw_key = api_key.assign_new_key()
    api_key.save()
    flush_redis(redis_url)
    port = _free_port()
    env = {
        **os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", "DATABASE_URL": worker_database_url(connection.settings_dict),
        "CELERY_BROKER_URL": redis_url, "CELERY_RESULT_BACKEND": redis_url, "PYTHONUNBUFFERED": "1",
        "EMAIL_URL": f"smtp://{smtp_server.host}:{smtp_server.port}", "ENGINE_TICK_S": "2",
        "QUIET_HOURS_START_HOUR": "0", "QUIET_HOURS_END_HOUR": "0",
    }  # fmt: skip
    celery = [sys.executable, "-m", "celery", "--app", "marketing"]
    processes = Processes(env, tmp_path)
    try:
        processes.start("gunicorn", [sys.executable, "-m", "gunicorn", "marketing.wsgi", "--bind", f"127.0.0.1:{port}",
                                     "--workers", "2", "--timeout", "30"], "Booting worker")  # fmt: skip
        for queue in ("engine", "email"):
            processes.start(f"worker-{queue}", [*celery, "worker", "--queues", queue, "--concurrency", "1", "--pool", "prefork",
                                                "--hostname", f"{queue}-{uuid.uuid4().hex[:8]}@localhost", "--loglevel", "INFO",
                                                "--without-gossip", "--without-mingle"], " ready.")  # fmt: skip
        processes.start("beat", [*celery, "beat", "--loglevel", "INFO"], "beat: Starting")

        # when: the shop posts the event over HTTP
        body = json.dumps({"events": [{"id": "signup-42", "customer_id": "shop-42", "name": "signed_up",
                                       "occurred_at": "2026-03-02T10:00:00+00:00"}]}).encode()  # fmt: skip
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/api/v1/events", data=body, method="POST",
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {raw_key}"},
        )  # fmt: skip
        with urllib.request.urlopen(request, timeout=30) as response:
            accepted = json.loads(response.read())
        deadline = time.monotonic() + DELIVERY_TIMEOUT_S
        while not any("ada@example.org" in message.rcpt_tos for message in smtp_server.messages):
            if time.monotonic() > deadline:
                pytest.fail(f"nothing arrived in {DELIVERY_TIMEOUT_S} s:\n{processes.logs_text()}", pytrace=False)
            time.sleep(0.2)
        time.sleep(3)  # a few more beat ticks: nothing may be sent twice

        # then
        assert accepted["stored"] == 1
        assert [message.rcpt_tos for message in smtp_server.messages] == [["ada@example.org"]]
        assert list(Message.objects.values_list("to_email", "status")) == [("ada@example.org", MessageStatus.SENT)]
        logs = {name: path.read_text(errors="replace") for name, (_, path) in processes.running.items()}
        assert "campaigns.enroll_for_events" in logs["worker-engine"] and "succeeded" in logs["worker-engine"]
        assert "campaigns.send_messages" in logs["worker-email"]
        assert "campaigns.send_messages[" not in logs["worker-engine"]
        assert "Scheduler: Sending due task engine-tick" in logs["beat"]
        assert campaign.enrollments.get().customer_id == customer.pk
    finally:
        processes.stop()
