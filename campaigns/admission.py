"""Admitting customers to a campaign, set-based: one INSERT … SELECT with the audience, re-entry and holdout in SQL.

A trigger names customers in one of two shapes: an `Audience`, a query over the database (every
customer for a schedule, a segment's entries of one refresh, a scoring run's high scores), or a
short list of `Candidate`s built in Python (events matched by `matches_event`). Either becomes one
statement per campaign, which keeps only the audience segment's members, applies the re-entry
policy against the campaign's enrollments, and holds out a deterministic share of entrants:
customer c on campaign k is held out when the first 8 bytes of SHA-256("holdout:k:c"), read as an
unsigned big-endian number, are below `holdout_percent` modulo 100 — the same choice whether the
database (PostgreSQL's `sha256`) or Python (`holdout_point`, registered as a SQLite function) makes it.

The unique live enrollment per (campaign, customer) and the unique (campaign, event) pair decide,
with ON CONFLICT DO NOTHING, what a concurrent writer already admitted: an event repaired by the
tick after its fast path ran, or the same customer named twice, enters once.
"""

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db import connection

from campaigns.models import Campaign, Enrollment, EnrollmentState, Reentry
from campaigns.triggers import Audience, Candidate
from marketing.models import SegmentMembership


@dataclass(frozen=True)
class Admitted:
    entered: int  # enrollments written, the holdout included
    held_out: int
    live_ids: list[int] = field(default_factory=list)  # filled only when asked for


def holdout_point(campaign_id: int, customer_id: int) -> int:
    """Return where a customer falls on the campaign's 0–99 holdout scale; below `holdout_percent` is held out."""
    digest = hashlib.sha256(f"holdout:{campaign_id}:{customer_id}".encode()).digest()
    return int.from_bytes(digest[:8]) % 100


def is_holdout(campaign: Campaign, customer_id: int) -> bool:
    return bool(campaign.holdout_percent) and holdout_point(campaign.pk, customer_id) < campaign.holdout_percent


def admit(
    campaign: Campaign, named: Audience | list[Candidate], now: datetime, *, want_live_ids: bool = False
) -> Admitted:
    """Enroll the named customers who may enter, in one statement; return how many entered (and their ids if asked)."""
    if isinstance(named, list) and not named:
        return Admitted(0, 0)
    postgres = connection.vendor == "postgresql"
    source_sql, source_params = _source(named, postgres)
    first_step = campaign.steps.order_by("position").values_list("pk", flat=True).first()
    table = Enrollment._meta.db_table
    word_sql, held_sql, held_params = _held_sql(campaign, postgres)
    conditions, condition_params = _conditions(campaign, now, table)
    insert = f"""
        INSERT INTO {table} (campaign_id, customer_id, event_id, step_id, state, next_run_at, entered_at,
                             step_started_at, step_attempts, finished_at, variant, trigger_data, note)
        SELECT %s, a.customer_id, a.event_id,
               CASE WHEN a.held THEN NULL ELSE %s END,
               CASE WHEN a.held THEN %s ELSE %s END,
               %s, %s, %s, 0, CASE WHEN a.held THEN %s ELSE NULL END, '', a.data, ''
        FROM (SELECT h.customer_id, h.event_id, h.data, {held_sql} AS held
              FROM (SELECT s.customer_id, s.event_id, s.data, {word_sql} AS word FROM ({source_sql}) s) h) a
        WHERE {conditions}
        ON CONFLICT DO NOTHING
    """
    at = connection.ops.adapt_datetimefield_value(now)  # SQLite compares the text Django writes
    params = [
        campaign.pk, first_step, EnrollmentState.HOLDOUT.value, EnrollmentState.ACTIVE.value,
        at, at, at, at, *held_params, *source_params, *condition_params,
    ]  # fmt: skip
    with connection.cursor() as cursor:
        if want_live_ids:
            cursor.execute(_prepared(insert + " RETURNING id, state", postgres, isinstance(named, Audience)), params)
            rows = cursor.fetchall()
            live = sorted(pk for pk, state in rows if state == EnrollmentState.ACTIVE)
            return Admitted(len(rows), len(rows) - len(live), live)
        if postgres:
            # Counted as they are written: reading a million rows back would cost a second pass.
            counting = f"WITH written AS ({insert} RETURNING state) SELECT state, count(*) FROM written GROUP BY state"
            cursor.execute(_prepared(counting, postgres), params)
        else:
            cursor.execute(_prepared(insert + " RETURNING state", postgres), params)
        counts: dict[str, int] = {}
        for row in cursor.fetchall():
            state, count = (row[0], row[1]) if postgres else (row[0], 1)
            counts[state] = counts.get(state, 0) + count
    return Admitted(sum(counts.values()), counts.get(EnrollmentState.HOLDOUT, 0))


