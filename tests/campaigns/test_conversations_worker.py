"""Conversations through a real Celery worker on Redis: the API stores, the worker reads, replies reach real SMTP.

Nothing here depends on the hour: replies keep no quiet hours, and no hold or window is crossed.
"""

import json
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from campaigns.conversations.workflows import install_workflows
from marketing.models import ApiKey, InboundMessage, InboundStatus
from ml.intent_registry import MESSAGE_INTENTS
from ml.models import ModelStatus, ModelVersion
from tests.factories import CustomerFactory, OrderFactory
from tests.fixtures.services import wait_until

# A safety bound on waiting for the worker process, not a performance figure.
WORKER_TIMEOUT_S = 60


@pytest.fixture
def worker_mail(smtp_server, monkeypatch):
    """Make the worker process (started after this fixture) send through the test's SMTP server."""
    monkeypatch.setenv("EMAIL_URL", f"smtp://{smtp_server.host}:{smtp_server.port}")
    return smtp_server


@pytest.mark.postgres_only
@pytest.mark.services
def test_a_chinese_order_question_is_answered_in_chinese_by_the_worker(
    worker_mail, intent_artifact, celery_worker_process
):
    ModelVersion.objects.create(
        task=MESSAGE_INTENTS,
        version=1,
        status=ModelStatus.ACTIVE,
        horizon_days=0,
        beats_baselines=True,
        artifact=intent_artifact,
    )
    install_workflows()
    customer = CustomerFactory()
    order = OrderFactory(customer=customer, external_id="DD8812345678", placed_at=timezone.now() - timedelta(days=5))
    _, raw_key = ApiKey.issue("help desk")

    response = Client().post(
        "/api/v1/messages",
        json.dumps(
            {
                "messages": [
                    {
                        "customer_id": customer.external_id,
                        "body": f"你好，我的订单{order.external_id}到哪了？什么时候能到？",
                    }
                ]
            }
        ),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {raw_key}",
    )

    assert response.status_code == 202
    wait_until(
        lambda: len(worker_mail.messages) == 1,
        "the worker's reply at the SMTP server",
        WORKER_TIMEOUT_S,
        state=lambda: list(InboundMessage.objects.values_list("actions", flat=True)),
    )
    [reply] = worker_mail.messages
    text = reply.message.get_body(("plain",)).get_content()
    assert reply.rcpt_tos == [customer.email]
    assert f"订单号：{order.external_id}" in text and "订单状态：已完成" in text
    message = InboundMessage.objects.get()
    assert (message.language, message.intent, message.status) == ("zh", "order_status", InboundStatus.ANSWERED)
