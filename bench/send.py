"""Benchmark: sending a personalised broadcast through Kairos against a raw render-and-send loop.

    python bench/send.py --messages 20000 --workers 2

Writes N customers with bench.kairos.test addresses into a fresh PostgreSQL database, publishes
a template with four recommendation blocks and queues a broadcast of it. Real Celery prefork
workers (`--workers` processes) on Redis then send it through the whole delivery path: outbox
rows, claims with the frequency cap and quiet hours every marketing message meets (the customers
live in a zone where it is about midday, so none waits for the morning whatever the hour of the
run), the last-moment suppression and consent checks, rendering, link tracking, one SMTP
connection per batch and the recorded statuses. The Kairos time runs from `queue_broadcast` to the
last message final in the database.

Of the N customers, one in a hundred is on the suppression list and one in a hundred has no
consent; half of each are so before the broadcast is queued (queueing leaves them out) and half
become so in the queueing transaction, before any worker runs (the send-time check must stop
them). None of them may arrive.

In the same run, one process renders the same compiled sources with a plain `jinja2.Environment`
(autoescaped HTML), builds the same message with `EmailMultiAlternatives` (same headers, text and
HTML parts) and sends it to the same recipients over one connection of Django's SMTP backend. The
contexts are read from the database before that loop is timed.

Both runs go to Postfix's `smtp-sink` in its own process, which appends every complete message to
a dump file (downloaded with `apt-get download postfix` into var/bench/postfix/ on first use;
nothing is installed). Recipients are counted there: one seen twice is a duplicate, one expected
and never seen is missing. The last line printed is one JSON object; `ratio` is Kairos's rate with
`workers` processes divided by the raw loop's rate in one process.
"""

import argparse
import functools
import json
import os
import pwd
import re
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.databases import recreate_database  # noqa: E402 - needs the project root on the path
from bench.workers import start_worker, tree_cpu_s  # noqa: E402 - needs the project root on the path

BENCH_DATABASE = "kairos_bench_send"
BROKER_DB = 12
POSTFIX_DIR = ROOT / "var" / "bench" / "postfix"
SINK_BINARY = POSTFIX_DIR / "usr" / "sbin" / "smtp-sink"
SINK_LIBRARIES = POSTFIX_DIR / "usr" / "lib" / "postfix"
SINK_DIR = ROOT / "var" / "bench" / "send"
# smtp-sink refuses to keep super-user privileges; it drops them to this user after binding.
SINK_USER = "nobody"
SINK_READY_TIMEOUT_S = 10
POLL_INTERVAL_S = 0.05
PUBLIC_BASE_URL = "https://kairos.bench.example"
DOMAIN = "bench.kairos.test"
PRODUCTS = 40
RECOMMENDATIONS_PER_MESSAGE = 4
# Customer number n is refused when n % 100 is one of these; n % 200 decides before or after queueing.
SUPPRESSED_REMAINDER = 17
NO_CONSENT_REMAINDER = 53

FIRST_NAMES = ["Anna", "Jürgen", "Zoë", "Mateo", "Søren", "Aiko", "", "Fatima", "Liam", "Chloé", "Oskar", "Priya"]
LAST_NAMES = ["Schmidt", "Dubois", "Nowak", "García", "O'Brien", "Müller", "Rossi", "Jansen", "Kowalski", ""]
CITIES = [
    ("DE", "Berlin", "de-DE"),
    ("FR", "Lyon", "fr-FR"),
    ("GB", "Leeds", "en-GB"),
    ("PL", "Kraków", "pl-PL"),
    ("US", "", ""),
]
CATEGORIES = ["Shoes", "Bags", "Jackets", "Knitwear", "Accessories"]

