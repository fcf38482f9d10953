"""Benchmark: enrolling a scheduled campaign's whole audience, against a bare INSERT … SELECT of the same rows.

    python bench/enroll.py --customers 1000000

Fills a fresh PostgreSQL database with N customers (one INSERT … SELECT) and a static segment
holding all of them, then launches a campaign with the `schedule` trigger, that segment as its
audience, re-entry "once" and a 10 % holdout, whose time has just come. One call of the engine's
`poll_triggers` (what the beat tick does first) enrolls them: one INSERT … SELECT that keeps the
audience's members, checks re-entry against the campaign's enrollments and picks the holdout by
SHA-256 in SQL. `enroll_s` is that call, committed. The first steps are not run here: the tick's
dispatch hands them to workers in batches afterwards, and message queuing is measured by bench/send.py.

The raw baseline writes the same number of enrollment rows for a second campaign with one bare
`INSERT … SELECT` from the customers table: no audience, no re-entry, no holdout, the same table
and indexes. The last line printed is one JSON object; `ratio` is enroll_s / raw_s.
"""

import argparse
import json
import os
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.databases import recreate_database  # noqa: E402 - needs the project root on the path

BENCH_DATABASE = "kairos_bench_enroll"
HOLDOUT_PERCENT = 10

CUSTOMERS_SQL = """
INSERT INTO marketing_customer (id, external_id, email, email_hash, consent_state, created_at, updated_at)
SELECT g, 'C' || lpad(g::text, 8, '0'), 'customer' || g || '@example.com', md5('customer' || g), 'opted_in', %(now)s, %(now)s
FROM generate_series(1, %(customers)s::bigint) g
"""

MEMBERS_SQL = """
INSERT INTO marketing_segmentmembership (segment_id, customer_id, entered_at)
SELECT %(segment)s, id, %(now)s FROM marketing_customer
"""

RAW_SQL = """
INSERT INTO campaigns_enrollment (campaign_id, customer_id, step_id, state, next_run_at, entered_at, step_started_at,
                                  step_attempts, variant, trigger_data, note)
SELECT %(campaign)s, c.id, %(step)s, 'active', %(now)s, %(now)s, %(now)s, 0, '', '{}'::jsonb, ''
FROM marketing_customer c
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--server", default=os.environ.get("BENCH_POSTGRES", "postgres://postgres@127.0.0.1:5432"))
    args = parser.parse_args()

    os.environ.update({
        "DATABASE_URL": recreate_database(args.server, BENCH_DATABASE),
        "SECRET_KEY": "kairos-benchmark-only-secret-key-0123456789abcdefghijklmnop",
        "DJANGO_SETTINGS_MODULE": "marketing.settings",
    })  # fmt: skip
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection, transaction

    from campaigns.engine import launch, poll_triggers
    from campaigns.models import Campaign, Enrollment, EnrollmentState, Step
    from campaigns.versions import save_template
    from marketing.models import Segment, SegmentKind

    call_command("migrate", verbosity=0)
    now = datetime.now(UTC).replace(microsecond=0)
    started = time.perf_counter()
    segment = Segment.objects.create(name="Everyone (bench)", kind=SegmentKind.STATIC)
    with connection.cursor() as cursor:
        cursor.execute(CUSTOMERS_SQL, {"customers": args.customers, "now": now})
        cursor.execute(MEMBERS_SQL, {"segment": segment.pk, "now": now})
        cursor.execute("VACUUM ANALYZE")
    print(f"wrote {args.customers:,} customers and their memberships in {time.perf_counter() - started:.1f}s", flush=True)

    template = save_template("Spring (bench)", subject="Spring", html='{% extends "emails/base.html" %}{% block content %}<p>Spring is here.</p>{% endblock %}')
    campaign = Campaign.objects.create(
        name="Spring broadcast", trigger_type="schedule", trigger_config={"at": (now - timedelta(minutes=1)).isoformat()},
        audience=segment, holdout_percent=HOLDOUT_PERCENT,
    )  # fmt: skip
    Step.objects.create(campaign=campaign, position=0, key="send", type="send_email", config={"template": template.pk})
    launch(campaign, now)

    started = time.perf_counter()
    enrolled = poll_triggers(now)
    enroll_s = time.perf_counter() - started
    counts = dict(
        Enrollment.objects.filter(campaign=campaign).values_list("state").annotate(n=django.db.models.Count("pk"))
    )
    enrollments = sum(counts.values())
    holdout = counts.get(EnrollmentState.HOLDOUT, 0)
    assert enrollments == args.customers and enrolled == enrollments - holdout, (enrollments, enrolled, counts)
    print(f"enrolled {enrollments:,} ({holdout:,} held out) in {enroll_s:.2f}s", flush=True)
    again_started = time.perf_counter()
    assert poll_triggers(now + timedelta(seconds=5)) == 0  # fired once: the next tick enrolls no one
    again_s = time.perf_counter() - again_started

    raw_campaign = Campaign.objects.create(name="Raw baseline", trigger_type="manual", status="active")
    raw_step = Step.objects.create(campaign=raw_campaign, position=0, key="send", type="send_email", config={"template": template.pk})
    started = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(RAW_SQL, {"campaign": raw_campaign.pk, "step": raw_step.pk, "now": now})
    raw_s = time.perf_counter() - started

    print(json.dumps({
        "customers": args.customers,
        "enroll_s": round(enroll_s, 2),
        "enrollments": enrollments,
        "holdout": holdout,
        "holdout_share": round(holdout / enrollments, 4),
        "second_tick_s": round(again_s, 3),
        "raw_s": round(raw_s, 2),
        "ratio": round(enroll_s / raw_s, 2),
    }))


if __name__ == "__main__":
    main()
