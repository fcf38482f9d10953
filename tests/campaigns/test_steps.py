"""The split, webhook and segment-membership steps through the engine: who went where, what was sent, what was called."""

import hashlib
import hmac
import http.server
import json
import ssl
import subprocess
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import pytest

from campaigns.engine import enroll_by_hand, tick
from campaigns.models import Enrollment, EnrollmentState, Message, StepVisit
from campaigns.versions import save_template
from marketing.models import Segment, SegmentKind, SegmentMembership
from tests.campaigns.test_engine import T0, Clock, make_campaign, received
from tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def clock(monkeypatch) -> Clock:
    from django.utils import timezone

    clock = Clock(T0)
    monkeypatch.setattr(timezone, "now", clock)
    return clock


# --- split -----------------------------------------------------------------------------------


def test_a_split_sends_each_enrollment_down_one_variant_by_weight_and_always_the_same_one(
    clock, run, smtp_settings, welcome_template
):
    other = save_template("Other", subject="Another way", html=welcome_template.variants.get().current_version.html)
    campaign = make_campaign(
        "A/B",
        "manual",
        {},
        [
            ("split", "split", {"variants": [{"name": "A", "weight": 70, "then": "send-a"}, {"name": "B", "weight": 30, "then": "send-b"}]}),
            ("send-a", "send_email", {"template": welcome_template.name}),
            ("end-a", "exit", {}),
            ("send-b", "send_email", {"template": other.name}),
        ],
    )  # fmt: skip
    customers = [CustomerFactory() for _ in range(40)]

    run(enroll_by_hand, campaign, [customer.pk for customer in customers])

    split = campaign.steps.get(key="split")
    expected = {}
    for enrollment in Enrollment.objects.filter(campaign=campaign):
        # The documented rule: SHA-256 of "enrollment:step", its first 8 bytes modulo the total weight.
        point = int.from_bytes(hashlib.sha256(f"{enrollment.pk}:{split.pk}".encode()).digest()[:8]) % 100
        expected[enrollment.customer_id] = "A" if point < 70 else "B"
    variants = dict(Enrollment.objects.values_list("customer_id", "variant"))
    assert variants == expected
    assert 0 < Counter(variants.values())["B"] < 40
    sent = dict(Message.objects.values_list("customer_id", "template__name"))
    assert sent == {customer: "Welcome" if variant == "A" else "Other" for customer, variant in variants.items()}
    assert received(smtp_settings) == Counter({customer.email: 1 for customer in customers})
    assert Counter(Enrollment.objects.values_list("state", flat=True)) == {
        EnrollmentState.EXITED: Counter(variants.values())["A"],
        EnrollmentState.COMPLETED: Counter(variants.values())["B"],
    }


# --- add_to_segment / remove_from_segment ----------------------------------------------------


def test_segment_steps_add_to_and_remove_from_static_lists(clock, run):
    offered = Segment.objects.create(name="Win-back offered", kind=SegmentKind.STATIC)
    waiting = Segment.objects.create(name="Waiting for win-back", kind=SegmentKind.STATIC)
    customer, bystander = CustomerFactory(), CustomerFactory()
    for person in (customer, bystander):
        SegmentMembership.objects.create(segment=waiting, customer=person, entered_at=T0)
    campaign = make_campaign(
        "Win-back",
        "manual",
        {},
        [
            ("offer", "add_to_segment", {"segment": offered.name}),
            ("again", "add_to_segment", {"segment": offered.name}),
            ("done", "remove_from_segment", {"segment": waiting.name}),
        ],
    )

    run(enroll_by_hand, campaign, [customer.pk])

    assert list(SegmentMembership.objects.filter(segment=offered).values_list("customer_id", "entered_at")) == [
        (customer.pk, T0)
    ]
    assert list(SegmentMembership.objects.filter(segment=waiting).values_list("customer_id", flat=True)) == [bystander.pk]
    assert list(StepVisit.objects.order_by("pk").values_list("outcome", flat=True)) == [
        f"added to segment {offered.pk}", f"added to segment {offered.pk}", f"removed from segment {waiting.pk}",
    ]  # fmt: skip


