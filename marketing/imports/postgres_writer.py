"""Writing batches on PostgreSQL: COPY into a staging table, then set-based statements.

Per batch: the rows are COPied into a temporary staging table; customers they name are created
with one `INSERT ... SELECT DISTINCT`; then one `INSERT ... ON CONFLICT DO UPDATE` moves the
batch into place, or, when some cells are blank (whose stored values must be kept), one UPDATE
of the existing rows and one `INSERT ... ON CONFLICT DO NOTHING` of the new ones.
"""

import json
import re
from collections.abc import Callable
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections, models, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.utils import timezone

from marketing.imports.batches import Batch, Outcome, Rejection, has_field
from marketing.imports.orm_writer import keep_suppressed_opted_out
from marketing.imports.schemas import Schema
from marketing.models import Customer

STAGE_TABLE = "kairos_import_stage"


class PostgresWriter:
    """Upsert through a COPY-filled staging table: two set-based statements per batch."""

    def __init__(self, schema: Schema, fields: list[str]) -> None:
        self.schema = schema
        self.fields = fields
        self.model = schema.model
        self.table = self._q(self.model._meta.db_table)
        self._stage_created: set[int] = set()
        # Natural keys of referenced rows this import already made sure exist: a customer named by
        # every tenth order is then looked up once per import, not once per batch.
        self._ensured: dict[str, set[str]] = {name: set() for name in schema.references}

    @property
    def connection(self) -> BaseDatabaseWrapper:
        # Looked up on each use: a background thread writes through its own connection.
        return connections[DEFAULT_DB_ALIAS]

    def _column(self, name: str) -> str:
        return self.model._meta.get_field(name).column

    def _stage_type(self, name: str) -> str:
        if name in self.schema.references:
            return "text"
        return self.model._meta.get_field(name).db_type(self.connection)

    def _create_stage(self, cursor) -> None:
        columns = ", ".join(f"{self._q(name)} {self._stage_type(name)}" for name in self.fields)
        cursor.execute(f"DROP TABLE IF EXISTS {STAGE_TABLE}")
        cursor.execute(f"CREATE TEMPORARY TABLE {STAGE_TABLE} (line integer, {columns})")
        self._stage_created.add(id(self.connection))

    def _q(self, name: str) -> str:
        return self.connection.ops.quote_name(name)

    def close(self) -> None:
        """Drop the staging table of the calling thread's connection."""
        if id(self.connection) in self._stage_created:
            self._stage_created.discard(id(self.connection))
            with self.connection.cursor() as cursor:
                cursor.execute(f"DROP TABLE IF EXISTS {STAGE_TABLE}")

    def write(self, batch: Batch, payload: bytes | None = None) -> Outcome:
        outcome = Outcome()
        if not batch.rows:
            return outcome
        with transaction.atomic(), self.connection.cursor() as cursor:
            # A lost commit is repaired by importing the file again, so don't wait for the disk.
            cursor.execute("SET LOCAL synchronous_commit = off")
            if id(self.connection) not in self._stage_created:
                self._create_stage(cursor)
            else:
                cursor.execute(f"TRUNCATE {STAGE_TABLE}")
            self._copy(cursor, payload if payload is not None else self.encode(batch))
            self._resolve(cursor, batch, outcome)
            if self._has_blanks(cursor):
                outcome.updated = self._update(cursor)
                outcome.inserted = self._insert(cursor, on_conflict="DO NOTHING")
            else:
                # No blank to preserve stored values for: one upsert probes each key once, not twice.
                outcome.inserted, outcome.updated = self._upsert(cursor)
            self._note_first_seen(cursor)
            if self.model is Customer:
                outcome.kept_suppressed = keep_suppressed_opted_out(batch.rows, timezone.now(), dry_run=False)
        return outcome

    def _note_first_seen(self, cursor) -> None:
        """Lower the first sign of life of the batch's customers to their earliest moment in it, in one UPDATE."""
        if self.schema.first_seen is None or self.schema.first_seen[1] not in self.fields:
            return
        who, moment = (self._q(name) for name in self.schema.first_seen)
        customers = self._q(Customer._meta.db_table)
        if self.schema.first_seen[0] in self.schema.references:
            earliest = (
                f"SELECT r.id, MIN(s.{moment}) AS at FROM {STAGE_TABLE} s JOIN {customers} r ON r.external_id = s.{who} "
                f"WHERE s.{moment} IS NOT NULL GROUP BY r.id"
            )
        else:
            earliest = (
                f"SELECT r.id, s.{moment} AS at FROM {STAGE_TABLE} s JOIN {customers} r ON r.external_id = s.{who} "
                f"WHERE s.{moment} IS NOT NULL"
            )
        cursor.execute(
            f"UPDATE {customers} c SET first_seen_at = v.at FROM ({earliest}) v "
            "WHERE c.id = v.id AND (c.first_seen_at IS NULL OR c.first_seen_at > v.at)"
        )

    def encode(self, batch: Batch) -> bytes:
        """Return the batch as COPY text: done by the parsing thread, so the writing thread only sends."""
        json_fields = {name for name in self.fields if isinstance(self.model._meta.get_field(name), models.JSONField)}
        formats = [_copy_json if name in json_fields else _copy_text for name in self.fields]
        fields = self.fields
        lines = []
        for line, row in zip(batch.lines, batch.rows, strict=True):
            cells = [str(line)]
            for name, encode in zip(fields, formats, strict=True):
                cells.append(encode(row.get(name)))
            lines.append("\t".join(cells))
        lines.append("")
        return "\n".join(lines).encode()

    def _copy(self, cursor, payload: bytes) -> None:
        columns = ", ".join(["line"] + [self._q(name) for name in self.fields])
        with cursor.cursor.copy(f"COPY {STAGE_TABLE} ({columns}) FROM STDIN") as copy:
            copy.write(payload)

    def _resolve(self, cursor, batch: Batch, outcome: Outcome) -> None:
        for name, ref in self.schema.references.items():
            ref_table = self._q(ref.model._meta.db_table)
            lookup = self._q(ref.model._meta.get_field(ref.lookup).column)
            if ref.create_missing:
                ensured = self._ensured[name]
                # Sorted, so two imports creating the same customers lock them in the same order.
                fresh = sorted({row[name] for row in batch.rows} - ensured)
                if fresh:
                    cursor.execute(
                        f"INSERT INTO {ref_table} ({lookup}) SELECT unnest(%s::text[]) ON CONFLICT ({lookup}) DO NOTHING",
                        [fresh],
                    )
                    outcome.customers_created += cursor.rowcount
                    ensured.update(fresh)
                continue
            cursor.execute(
                f"DELETE FROM {STAGE_TABLE} s WHERE NOT EXISTS "
                f"(SELECT 1 FROM {ref_table} r WHERE r.{lookup} = s.{self._q(name)}) RETURNING s.line, s.{self._q(name)}"
            )
            label = ref.model._meta.verbose_name
            for line, key in cursor.fetchall():
                outcome.rejections.append(Rejection(line, name, key, f"{name}: no {label} with {ref.lookup} {key!r}"))
                outcome.rejected_lines.add(line)

    def _source(self) -> tuple[str, dict[str, str]]:
        """Return the FROM clause over the stage with its references joined, and each field's SQL value."""
        joins = [f"{STAGE_TABLE} s"]
        expressions: dict[str, str] = {}
        for index, (name, ref) in enumerate(self.schema.references.items()):
            alias = f"r{index}"
            ref_table = self._q(ref.model._meta.db_table)
            lookup = self._q(ref.model._meta.get_field(ref.lookup).column)
            joins.append(f"JOIN {ref_table} {alias} ON {alias}.{lookup} = s.{self._q(name)}")
            expressions[name] = f"{alias}.{self._q(ref.model._meta.pk.column)}"
        for name in self.fields:
            expressions.setdefault(name, f"s.{self._q(name)}")
        return " ".join(joins), expressions

    def _update(self, cursor) -> int:
        source, expressions = self._source()
        assignments = self._assignments("t", lambda name: expressions[name], keep_stored=True)
        if not assignments:
            assignments.append(f"{self._q(self._column(self.schema.key[0]))} = t.{self._q(self._column(self.schema.key[0]))}")
        where = " AND ".join(f"t.{self._q(self._column(name))} = {expressions[name]}" for name in self.schema.key)
        cursor.execute(f"UPDATE {self.table} t SET {', '.join(assignments)} FROM {source} WHERE {where}")
        return cursor.rowcount

    def _assignments(self, target: str, incoming: Callable[[str], str], *, keep_stored: bool) -> list[str]:
        """Return the SET list: JSON merged by key; with `keep_stored`, a NULL (blank) keeps the stored value."""
        assignments = []
        for name in self.fields:
            if name in self.schema.key:
                continue
            column = self._q(self._column(name))
            value = incoming(name)
            if isinstance(self.model._meta.get_field(name), models.JSONField):
                assignments.append(f"{column} = {target}.{column} || COALESCE({value}, '{{}}'::jsonb)")
            elif keep_stored:
                assignments.append(f"{column} = COALESCE({value}, {target}.{column})")
            else:
                assignments.append(f"{column} = {value}")
        if has_field(self.model, "updated_at"):
            assignments.append('"updated_at" = now()')
        return assignments

    def _plain_fields(self) -> list[str]:
        """Return the written fields that a blank cell leaves alone (not the key, not JSON)."""
        return [
            name for name in self.fields
            if name not in self.schema.key and not isinstance(self.model._meta.get_field(name), models.JSONField)
        ]

    def _has_blanks(self, cursor) -> bool:
        plain = self._plain_fields()
        if not plain:
            return False
        condition = " OR ".join(f"{self._q(name)} IS NULL" for name in plain)
        cursor.execute(f"SELECT EXISTS (SELECT 1 FROM {STAGE_TABLE} WHERE {condition})")
        return cursor.fetchone()[0]

    def _upsert(self, cursor) -> tuple[int, int]:
        assignments = self._assignments(self.table, lambda name: f"EXCLUDED.{self._q(self._column(name))}", keep_stored=False)
        action = f"DO UPDATE SET {', '.join(assignments)}" if assignments else "DO NOTHING"
        statement, params = self._insert_statement(action)
        # xmax is 0 on a freshly inserted row version and set on one that ON CONFLICT updated.
        cursor.execute(
            f"WITH written AS ({statement} RETURNING (xmax = 0) AS inserted) "
            "SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted) FROM written",
            params,
        )
        inserted, updated = cursor.fetchone()
        return inserted, updated

    def _insert(self, cursor, on_conflict: str) -> int:
        statement, params = self._insert_statement(on_conflict)
        cursor.execute(statement, params)
        return cursor.rowcount

    def _insert_statement(self, action: str) -> tuple[str, list]:
        source, expressions = self._source()
        columns, selects, params = [], [], []
        for name in self.fields:
            model_field = self.model._meta.get_field(name)
            columns.append(self._q(model_field.column))
            default = model_field.get_default()
            if default is None or name in self.schema.key:
                selects.append(expressions[name])
            else:
                selects.append(f"COALESCE({expressions[name]}, %s::{model_field.db_type(self.connection)})")
                params.append(json.dumps(default) if isinstance(default, dict) else default)
        conflict = ", ".join(self._q(self._column(name)) for name in self.schema.key)
        statement = (
            f"INSERT INTO {self.table} ({', '.join(columns)}) SELECT {', '.join(selects)} FROM {source} "
            f"ON CONFLICT ({conflict}) {action}"
        )
        return statement, params


_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
_NEEDS_ESCAPE = re.compile(r"[\\\t\n\r]")


def _copy_text(value: Any) -> str:
    """Return a value in COPY's text format: \\N for NULL, special characters escaped."""
    if value is None:
        return "\\N"
    if value is True or value is False:
        return "t" if value else "f"
    text = value if value.__class__ is str else (value.isoformat() if hasattr(value, "isoformat") else str(value))
    return text.translate(_COPY_ESCAPES) if _NEEDS_ESCAPE.search(text) else text


def _copy_json(value: Any) -> str:
    return "\\N" if value is None else _copy_text(json.dumps(value))