TEMPLATE_SUBJECT = "{{ customer.greeting_name }}, four picks for you"
TEMPLATE_HTML = """{% extends "emails/base.html" %}
{% from "emails/recommendations.html" import product_grid %}
{% block content %}
<h1>Hello {{ customer.greeting_name }}</h1>
<p>We picked these for you{% if customer.city %} in {{ customer.city }}{% endif %}: four favourites from this season.</p>
{{ product_grid(recommendations) }}
<p><a class="button" href="{{ links.shop }}/sale?utm_source=kairos&amp;utm_campaign={{ campaign.name|urlencode }}">See the whole sale</a></p>
{% endblock %}"""


# --- The recommendation source the workers are pointed at -------------------------------------


@functools.cache
def _catalogue() -> list[dict]:
    """Return the best sellers, read once per process; the bench shop sells the same list all run."""
    from marketing.models import Product

    return list(
        Product.objects.order_by("sku").values("sku", "name", "url", "image_url", "price", "currency", "category")
    )


def four_recommendations(customer_ids: list[int]) -> dict[int, list[dict]]:
    """Recommend four best sellers per customer, a different window of the list for each."""
    catalogue = _catalogue()
    size = len(catalogue)
    return {
        customer_id: [catalogue[(customer_id + offset) % size] for offset in range(RECOMMENDATIONS_PER_MESSAGE)]
        for customer_id in customer_ids
    }


# --- smtp-sink ------------------------------------------------------------------------------


def ensure_smtp_sink() -> None:
    """Download and unpack Postfix's .deb into var/bench/postfix/ unless smtp-sink is already there."""
    if SINK_BINARY.exists():
        return
    POSTFIX_DIR.mkdir(parents=True, exist_ok=True)
    subprocess.run(["apt-get", "download", "postfix"], cwd=POSTFIX_DIR, check=True, capture_output=True)
    package = max(POSTFIX_DIR.glob("postfix_*.deb"), key=lambda path: path.stat().st_mtime)
    subprocess.run(["dpkg", "-x", str(package), str(POSTFIX_DIR)], check=True)
    if not SINK_BINARY.exists():
        raise SystemExit(f"{package.name} holds no usr/sbin/smtp-sink")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class SmtpSink:
    """One smtp-sink process appending every complete message to one dump file."""

    def __init__(self, name: str) -> None:
        SINK_DIR.mkdir(parents=True, exist_ok=True)
        self.dump_path = SINK_DIR / f"{name}.dump"
        self.log_path = SINK_DIR / f"{name}.log"
        self.dump_path.unlink(missing_ok=True)
        self.dump_size = 0
        self.port = free_port()
        command = [str(SINK_BINARY), "-D", str(self.dump_path)]
        if os.geteuid() == 0:
            # The sink writes as SINK_USER; its capture files are made next to the dump.
            os.chown(SINK_DIR, pwd.getpwnam(SINK_USER).pw_uid, -1)
            command += ["-u", SINK_USER]
        command += [f"127.0.0.1:{self.port}", "256"]
        env = {**os.environ, "LD_LIBRARY_PATH": str(SINK_LIBRARIES)}
        self.log = open(self.log_path, "w")  # noqa: SIM115 (kept open for the sink's lifetime)
        self.process = subprocess.Popen(
            command, env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True
        )
        deadline = time.monotonic() + SINK_READY_TIMEOUT_S
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"smtp-sink did not start:\n{self.log_path.read_text()}") from None
                time.sleep(0.05)

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def stop(self) -> Counter:
        """Stop the sink and return how many complete messages each recipient received."""
        self.process.terminate()
        self.process.wait(timeout=30)
        self.log.close()
        received: Counter = Counter()
        if self.dump_path.exists():
            pattern = re.compile(rb"^X-Rcpt-Args: <([^>]*)>", re.M)
            with open(self.dump_path, "rb") as dump:
                tail = b""
                while chunk := dump.read(1 << 24):
                    block = tail + chunk
                    cut = block.rfind(b"\n") + 1
                    received.update(address.decode() for address in pattern.findall(block, 0, cut))
                    tail = block[cut:]
            self.dump_size = self.dump_path.stat().st_size
        return received


