"""Writing parsed batches: one upsert path per database, with the same meaning on both.

Meaning: rows are matched on the schema's key; a blank cell never erases what is stored; JSON
fields are merged key by key; references to customers create them when missing, references to
orders and products must exist; an address on the suppression list stays opted out.

PostgreSQL: the batch is COPied into a temporary staging table, then one UPDATE and one
`INSERT ... ON CONFLICT DO NOTHING` move it into place. Other databases (SQLite): the batch's
existing rows are read once and merged, then written with one batched `bulk_create` upsert.
"""

import json
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections, models, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.utils import timezone

from marketing.imports.schemas import Schema
from marketing.models import Consent, Customer, Suppression

LOOKUP_CHUNK = 5_000  # ids per IN (...) list: well under SQLite's 32,766 bound variables
STAGE_TABLE = "kairos_import_stage"


@dataclass(frozen=True)
class Rejection:
    line: int
    column: str
    value: str
    reason: str


@dataclass
class Batch:
    lines: list[int] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    rejected_rows: int = 0


@dataclass
class Outcome:
    inserted: int = 0
    updated: int = 0
    customers_created: int = 0
    kept_suppressed: int = 0
    rejections: list[Rejection] = field(default_factory=list)
    rejected_lines: set[int] = field(default_factory=set)


def written_fields(schema: Schema, columns: dict[str, str], json_keys: dict[str, dict[str, str]]) -> list[str]:
    """Return the model fields an import of these columns writes, key first."""
    present = set(columns) | set(json_keys) | set(schema.key)
    if "email" in present:
        present.add("email_hash")
    if "consent_state" in present:
        present |= {"consent_source", "consent_at"}
    ordered = list(schema.key) + [f.name for f in schema.fields if f.name not in schema.key]
    ordered += [name for name in ("email_hash", "consent_source", "consent_at") if name not in ordered]
    return [name for name in ordered if name in present]


