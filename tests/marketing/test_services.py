"""The service fixtures are the real thing: Redis answers, a worker process runs tasks, SMTP receives mail."""

import os
import signal
import smtplib
from decimal import Decimal

import pytest
import redis
from celery.result import AsyncResult
from django.core.mail import send_mail

from marketing.models import Consent, Customer, Product
from marketing.tasks import import_file_task

pytestmark = pytest.mark.services


def test_redis_url_answers_on_a_database_of_its_own(redis_url):
    client = redis.Redis.from_url(redis_url)

    client.set("kairos:test", "ready")

    assert client.get("kairos:test") == b"ready"
    assert client.connection_pool.connection_kwargs["db"] != 0
    client.delete("kairos:test")
    client.close()


@pytest.mark.postgres_only
def test_import_task_runs_in_the_worker_process(celery_worker_process, tmp_path):
    path = tmp_path / "customers.csv"
    path.write_text(
        "external_id,email,first_name,consent_state\n"
        "C00001,ada@example.com,Ada,opted_in\n"
        "C00002,grace@example.com,Grace,opted_out\n"
    )

    result = import_file_task.delay("customers", str(path))

    assert isinstance(result, AsyncResult)
    assert result.get(timeout=30) is None
    assert result.state == "SUCCESS"
    celery_worker_process.wait_for_log(f"Task marketing.import_file[{result.id}] succeeded")
    assert celery_worker_process.pid != os.getpid()
    assert celery_worker_process.is_alive()
    rows = list(Customer.objects.order_by("external_id").values_list("external_id", "email", "first_name", "consent_state"))
    assert rows == [
        ("C00001", "ada@example.com", "Ada", Consent.OPTED_IN),
        ("C00002", "grace@example.com", "Grace", Consent.OPTED_OUT),
    ]


@pytest.mark.postgres_only
def test_killed_worker_restarts_as_a_new_process_that_runs_tasks(celery_worker_process, tmp_path):
    path = tmp_path / "products.csv"
    path.write_text("sku,name,price\nP00001,Tea,4.50\n")
    first_pid = celery_worker_process.pid

    celery_worker_process.kill(signal.SIGKILL)
    killed_code = celery_worker_process.process.returncode
    celery_worker_process.restart()
    result = import_file_task.delay("products", str(path))

    assert killed_code == -signal.SIGKILL
    assert celery_worker_process.pid != first_pid
    assert result.get(timeout=30) is None
    assert list(Product.objects.values_list("sku", "name", "price")) == [("P00001", "Tea", Decimal("4.50"))]


def test_send_mail_reaches_the_smtp_server(smtp_settings):
    sent = send_mail(
        "Your basket misses you",
        "Come back for 10% off.",
        "shop@example.com",
        ["ada@example.com"],
    )

    assert sent == 1
    assert len(smtp_settings.messages) == 1
    received = smtp_settings.messages[0]
    assert received.mail_from == "shop@example.com"
    assert received.rcpt_tos == ["ada@example.com"]
    assert received.message["Subject"] == "Your basket misses you"
    assert received.message["From"] == "shop@example.com"
    assert received.message["To"] == "ada@example.com"
    assert received.message.get_content() == "Come back for 10% off.\n"


def test_refused_recipient_raises_with_the_servers_code(smtp_settings):
    smtp_settings.reject("bounce@example.com", 554, "5.7.1 Mailbox unavailable")

    with pytest.raises(smtplib.SMTPRecipientsRefused) as raised:
        send_mail("Hello", "Body", "shop@example.com", ["bounce@example.com"])

    assert raised.value.recipients == {"bounce@example.com": (554, b"5.7.1 Mailbox unavailable")}
    assert smtp_settings.messages == []


def test_partly_refused_message_reaches_only_the_accepted_recipient(smtp_settings):
    smtp_settings.reject("bounce@example.com", 550, "5.1.1 No such user")

    sent = send_mail("Hello", "Body", "shop@example.com", ["ada@example.com", "bounce@example.com"])

    assert sent == 1
    assert [received.rcpt_tos for received in smtp_settings.messages] == [["ada@example.com"]]