def delivery_check(received: Counter, expected: set[str], forbidden: set[str]) -> dict[str, int]:
    """Count duplicates, missing and unwanted recipients of one run."""
    return {
        "received": sum(received.values()),
        "duplicates": sum(count - 1 for count in received.values() if count > 1),
        "missing": len(expected - received.keys()),
        "forbidden_arrived": len(forbidden & received.keys()),
        "strangers": len(received.keys() - expected - forbidden),
    }


# --- Data --------------------------------------------------------------------------------------


def address(number: int) -> str:
    return f"bench-{number:06d}@{DOMAIN}"


def refusal(number: int) -> tuple[str, bool] | None:
    """Return why customer `number` must not be mailed ('suppressed' or 'no_consent') and whether it is so before queueing."""
    remainder = number % 100
    if remainder not in (SUPPRESSED_REMAINDER, NO_CONSENT_REMAINDER):
        return None
    kind = "suppressed" if remainder == SUPPRESSED_REMAINDER else "no_consent"
    return kind, number % 200 < 100


def write_shop(customers: int) -> None:
    """Write the products and the customers, with the refusals that hold before queueing."""
    from decimal import Decimal

    from marketing.models import Consent, Customer, Product, Suppression, SuppressionReason
    from marketing.suppression import email_hash

    Product.objects.bulk_create(
        Product(
            sku=f"BS-{number:03d}",
            name=f"{CATEGORIES[number % len(CATEGORIES)][:-1]} no. {number} & co",
            category=CATEGORIES[number % len(CATEGORIES)],
            price=Decimal(1990 + 250 * number) / 100,
            url=f"https://shop.example.com/products/bs-{number:03d}?ref=mail",
            image_url=f"https://cdn.shop.example.com/images/bs-{number:03d}.jpg",
        )
        for number in range(1, PRODUCTS + 1)
    )
    rows = []
    suppressed = []
    zone = daytime_zone()
    for number in range(1, customers + 1):
        country, city, locale = CITIES[number % len(CITIES)]
        refused = refusal(number)
        consent = Consent.UNKNOWN if refused == ("no_consent", True) else Consent.OPTED_IN
        digest = email_hash(address(number))
        rows.append(Customer(
            external_id=f"C{number:08d}",
            email=address(number),
            email_hash=digest,
            first_name=FIRST_NAMES[number % len(FIRST_NAMES)],
            last_name=LAST_NAMES[number % len(LAST_NAMES)],
            locale=locale,
            timezone=zone,
            country=country,
            city=city,
            consent_state=consent,
            attributes={"loyalty_tier": ["bronze", "silver", "gold"][number % 3]},
        ))  # fmt: skip
        if refused == ("suppressed", True):
            suppressed.append(Suppression(email_hash=digest, reason=SuppressionReason.UNSUBSCRIBED))
    Customer.objects.bulk_create(rows, batch_size=5_000)
    Suppression.objects.bulk_create(suppressed)


def daytime_zone() -> str:
    """Return a zone where it is now about midday: every message meets quiet hours at send time, as in
    production, and none is held, whatever the hour the bench runs."""
    from datetime import UTC, datetime

    offset = (12 - datetime.now(UTC).hour + 12) % 24 - 12  # hours east of UTC, -12 to +11
    # IANA's Etc zones count the other way round: Etc/GMT-3 is three hours east of UTC.
    return "UTC" if offset == 0 else f"Etc/GMT{-offset:+d}"