def _chunks(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _lookup(model: type[models.Model], field_name: str, keys: Iterable[str]) -> dict[str, int]:
    found: dict[str, int] = {}
    for chunk in _chunks(sorted(set(keys)), LOOKUP_CHUNK):
        found.update(model.objects.filter(**{f"{field_name}__in": chunk}).values_list(field_name, "pk"))
    return found


def keep_suppressed_opted_out(rows: list[dict[str, Any]], now, dry_run: bool) -> int:
    """Opt out every imported customer whose address is suppressed; return how many rows named one."""
    hashes = {row["email_hash"] for row in rows if row.get("email_hash")}
    suppressed: set[str] = set()
    for chunk in _chunks(sorted(hashes), LOOKUP_CHUNK):
        suppressed.update(Suppression.objects.filter(email_hash__in=chunk).values_list("email_hash", flat=True))
    if suppressed and not dry_run:
        for chunk in _chunks(sorted(suppressed), LOOKUP_CHUNK):
            Customer.objects.filter(email_hash__in=chunk).exclude(consent_state=Consent.OPTED_OUT).update(
                consent_state=Consent.OPTED_OUT, consent_source="suppression list", consent_at=now
            )
    return sum(1 for row in rows if row.get("email_hash") in suppressed)


class OrmWriter:
    """Upsert with the ORM; with `dry_run`, only read and count what would change."""

    def __init__(self, schema: Schema, fields: list[str], *, dry_run: bool) -> None:
        self.schema = schema
        self.fields = fields
        self.dry_run = dry_run
        self.model = schema.model
        self._would_create: dict[str, set[str]] = {}

    def write(self, batch: Batch) -> Outcome:
        outcome = Outcome()
        with transaction.atomic():
            rows, lines = self._resolve(batch, outcome)
            existing = self._existing(rows)
            objects = []
            for row in rows:
                current = existing.get(self._key(row))
                if current is None:
                    outcome.inserted += 1
                else:
                    outcome.updated += 1
                objects.append(self._merge(row, current))
            if not self.dry_run and objects:
                update = [name for name in self.fields if name not in self.schema.key]
                if update:
                    if _has_field(self.model, "updated_at"):
                        update.append("updated_at")
                    self.model.objects.bulk_create(
                        objects, update_conflicts=True, unique_fields=list(self.schema.key), update_fields=update
                    )
                else:
                    self.model.objects.bulk_create(objects, ignore_conflicts=True)
            if self.model is Customer:
                outcome.kept_suppressed = keep_suppressed_opted_out(rows, timezone.now(), self.dry_run)
        return outcome

    def _key(self, row: dict[str, Any]) -> tuple:
        return tuple(row[name] for name in self.schema.key)

    def _resolve(self, batch: Batch, outcome: Outcome) -> tuple[list[dict[str, Any]], list[int]]:
        """Replace natural keys of references with ids, creating customers where allowed."""
        rows, lines = batch.rows, batch.lines
        for name, ref in self.schema.references.items():
            wanted = {row[name] for row in rows}
            ids = _lookup(ref.model, ref.lookup, wanted)
            missing = wanted - ids.keys()
            if missing and ref.create_missing:
                if self.dry_run:
                    seen = self._would_create.setdefault(name, set())
                    outcome.customers_created += len(missing - seen)
                    seen |= missing
                    ids.update(dict.fromkeys(missing, 0))
                else:
                    ref.model.objects.bulk_create(
                        [ref.model(**{ref.lookup: key}) for key in sorted(missing)], ignore_conflicts=True
                    )
                    ids.update(_lookup(ref.model, ref.lookup, missing))
                    outcome.customers_created += len(missing)
            kept_rows, kept_lines = [], []
            for line, row in zip(lines, rows, strict=True):
                if row[name] in ids:
                    kept_rows.append({**row, name: ids[row[name]]})
                    kept_lines.append(line)
                else:
                    label = ref.model._meta.verbose_name
                    outcome.rejections.append(
                        Rejection(line, name, row[name], f"{name}: no {label} with {ref.lookup} {row[name]!r}")
                    )
                    outcome.rejected_lines.add(line)
            rows, lines = kept_rows, kept_lines
        return rows, lines

    def _existing(self, rows: list[dict[str, Any]]) -> dict[tuple, models.Model]:
        if not rows:
            return {}
        key = self.schema.key
        found: dict[tuple, models.Model] = {}
        if len(key) == 1:
            for chunk in _chunks([row[key[0]] for row in rows], LOOKUP_CHUNK):
                for obj in self.model.objects.filter(**{f"{key[0]}__in": chunk}):
                    found[(getattr(obj, key[0]),)] = obj
            return found
        first, second = (f"{name}_id" for name in key)
        wanted = {self._key(row) for row in rows}
        for chunk in _chunks(sorted({k[0] for k in wanted}), LOOKUP_CHUNK):
            for obj in self.model.objects.filter(**{f"{first}__in": chunk}):
                pair = (getattr(obj, first), getattr(obj, second))
                if pair in wanted:
                    found[pair] = obj
        return found

    def _merge(self, row: dict[str, Any], current: models.Model | None) -> models.Model:
        """Build the row to write: the file's values over the stored ones, JSON merged by key."""
        values: dict[str, Any] = {}
        for name in self.fields:
            attname = f"{name}_id" if name in self.schema.references else name
            value = row.get(name)
            stored = getattr(current, attname) if current is not None else None
            if isinstance(value, dict) and isinstance(stored, dict):
                value = {**stored, **value}
            if value is None:
                if current is None:
                    continue
                value = stored
            values[attname] = value
        if current is not None:
            for f in self.model._meta.concrete_fields:
                if f.attname not in values and not f.primary_key:
                    values[f.attname] = getattr(current, f.attname)
        return self.model(**values)


def _has_field(model: type[models.Model], name: str) -> bool:
    return any(f.name == name for f in model._meta.concrete_fields)


class PostgresWriter:
    """Upsert through a COPY-filled staging table: two set-based statements per batch."""

    def __init__(self, schema: Schema, fields: list[str]) -> None:
        self.schema = schema
        self.fields = fields
        self.model = schema.model
        self.table = self._q(self.model._meta.db_table)
        self._stage_created: set[int] = set()

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

    def write(self, batch: Batch) -> Outcome:
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
            self._copy(cursor, batch)
            # The planner knows nothing of a fresh temporary table; without statistics it may
            # pick a nested loop over the whole target.
            cursor.execute(f"ANALYZE {STAGE_TABLE}")
            self._resolve(cursor, outcome)
            if self._has_blanks(cursor):
                outcome.updated = self._update(cursor)
                outcome.inserted = self._insert(cursor, on_conflict="DO NOTHING")
            else:
                # No blank to preserve stored values for: one upsert probes each key once, not twice.
                outcome.inserted, outcome.updated = self._upsert(cursor)
            if self.model is Customer:
                outcome.kept_suppressed = keep_suppressed_opted_out(batch.rows, timezone.now(), dry_run=False)
        return outcome

    def _copy(self, cursor, batch: Batch) -> None:
        columns = ", ".join(["line"] + [self._q(name) for name in self.fields])
        json_fields = {name for name in self.fields if isinstance(self.model._meta.get_field(name), models.JSONField)}
        with cursor.cursor.copy(f"COPY {STAGE_TABLE} ({columns}) FROM STDIN") as copy:
            for line, row in zip(batch.lines, batch.rows, strict=True):
                record = [line]
                for name in self.fields:
                    value = row.get(name)
                    if name in json_fields and value is not None:
                        value = json.dumps(value)
                    record.append(value)
                copy.write_row(record)

    def _resolve(self, cursor, outcome: Outcome) -> None:
        for name, ref in self.schema.references.items():
            ref_table = self._q(ref.model._meta.db_table)
            lookup = self._q(ref.model._meta.get_field(ref.lookup).column)
            if ref.create_missing:
                cursor.execute(
                    f"INSERT INTO {ref_table} ({lookup}) SELECT DISTINCT s.{self._q(name)} FROM {STAGE_TABLE} s "
                    f"ON CONFLICT ({lookup}) DO NOTHING"
                )
                outcome.customers_created += cursor.rowcount
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
        assignments = []
        for name in self.fields:
            if name in self.schema.key:
                continue
            column = self._q(self._column(name))
            value = expressions[name]
            if isinstance(self.model._meta.get_field(name), models.JSONField):
                assignments.append(f"{column} = t.{column} || COALESCE({value}, '{{}}'::jsonb)")
            else:
                assignments.append(f"{column} = COALESCE({value}, t.{column})")
        if _has_field(self.model, "updated_at"):
            assignments.append('"updated_at" = now()')
        if not assignments:
            assignments.append(f"{self._q(self._column(self.schema.key[0]))} = t.{self._q(self._column(self.schema.key[0]))}")
        where = " AND ".join(f"t.{self._q(self._column(name))} = {expressions[name]}" for name in self.schema.key)
        cursor.execute(f"UPDATE {self.table} t SET {', '.join(assignments)} FROM {source} WHERE {where}")
        return cursor.rowcount

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
        assignments = []
        for name in self.fields:
            if name in self.schema.key:
                continue
            column = self._q(self._column(name))
            if isinstance(self.model._meta.get_field(name), models.JSONField):
                assignments.append(f"{column} = {self.table}.{column} || EXCLUDED.{column}")
            else:
                assignments.append(f"{column} = EXCLUDED.{column}")
        if _has_field(self.model, "updated_at"):
            assignments.append('"updated_at" = now()')
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


def written_batches(schema: Schema, fields: list[str], batches: Iterable[Batch], *, dry_run: bool) -> Iterator[tuple[Batch, Outcome]]:
    """Write each batch with the writer that fits the database and yield it with its outcome, in order.

    On PostgreSQL outside a transaction, batches are written on a second thread with its own
    connection while the caller parses the next one: parsing and the database each keep a core busy.
    """
    connection = connections[DEFAULT_DB_ALIAS]
    if connection.vendor != "postgresql" or dry_run:
        writer = OrmWriter(schema, fields, dry_run=dry_run)
        for batch in batches:
            yield batch, writer.write(batch)
        return
    writer = PostgresWriter(schema, fields)
    if connection.in_atomic_block:
        # Inside the caller's transaction (tests, nested imports) a second connection would not see its rows.
        try:
            for batch in batches:
                yield batch, writer.write(batch)
        finally:
            writer.close()
        return
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="kairos-import") as pool:
        pending: tuple[Batch, Future] | None = None
        try:
            for batch in batches:
                future = pool.submit(writer.write, batch)
                if pending is not None:
                    yield pending[0], pending[1].result()
                pending = (batch, future)
            if pending is not None:
                yield pending[0], pending[1].result()
        finally:
            pool.submit(_close_in_thread, writer).result()


def _close_in_thread(writer: PostgresWriter) -> None:
    writer.close()
    connections[DEFAULT_DB_ALIAS].close()
