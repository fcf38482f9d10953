"""Benchmark: how long a customer waits from an event posted to the API to the campaign's e-mail.

    python bench/trigger_latency.py --events 1000 [--rate 20] [--concurrency 2]

Creates a fresh PostgreSQL database with N opted-in customers (time zone UTC), a published template
and an active campaign triggered by `cart_added` whose first step sends that template. The campaign
has quiet hours off: with them on, a run at night in the customers' zone would hold every message
until morning and measure the clock, not Kairos. Then it starts, as separate processes on the
bench's own Redis database: the web app (`manage.py runserver`, threaded, DEBUG off as in
production), one Celery prefork worker consuming `default,engine,email`, Celery beat (the event path
does not wait for it, but its ticks run alongside as they would in production), and an aiosmtpd
server (bench/smtp_recorder.py) that notes when each message arrived and for whom.

One warm-up event, not counted, goes through first, so that the first measured events do not pay
for imports and template compilation in fresh processes. Then N events, one per POST and one per
customer (the frequency cap never bites), go to `POST /api/v1/events` at a steady `--rate` from a
few keep-alive client threads. The latency of an event is its message's arrival at the SMTP server
minus the moment just before its POST was sent; both clocks are this machine's `time.time()`.
After the last arrival the run waits `--settle-s` more, so beat's ticks pass over the finished
rows once more, and counts recipients seen twice (`duplicates`) and events with no message
(`missing`). `hops` splits the median and 95th-percentile latency along the path, from the
timestamps the rows carry: POST to the event stored, to the enrollment made and the message created
(the one task, which matches triggers, runs the first steps and sends what they queued), to its
claim for sending, to its arrival. `kairos_cpu_ms_per_event` sums the CPU of the web app, the
worker, beat, the bench database's PostgreSQL backends and Redis, per event. The last line
printed is one JSON object.
"""

import argparse
import http.client
import json
import math
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.databases import recreate_database  # noqa: E402 - needs the project root on the path
from bench.workers import start_worker, tree_cpu_s  # noqa: E402 - needs the project root on the path

BENCH_DATABASE = "kairos_bench_latency"
BROKER_DB = 11
RUN_DIR = ROOT / "var" / "bench" / "trigger_latency"
QUEUES = "default,engine,email"
KAIROS_PROCESSES = ("web", "worker", "beat", "postgres", "redis")
HOST = "127.0.0.1"
DOMAIN = "bench.kairos.test"
PUBLIC_BASE_URL = "https://kairos.bench.example"
SECRET_KEY = "kairos-benchmark-only-secret-key-0123456789abcdefghijklmnop"
EVENT_NAME = "cart_added"
TEMPLATE_NAME = "Cart reminder"
READY_TIMEOUT_S = 60
POLL_INTERVAL_S = 0.05
HTTP_TIMEOUT_S = 30

TEMPLATE_SUBJECT = "{{ customer.greeting_name }}, your cart is waiting"
TEMPLATE_HTML = """{% extends "emails/base.html" %}
{% block content %}
<h1>Still thinking it over, {{ customer.greeting_name }}?</h1>
<p>You left something in your cart. We kept it for you.</p>
<p><a class="button" href="{{ links.shop }}/cart?utm_source=kairos&amp;utm_campaign={{ campaign.name|urlencode }}">Back to your cart</a></p>
{% endblock %}"""


def address(number: int) -> str:
    return f"latency-{number:06d}@{DOMAIN}"