def refuse_after_queueing(customers: int) -> None:
    """Suppress or withdraw the consent of the customers whose refusal comes after queueing."""
    from marketing.models import Consent, Customer, Suppression, SuppressionReason
    from marketing.suppression import email_hash

    late: dict[str, list[int]] = {"suppressed": [], "no_consent": []}
    for number in range(1, customers + 1):
        refused = refusal(number)
        if refused is not None and not refused[1]:
            late[refused[0]].append(number)
    Suppression.objects.bulk_create(
        Suppression(email_hash=email_hash(address(number)), reason=SuppressionReason.UNSUBSCRIBED)
        for number in late["suppressed"]
    )
    Customer.objects.filter(external_id__in=[f"C{number:08d}" for number in late["no_consent"]]).update(
        consent_state=Consent.OPTED_OUT
    )


# --- Kairos ------------------------------------------------------------------------------------


def stop_worker(worker: subprocess.Popen) -> None:
    os.killpg(worker.pid, signal.SIGTERM)
    worker.wait(timeout=60)


def send_broadcast(template, customers: int, timeout_s: float) -> tuple[float, float, int]:
    """Queue the broadcast and wait for every message to be final. Return queue and total seconds, and rows queued."""
    from django.db import transaction

    from campaigns.delivery import queue_broadcast
    from campaigns.models import Broadcast, Message, MessageStatus

    broadcast = Broadcast.objects.create(name="Autumn picks", template=template)
    started = time.perf_counter()
    # The late refusals commit with the outbox rows, so they hold before any worker claims a row.
    with transaction.atomic():
        queued = queue_broadcast(broadcast.pk)
        refuse_after_queueing(customers)
    queue_s = time.perf_counter() - started
    unfinished = Message.objects.filter(broadcast=broadcast, status__in=[MessageStatus.QUEUED, MessageStatus.SENDING])
    deadline = started + timeout_s
    while unfinished.exists():
        if time.perf_counter() > deadline:
            raise TimeoutError(f"{unfinished.count()} messages not final after {timeout_s:.0f}s")
        time.sleep(POLL_INTERVAL_S)
    return queue_s, time.perf_counter() - started, queued


# --- The raw loop ------------------------------------------------------------------------------


def raw_inputs(template, numbers: list[int]) -> tuple[dict[str, str], list[tuple[dict, list[dict]]]]:
    """Return the version's compiled sources and, per recipient, the customer row and products."""
    from campaigns.context import CUSTOMER_FIELDS
    from campaigns.models import TemplateVariant
    from marketing.models import Customer

    version = (
        TemplateVariant.objects.select_related("current_version").get(template=template, locale="").current_version
    )
    sources = {"subject.txt": version.subject, "body.html": version.compiled_html, "body.txt": version.compiled_text}
    rows = {
        row["external_id"]: row
        for row in Customer.objects.filter(external_id__in=[f"C{number:08d}" for number in numbers]).values(
            "pk", *CUSTOMER_FIELDS
        )
    }
    recommendations = four_recommendations([row["pk"] for row in rows.values()])
    return sources, [(rows[f"C{number:08d}"], recommendations[rows[f"C{number:08d}"]["pk"]]) for number in numbers]