def test_a_segment_step_refuses_a_dynamic_segment_at_save():
    from campaigns.steps import StepError, steps

    Segment.objects.create(name="Lapsing", kind=SegmentKind.DYNAMIC)

    with pytest.raises(StepError) as refused:
        steps.get("add_to_segment").clean({"segment": "Lapsing"}, set())

    assert (refused.value.field, refused.value.message) == (
        "segment",
        "'Lapsing' is dynamic; steps may only add to or remove from static segments",
    )


# --- webhook ---------------------------------------------------------------------------------


@dataclass
class HookServer:
    """An HTTPS server on the loopback that records each POST and answers with the next status of `statuses`."""

    url: str
    statuses: list[int]
    requests: list[tuple[dict, bytes]] = field(default_factory=list)


@pytest.fixture(scope="session")
def certificate(tmp_path_factory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("tls")
    key, cert = folder / "key.pem", folder / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return key, cert


@pytest.fixture
def hook_server(certificate, monkeypatch, settings) -> Iterator[HookServer]:
    key, cert = certificate
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # the webhook step verifies the server like any other
    state = HookServer(url="", statuses=[])

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            state.requests.append((dict(self.headers), body))
            status = state.statuses.pop(0) if state.statuses else 200
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"https://127.0.0.1:{server.server_address[1]}/hooks/kairos"
    settings.WEBHOOK_ALLOWED_HOSTS = ["127.0.0.1"]  # webhook steps call allowed hosts only: this server's
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


def test_a_webhook_posts_the_enrollment_signed_with_hmac_sha256(clock, run, hook_server, settings):
    settings.WEBHOOK_SIGNING_KEY = "test-signing-key"
    customer = CustomerFactory(external_id="C-7")
    campaign = make_campaign("Tell the CRM", "manual", {}, [("hook", "webhook", {"url": hook_server.url})])

    run(enroll_by_hand, campaign, [customer.pk])

    [(headers, body)] = hook_server.requests
    assert json.loads(body) == {
        "campaign": "Tell the CRM",
        "step": "hook",
        "customer": "C-7",
        "email": customer.email,
        "entered_at": T0.isoformat(),
        "trigger": {"manual": True},
    }
    expected = hmac.new(b"test-signing-key", body, hashlib.sha256).hexdigest()
    assert headers["X-Kairos-Signature"] == f"sha256={expected}"
    assert headers["Content-Type"] == "application/json"
    assert list(StepVisit.objects.values_list("outcome", flat=True)) == ["webhook: HTTP 200"]
    assert Enrollment.objects.get().state == EnrollmentState.COMPLETED


def test_a_failing_webhook_is_retried_with_back_off_and_given_up_after_the_last_attempt(
    clock, run, hook_server, settings
):
    settings.WEBHOOK_MAX_ATTEMPTS = 3
    hook_server.statuses = [500, 503, 502]
    customer = CustomerFactory()
    campaign = make_campaign(
        "Flaky CRM", "manual", {}, [("hook", "webhook", {"url": hook_server.url}), ("after", "exit", {})]
    )

    run(enroll_by_hand, campaign, [customer.pk])
    assert Enrollment.objects.get().next_run_at == T0 + timedelta(seconds=60)
    clock.advance(seconds=59)
    run(tick)
    assert len(hook_server.requests) == 1
    clock.advance(seconds=1)
    run(tick)
    assert Enrollment.objects.get().next_run_at == T0 + timedelta(seconds=60 + 120)
    clock.advance(seconds=120)
    run(tick)

    assert len(hook_server.requests) == 3
    assert list(StepVisit.objects.order_by("pk").values_list("outcome", flat=True)) == [
        "webhook attempt 1 failed: HTTP 500",
        "webhook attempt 2 failed: HTTP 503",
        "webhook failed after 3 attempts: HTTP 502",
        "exited",
    ]
    assert Enrollment.objects.get().state == EnrollmentState.EXITED