def _prepared(sql: str, postgres: bool, audience: bool = True) -> str:
    """Ready the connection for the statement: no JIT compile for a one-off statement over an audience
    (PostgreSQL), the holdout function (SQLite)."""
    if postgres:
        if audience:
            # Compiling this one-off statement cost seconds at a million rows and saves nothing.
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL jit = off")
    else:
        connection.connection.create_function("kairos_holdout_point", 2, holdout_point, deterministic=True)
    return sql


def _source(named: Audience | list[Candidate], postgres: bool) -> tuple[str, list]:
    """Return SQL yielding (customer_id, event_id, data) for the named customers, each customer once."""
    if isinstance(named, Audience):
        rows_sql, rows_params = named.rows.order_by().query.sql_with_params()
        data = _json_cast("%s", postgres)
        for name in named.per_row:
            data = (
                f"({data} || jsonb_build_object('{name}', r.{name}))"
                if postgres
                else f"json_set({data}, '$.{name}', r.{name})"
            )
        event = "CAST(NULL AS bigint)"
        return (
            f"SELECT r.customer_id AS customer_id, {event} AS event_id, {data} AS data FROM ({rows_sql}) r",
            [json.dumps(named.data, sort_keys=True, default=str), *rows_params],
        )
    unique: dict[int, Candidate] = {}
    for candidate in named:
        unique.setdefault(candidate.customer_id, candidate)  # the first naming of a customer says why they entered
    candidates = list(unique.values())
    if postgres:
        return (
            "SELECT u.customer_id, u.event_id, u.data FROM unnest(%s::bigint[], %s::bigint[], %s::jsonb[])"
            " AS u(customer_id, event_id, data)",
            [
                [candidate.customer_id for candidate in candidates],
                [candidate.event_id for candidate in candidates],
                [json.dumps(candidate.data, sort_keys=True, default=str) for candidate in candidates],
            ],
        )
    return (
        "SELECT json_extract(j.value, '$[0]') AS customer_id, json_extract(j.value, '$[1]') AS event_id,"
        " json_extract(j.value, '$[2]') AS data FROM json_each(%s) j",
        [json.dumps([[c.customer_id, c.event_id, c.data] for c in candidates], sort_keys=True, default=str)],
    )


def _json_cast(placeholder: str, postgres: bool) -> str:
    return f"CAST({placeholder} AS jsonb)" if postgres else f"json({placeholder})"


def _held_sql(campaign: Campaign, postgres: bool) -> tuple[str, str, list]:
    """Return the SQL of the digest word (computed once per row), of the holdout test over it, and their parameters
    in the order the statement holds them (the test, in the outer query, comes first)."""
    if not campaign.holdout_percent:
        return "NULL", "(1 = 0)", []
    if not postgres:
        return "kairos_holdout_point(%s, s.customer_id)", "(h.word < %s)", [campaign.holdout_percent, campaign.pk]
    # The first 8 digest bytes as a signed bigint; unsigned modulo 100 adds 2^64 mod 100 (16) to negatives.
    word = (
        "('x' || encode(substring(sha256(convert_to('holdout:' || %s || ':' || s.customer_id, 'UTF8'))"
        " from 1 for 8), 'hex'))::bit(64)::bigint"
    )
    held = "((h.word %% 100 + 100 + CASE WHEN h.word < 0 THEN 16 ELSE 0 END) %% 100 < %s)"
    return word, held, [campaign.holdout_percent, str(campaign.pk)]  # in the order they appear: the test, then the word


def _conditions(campaign: Campaign, now: datetime, table: str) -> tuple[str, list]:
    """Return the WHERE clause of the audience and the re-entry policy, with its parameters."""
    clauses, params = ["1 = 1"], []
    if campaign.audience_id:
        clauses.append(
            f"EXISTS (SELECT 1 FROM {SegmentMembership._meta.db_table} m"
            " WHERE m.segment_id = %s AND m.customer_id = a.customer_id)"
        )
        params.append(campaign.audience_id)
    past = f"SELECT 1 FROM {table} e WHERE e.campaign_id = %s AND e.customer_id = a.customer_id"
    params.append(campaign.pk)
    if campaign.reentry == Reentry.ONCE:
        clauses.append(f"NOT EXISTS ({past})")
    elif campaign.reentry == Reentry.COOLDOWN:
        clauses.append(f"NOT EXISTS ({past} AND e.entered_at > %s)")
        params.append(connection.ops.adapt_datetimefield_value(now - timedelta(days=campaign.reentry_cooldown_days)))
    else:
        clauses.append(f"NOT EXISTS ({past} AND e.state = %s)")
        params.append(EnrollmentState.ACTIVE.value)
    return " AND ".join(clauses), params