def raw_send(sources: dict[str, str], recipients: list[tuple[dict, list[dict]]], port: int) -> tuple[float, float]:
    """Render, build and send every message in one process over one SMTP connection. Return wall and CPU seconds."""
    from email.utils import formataddr

    import jinja2
    from django.conf import settings
    from django.core.mail import EmailMultiAlternatives, get_connection

    env = jinja2.Environment(loader=jinja2.DictLoader(sources), autoescape=lambda name: name.endswith(".html"))
    subject_template, html_template, text_template = (
        env.get_template(name) for name in ("subject.txt", "body.html", "body.txt")
    )
    shop = {"name": settings.SHOP_NAME, "url": settings.SHOP_URL, "postal_address": settings.SHOP_POSTAL_ADDRESS}
    from_email = settings.DEFAULT_FROM_EMAIL
    connection = get_connection(
        "django.core.mail.backends.smtp.EmailBackend", host="127.0.0.1", port=port, fail_silently=False
    )

    started, cpu_started = time.perf_counter(), time.process_time()
    connection.open()
    for row, products in recipients:
        first, last = row["first_name"], row["last_name"]
        unsubscribe = f"{PUBLIC_BASE_URL}/u/raw-{row['pk']}/"
        context = {
            "customer": {
                **row, "full_name": f"{first} {last}".strip(), "greeting_name": first or "there", "birth_date": "",
            },
            "recommendations": [
                {**product, "price": f"{product['price']:.2f}", "price_text": f"{product['price']:.2f} {product['currency']}"}
                for product in products
            ],
            "campaign": {"name": "Autumn picks"},
            "links": {"unsubscribe": unsubscribe, "shop": settings.SHOP_URL},
            "shop": shop,
        }  # fmt: skip
        subject = " ".join(subject_template.render(context).split())
        context["subject"] = subject
        email = EmailMultiAlternatives(
            subject=subject,
            body=text_template.render(context),
            from_email=from_email,
            to=[
                formataddr((context["customer"]["full_name"], row["email"]))
                if context["customer"]["full_name"]
                else row["email"]
            ],
            headers={
                "Message-ID": f"<raw.{row['pk']}@{DOMAIN}>",
                "List-Unsubscribe": f"<{unsubscribe}>, <mailto:unsubscribe@{DOMAIN}?subject=unsubscribe%20raw-{row['pk']}>",
                "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
            },
        )
        email.attach_alternative(html_template.render(context), "text/html")
        connection.send_messages([email])
    connection.close()
    return time.perf_counter() - started, time.process_time() - cpu_started