def external_id(number: int) -> str:
    return f"L{number:08d}"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def percentile(values: list[float], share: float) -> float | None:
    """Return the nearest-rank percentile (share in 0..1) of the values, or None when there are none."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(math.ceil(share * len(ordered)) - 1, 0)]


def rounded(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


# --- Processes ---------------------------------------------------------------------------------


def wait_for_port(port: int, process: subprocess.Popen, log_path: Path, what: str) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while True:
        try:
            socket.create_connection((HOST, port), timeout=1).close()
            return
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"{what} did not start:\n{log_path.read_text()}") from None
            time.sleep(0.1)


def start_process(command: list[str], env: dict[str, str], log_path: Path) -> subprocess.Popen:
    log = open(log_path, "w")  # noqa: SIM115 (kept open for the process's lifetime)
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def start_smtp_recorder(port: int, out_path: Path) -> subprocess.Popen:
    out_path.unlink(missing_ok=True)
    out_path.touch()
    log_path = RUN_DIR / "smtp.log"
    command = [sys.executable, str(ROOT / "bench" / "smtp_recorder.py"), "--port", str(port), "--out", str(out_path)]
    recorder = start_process(command, {**os.environ, "PYTHONUNBUFFERED": "1"}, log_path)
    wait_for_port(port, recorder, log_path, "the SMTP recorder")
    return recorder


def start_web(env: dict[str, str], port: int) -> subprocess.Popen:
    """Start the threaded development server without its autoreloader and wait until it answers."""
    log_path = RUN_DIR / "web.log"
    command = [sys.executable, "manage.py", "runserver", f"{HOST}:{port}", "--noreload"]
    web = start_process(command, env, log_path)
    wait_for_port(port, web, log_path, "the web server")
    return web


def start_beat(env: dict[str, str]) -> subprocess.Popen:
    schedule = RUN_DIR / "beat-schedule"
    pidfile = RUN_DIR / "beat.pid"
    for stale in RUN_DIR.glob("beat-schedule*"):
        stale.unlink()
    pidfile.unlink(missing_ok=True)
    command = [
        sys.executable, "-m", "celery", "--app", "marketing", "beat", "--loglevel", "INFO",
        "--schedule", str(schedule), "--pidfile", str(pidfile),
    ]  # fmt: skip
    return start_process(command, env, RUN_DIR / "beat.log")


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


# --- CPU ---------------------------------------------------------------------------------------


def matching_cpu_s(words: str) -> float:
    """Return the CPU seconds used by every living process whose command line holds `words`."""
    total = 0.0
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if words not in (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"):
                continue
            fields = (proc / "stat").read_text().rpartition(")")[2].split()
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def machine_cpu_s() -> tuple[float, float]:
    """Return the machine's busy and total CPU seconds since boot, over all cores."""
    ticks = [int(value) for value in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = ticks[3] + ticks[4]  # idle, iowait
    return (sum(ticks) - idle) / os.sysconf("SC_CLK_TCK"), sum(ticks) / os.sysconf("SC_CLK_TCK")


def cpu_snapshot(processes: dict[str, subprocess.Popen]) -> dict[str, float]:
    """Return the CPU seconds used so far by the bench's processes, its PostgreSQL backends, Redis and the machine."""
    snapshot = {name: tree_cpu_s(process.pid) for name, process in processes.items()}
    # The PostgreSQL backends serving the bench database (their titles name it); Redis serves everyone.
    snapshot["postgres"] = matching_cpu_s(f" {BENCH_DATABASE} ")
    snapshot["redis"] = matching_cpu_s("redis-server")
    snapshot["client"] = time.process_time()
    snapshot["machine_busy"], snapshot["machine_total"] = machine_cpu_s()
    return snapshot


# --- Data --------------------------------------------------------------------------------------


def write_shop(events: int) -> str:
    """Write the customers (number 0 is the warm-up's), the template and the campaign; return an API key."""
    from campaigns.engine import launch
    from campaigns.models import Campaign, Step
    from campaigns.versions import save_template
    from marketing.models import ApiKey, Consent, Customer
    from marketing.suppression import email_hash

    Customer.objects.bulk_create(
        (
            Customer(
                external_id=external_id(number),
                email=address(number),
                email_hash=email_hash(address(number)),
                first_name=f"Shopper {number}",
                timezone="UTC",
                consent_state=Consent.OPTED_IN,
                consent_source="bench",
            )
            for number in range(events + 1)
        ),
        batch_size=5_000,
    )
    template = save_template(TEMPLATE_NAME, subject=TEMPLATE_SUBJECT, html=TEMPLATE_HTML)
    campaign = Campaign.objects.create(
        name="Abandoned cart",
        trigger_type="event",
        trigger_config={"event": EVENT_NAME},
        quiet_hours=False,
    )
    Step.objects.create(
        campaign=campaign, position=0, key="reminder", type="send_email", config={"template": template.pk}
    )
    launch(campaign)
    _, raw_key = ApiKey.issue("trigger latency bench")
    return raw_key


# --- Posting -----------------------------------------------------------------------------------


class Poster:
    """Post one event per request at a steady rate from a few threads, each on its own keep-alive connection."""

    def __init__(self, port: int, api_key: str, rate: float) -> None:
        self.port = port
        self.headers = {"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"}
        self.interval_s = 1.0 / rate
        self.posted_at: dict[int, float] = {}
        self.post_s: dict[int, float] = {}
        self.statuses: Counter = Counter()
        self.lock = threading.Lock()
        self.connections: list[http.client.HTTPConnection] = []

    def post(self, connection: http.client.HTTPConnection, number: int) -> http.client.HTTPConnection:
        """Post event `number`, recording when it was sent, how long the answer took and its status."""
        body = json.dumps({"events": [{
            "id": f"latency-event-{number}",
            "customer_id": external_id(number),
            "name": EVENT_NAME,
            "occurred_at": datetime.now(UTC).isoformat(),
            "properties": {"sku": f"SKU-{number % 97:03d}", "quantity": 1},
        }]})  # fmt: skip
        started = time.time()
        try:
            connection.request("POST", "/api/v1/events", body=body, headers=self.headers)
            response = connection.getresponse()
            answer = response.read()
            status = str(response.status)
            if response.status == 202 and json.loads(answer)["stored"] != 1:
                status = f"202 not stored: {answer.decode()[:200]}"
            if response.will_close:
                connection.close()
        except (OSError, http.client.HTTPException) as error:
            status = f"error: {type(error).__name__}"
            connection.close()
        with self.lock:
            self.posted_at[number] = started
            self.post_s[number] = time.time() - started
            self.statuses[status] += 1
        return connection

    def run(self, numbers: list[int], threads: int) -> None:
        """Post the events, number k of them at start + k / rate, unless every thread is still busy."""
        start = time.time() + 0.2
        pending = iter(enumerate(numbers))
        take = threading.Lock()

        def client() -> None:
            connection = http.client.HTTPConnection(HOST, self.port, timeout=HTTP_TIMEOUT_S)
            while True:
                with take:
                    item = next(pending, None)
                if item is None:
                    break
                position, number = item
                delay = start + position * self.interval_s - time.time()
                if delay > 0:
                    time.sleep(delay)
                connection = self.post(connection, number)
            with self.lock:
                self.connections.append(connection)

        workers = [threading.Thread(target=client, name=f"poster-{index}") for index in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()

    def close(self) -> None:
        """Close the connections; until then the server's threads, and their database connections, live on."""
        for connection in self.connections:
            connection.close()


# --- Arrivals ----------------------------------------------------------------------------------


def read_arrivals(path: Path) -> list[tuple[float, str]]:
    arrivals = []
    for line in path.read_text().splitlines():
        stamp, _, recipient = line.partition(" ")
        if recipient:
            arrivals.append((float(stamp), recipient))
    return arrivals


def wait_for_arrivals(path: Path, expected: set[str], deadline: float) -> None:
    """Return once every expected recipient has arrived at least once, or at the deadline."""
    while time.time() < deadline:
        if expected <= {recipient for _, recipient in read_arrivals(path)}:
            return
        time.sleep(POLL_INTERVAL_S)


def hop_timestamps(numbers: list[int]) -> dict[int, dict[str, float]]:
    """Return, per event number, when its event was stored, its enrollment made, its message created and claimed."""
    from campaigns.models import Enrollment, Message
    from marketing.models import Event

    wanted = {external_id(number): number for number in numbers}
    stamps: dict[int, dict[str, float]] = {number: {} for number in numbers}
    events = Event.objects.filter(customer__external_id__in=wanted).values_list("customer__external_id", "created_at")
    for customer, created_at in events:
        stamps[wanted[customer]]["stored"] = created_at.timestamp()
    enrollments = Enrollment.objects.filter(customer__external_id__in=wanted).values_list(
        "customer__external_id", "entered_at"
    )
    for customer, entered_at in enrollments:
        stamps[wanted[customer]]["enrolled"] = entered_at.timestamp()
    messages = Message.objects.filter(customer__external_id__in=wanted).values_list(
        "customer__external_id", "created_at", "sent_at"
    )
    for customer, created_at, sent_at in messages:
        stamps[wanted[customer]]["created"] = created_at.timestamp()
        if sent_at is not None:
            stamps[wanted[customer]]["claimed"] = sent_at.timestamp()
    return stamps


def hop_summary(
    numbers: list[int], posted_at: dict[int, float], arrived_at: dict[int, float], stamps: dict[int, dict[str, float]]
) -> dict[str, dict[str, float | None]]:
    """Return the median and 95th percentile of each leg of the path, in seconds."""
    points = ["posted", "stored", "enrolled", "created", "claimed", "arrived"]
    legs: dict[str, list[float]] = {f"{a}_to_{b}": [] for a, b in zip(points, points[1:], strict=False)}
    for number in numbers:
        times = {"posted": posted_at.get(number), "arrived": arrived_at.get(number), **stamps.get(number, {})}
        for a, b in zip(points, points[1:], strict=False):
            if times.get(a) is not None and times.get(b) is not None:
                legs[f"{a}_to_{b}"].append(times[b] - times[a])
    return {
        leg: {"p50_s": rounded(percentile(values, 0.5)), "p95_s": rounded(percentile(values, 0.95))}
        for leg, values in legs.items()
    }


# --- Main --------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100, help="Events posted, one per request and per customer.")
    parser.add_argument(
        "--rate", type=float, default=20.0, help="Events posted per second, spread over the client threads."
    )
    parser.add_argument(
        "--clients",
        type=int,
        default=None,
        help="Client threads posting, each on one connection; by default one per 10 events a second (at least 4), "
        "so the client keeps the rate while each answer takes up to 100 ms.",
    )
    parser.add_argument(
        "--concurrency", type=int, default=os.cpu_count() or 2, help="Prefork processes of the Celery worker."
    )
    parser.add_argument("--timeout-s", type=float, default=120.0, help="Wait this long after the last POST at most.")
    parser.add_argument("--settle-s", type=float, default=12.0, help="Wait this long after the last arrival.")
    parser.add_argument("--server", default=os.environ.get("BENCH_POSTGRES", "postgres://postgres@127.0.0.1:5432"))
    parser.add_argument("--redis", default=os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6379"))
    args = parser.parse_args()
    args.clients = args.clients or max(4, math.ceil(args.rate / 10))

    RUN_DIR.mkdir(parents=True, exist_ok=True)
    arrivals_path = RUN_DIR / "arrivals.log"
    smtp_port = free_port()
    recorder = start_smtp_recorder(smtp_port, arrivals_path)
    processes = {"smtp": recorder}
    try:
        broker = f"{args.redis}/{BROKER_DB}"
        os.environ.update({
            "DATABASE_URL": recreate_database(args.server, BENCH_DATABASE),
            "CELERY_BROKER_URL": broker,
            "CELERY_RESULT_BACKEND": broker,
            "EMAIL_URL": f"smtp://{HOST}:{smtp_port}",
            "PUBLIC_BASE_URL": PUBLIC_BASE_URL,
            # Production settings: DEBUG off (no query log in memory), so a key and hosts are needed,
            # and plain HTTP on the loopback rather than the redirect to HTTPS a TLS proxy would make moot.
            "DEBUG": "0",
            "SECRET_KEY": SECRET_KEY,
            "ALLOWED_HOSTS": HOST,
            "SECURE_SSL_REDIRECT": "0",
            "DJANGO_SETTINGS_MODULE": "marketing.settings",
        })  # fmt: skip
        import django

        django.setup()
        import redis
        from django.core.management import call_command
        from django.db import connection

        from campaigns.delivery import status_counts
        from campaigns.models import Enrollment

        redis.Redis.from_url(broker).flushdb()
        call_command("migrate", verbosity=0)
        api_key = write_shop(args.events)
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE")
        connection.close()  # the bench process holds no connection while the app runs

        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        processes["worker"] = start_worker(env, args.concurrency, RUN_DIR / "worker.log", QUEUES)
        processes["beat"] = start_beat(env)
        web_port = free_port()
        processes["web"] = start_web(env, web_port)
        print(
            f"running: {args.events:,} customers; web :{web_port}, SMTP :{smtp_port}, worker x{args.concurrency}",
            flush=True,
        )

        poster = Poster(web_port, api_key, args.rate)
        poster.run([0], threads=1)
        poster.close()
        wait_for_arrivals(arrivals_path, {address(0)}, time.time() + READY_TIMEOUT_S)
        warmup = dict((recipient, stamp) for stamp, recipient in read_arrivals(arrivals_path)).get(address(0))
        warmup_s = None if warmup is None else warmup - poster.posted_at[0]
        print(f"warm-up event arrived after {warmup_s if warmup_s is None else round(warmup_s, 3)} s", flush=True)

        numbers = list(range(1, args.events + 1))
        poster = Poster(web_port, api_key, args.rate)
        cpu_before = cpu_snapshot(processes)
        posting_started = time.time()
        poster.run(numbers, threads=args.clients)
        posting_s = time.time() - posting_started
        print(f"posted {args.events:,} events in {posting_s:.2f}s: {dict(poster.statuses)}", flush=True)
        expected = {address(number) for number in numbers}
        wait_for_arrivals(arrivals_path, expected, time.time() + args.timeout_s)
        cpu_after = cpu_snapshot(processes)
        poster.close()
        time.sleep(args.settle_s)
    finally:
        for process in reversed(processes.values()):
            stop(process)

    arrivals = read_arrivals(arrivals_path)
    received = Counter(recipient for _, recipient in arrivals)
    first_arrival: dict[str, float] = {}
    for stamp, recipient in arrivals:
        first_arrival[recipient] = min(stamp, first_arrival.get(recipient, stamp))
    arrived_at = {number: first_arrival[address(number)] for number in numbers if address(number) in first_arrival}
    latencies = [arrived_at[number] - poster.posted_at[number] for number in arrived_at]
    post_s = list(poster.post_s.values())
    stamps = hop_timestamps(numbers)
    posted = sorted(poster.posted_at[number] for number in numbers)
    cpu_used = {name: cpu_after[name] - cpu_before[name] for name in cpu_before}
    machine_busy = cpu_used.pop("machine_busy") / cpu_used.pop("machine_total")
    statuses = {status: count for status, count in status_counts().items() if count}
    print(json.dumps({
        "events": args.events,
        "p50_s": rounded(percentile(latencies, 0.5)),
        "p95_s": rounded(percentile(latencies, 0.95)),
        "p99_s": rounded(percentile(latencies, 0.99)),
        "max_s": rounded(max(latencies, default=None)),
        "duplicates": sum(count - 1 for recipient, count in received.items() if recipient in expected and count > 1),
        "missing": len(expected - received.keys()),
        "unexpected": len(received.keys() - expected - {address(0)}),
        "post_p50_s": rounded(percentile(post_s, 0.5)),
        "post_p95_s": rounded(percentile(post_s, 0.95)),
        "post_statuses": dict(poster.statuses),
        "rate_per_s": args.rate,
        "achieved_rate_per_s": round((len(posted) - 1) / (posted[-1] - posted[0]), 1) if len(posted) > 1 else None,
        "clients": args.clients,
        "workers": args.concurrency,
        "queues": QUEUES,
        "warmup_s": rounded(warmup_s),
        "enrollments": Enrollment.objects.count(),
        "statuses": statuses,
        # From the first POST to the last arrival: CPU per event of each process, and how busy all cores were.
        "cpu_ms_per_event": {name: round(1000 * seconds / args.events, 1) for name, seconds in cpu_used.items()},
        # What Kairos and its services cost per event: not the SMTP recorder (an ESP's job) nor the client.
        "kairos_cpu_ms_per_event": round(
            1000 * sum(cpu_used[name] for name in KAIROS_PROCESSES) / args.events, 1
        ),
        "machine_busy": round(machine_busy, 3),
        "hops": hop_summary(numbers, poster.posted_at, arrived_at, stamps),
    }))  # fmt: skip


if __name__ == "__main__":
    main()