# --- Main --------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2_000, help="Customers in the broadcast's audience.")
    parser.add_argument("--workers", type=int, default=1, help="Prefork worker processes sending for Kairos.")
    parser.add_argument("--batch-size", type=int, help="SEND_BATCH_SIZE for this run (default: the project's).")
    parser.add_argument("--keep-dumps", action="store_true", help="Keep smtp-sink's dump files under var/bench/send/.")
    parser.add_argument("--server", default=os.environ.get("BENCH_POSTGRES", "postgres://postgres@127.0.0.1:5432"))
    parser.add_argument("--redis", default=os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6379"))
    args = parser.parse_args()

    ensure_smtp_sink()
    broker = f"{args.redis}/{BROKER_DB}"
    os.environ["DATABASE_URL"] = recreate_database(args.server, BENCH_DATABASE)
    os.environ["CELERY_BROKER_URL"] = broker
    os.environ["CELERY_RESULT_BACKEND"] = broker
    os.environ["PUBLIC_BASE_URL"] = PUBLIC_BASE_URL
    os.environ["RECOMMENDATION_SOURCE"] = f"bench.send.{four_recommendations.__name__}"
    if args.batch_size:
        os.environ["SEND_BATCH_SIZE"] = str(args.batch_size)
    os.environ.setdefault("SECRET_KEY", "kairos-benchmark-only-secret-key-0123456789abcdefghijklmnop")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "marketing.settings")
    kairos_sink = SmtpSink("kairos")
    os.environ["EMAIL_URL"] = kairos_sink.url
    import django

    django.setup()
    import redis
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection

    from campaigns.delivery import status_counts
    from campaigns.models import Message
    from campaigns.versions import save_template

    redis.Redis.from_url(broker).flushdb()
    call_command("migrate", verbosity=0)
    started = time.perf_counter()
    write_shop(args.messages)
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
    template = save_template(
        "Autumn picks", subject=TEMPLATE_SUBJECT, html=TEMPLATE_HTML, from_email="Kairos Shop <news@shop.example.com>"
    )
    print(
        f"shop written in {time.perf_counter() - started:.1f}s: {args.messages:,} customers, {PRODUCTS} products",
        flush=True,
    )

    refused = {number: kind for number in range(1, args.messages + 1) if (kind := refusal(number))}
    forbidden = {address(number) for number in refused}
    expected_numbers = [number for number in range(1, args.messages + 1) if number not in refused]
    expected = {address(number) for number in expected_numbers}

    # The raw loop runs first, on a quiet machine: after the broadcast, autovacuum would be cleaning up behind it.
    sources, recipients = raw_inputs(template, expected_numbers)
    raw_sink = SmtpSink("raw")
    raw_s, raw_cpu_s = raw_send(sources, recipients, raw_sink.port)
    raw = delivery_check(raw_sink.stop(), expected, forbidden)
    print(f"raw loop: {len(recipients):,} sent in {raw_s:.2f}s; at the sink: {raw}", flush=True)
    if not args.keep_dumps:
        raw_sink.dump_path.unlink(missing_ok=True)

    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    log_path = SINK_DIR / "worker.log"
    worker = start_worker(env, args.workers, log_path, "email")
    try:
        # CPU is counted as well as wall time: other work on the machine slows both runs, not their CPU per message.
        cpu_before = tree_cpu_s(worker.pid) + time.process_time()
        queue_s, kairos_s, queued = send_broadcast(template, args.messages, timeout_s=max(120.0, args.messages / 20))
        kairos_cpu_s = tree_cpu_s(worker.pid) + time.process_time() - cpu_before
    except TimeoutError as error:
        raise SystemExit(f"{error}\n{log_path.read_text()[-4000:]}") from None
    finally:
        stop_worker(worker)
    kairos = delivery_check(kairos_sink.stop(), expected, forbidden)
    statuses = {status: count for status, count in status_counts().items() if count}
    print(
        f"Kairos: {queued:,} queued in {queue_s:.2f}s, all final after {kairos_s:.2f}s: {statuses}; at the sink: {kairos}",
        flush=True,
    )
    if not args.keep_dumps:
        kairos_sink.dump_path.unlink(missing_ok=True)

    sent = statuses.get("sent", 0)
    refused_at_queue = sum(1 for kind, before in refused.values() if before)
    refused_at_send = Message.objects.filter(status="suppressed").count()
    assert queued == args.messages - refused_at_queue, (queued, refused_at_queue)
    assert kairos["forbidden_arrived"] == 0 and raw["forbidden_arrived"] == 0, (kairos, raw)
    sent_per_s = sent / kairos_s
    raw_per_s = len(recipients) / raw_s
    print(json.dumps({
        "messages": args.messages,
        "workers": args.workers,
        "batch_size": settings.SEND_BATCH_SIZE,
        "queued": queued,
        "sent": sent,
        "refused_at_queue": refused_at_queue,
        "refused_at_send": refused_at_send,
        "statuses": statuses,
        "queue_s": round(queue_s, 3),
        "send_s": round(kairos_s - queue_s, 3),
        "kairos_s": round(kairos_s, 3),
        "raw_s": round(raw_s, 3),
        "sent_per_s": round(sent_per_s, 1),
        "raw_per_s": round(raw_per_s, 1),
        "ratio": round(sent_per_s / raw_per_s, 3),
        # Client-side CPU per message: the workers and the queueing process, against the raw loop's process.
        "kairos_cpu_ms_per_message": round(1000 * kairos_cpu_s / max(sent, 1), 2),
        "raw_cpu_ms_per_message": round(1000 * raw_cpu_s / len(recipients), 2),
        "duplicates": kairos["duplicates"],
        "missing": kairos["missing"],
        "refused_arrived": kairos["forbidden_arrived"],
        "unexpected": kairos["strangers"],
        "raw_duplicates": raw["duplicates"],
        "raw_missing": raw["missing"],
        "bytes_per_message": round(kairos_sink.dump_size / max(kairos["received"], 1)),
        "raw_bytes_per_message": round(raw_sink.dump_size / max(raw["received"], 1)),
    }))  # fmt: skip


if __name__ == "__main__":
    main()
