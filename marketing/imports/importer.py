"""The import pipeline: map columns to fields, parse each record, and hand batches to a writer."""

import gc
import io
import json
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.utils import timezone

from marketing.imports import sources, values
from marketing.imports.batches import Batch, Rejection, written_fields
from marketing.imports.schemas import KINDS, Context, Schema, build_schemas
from marketing.imports.writers import written_batches
from marketing.spreadsheets import csv_writer

MAX_ERRORS_KEPT = 20  # errors kept in the report itself; the errors file gets every one


class ImportFailed(Exception):
    """The import cannot start or go on: a bad option, mapping or file; the message says what was kept."""


@dataclass
class ImportReport:
    kind: str
    source: str
    dialect: str = ""
    dry_run: bool = False
    read: int = 0
    inserted: int = 0
    updated: int = 0
    rejected: int = 0
    customers_created: int = 0
    kept_suppressed: int = 0
    errors: list[Rejection] = field(default_factory=list)

    @property
    def reconciles(self) -> bool:
        return self.read == self.inserted + self.updated + self.rejected

    def summary(self) -> str:
        verb = "would insert" if self.dry_run else "inserted"
        parts = [
            f"{self.kind}: read {self.read:,}",
            f"{verb} {self.inserted:,}",
            f"{'would update' if self.dry_run else 'updated'} {self.updated:,}",
            f"rejected {self.rejected:,}",
        ]
        if self.customers_created:
            parts.append(f"{'would create' if self.dry_run else 'created'} {self.customers_created:,} customers")
        if self.kept_suppressed:
            parts.append(f"kept {self.kept_suppressed:,} suppressed addresses opted out")
        return " · ".join(parts)


@dataclass(frozen=True)
class Mapping:
    """Where each field's value comes from: a column, or a column per key of a JSON field."""

    columns: dict[str, str]
    json_keys: dict[str, dict[str, str]]


def parse_map_options(options: Iterable[str]) -> dict[str, str]:
    """Turn `FIELD=COLUMN` strings into a dict, refusing malformed ones."""
    mapping: dict[str, str] = {}
    for option in options:
        target, sep, column = option.partition("=")
        target, column = target.strip(), column.strip()
        if not sep or not target or not column:
            raise ImportFailed(f"--map {option!r} is not FIELD=COLUMN")
        if target in mapping:
            raise ImportFailed(f"--map names field {target!r} twice")
        mapping[target] = column
    return mapping


def build_mapping(schema: Schema, header: list[str] | None, explicit: dict[str, str]) -> Mapping:
    """Resolve which column feeds each field, checking every name against the schema and header."""
    fields = {f.name: f for f in schema.fields}
    columns: dict[str, str] = {}
    json_keys: dict[str, dict[str, str]] = {}
    header_set = set(header) if header is not None else None
    for target, column in explicit.items():
        name, dot, key = target.partition(".")
        if name not in fields:
            raise ImportFailed(
                f"--map {target}={column}: {schema.kind} have no field {name!r}; fields: {', '.join(fields)}"
            )
        if dot and not fields[name].json:
            raise ImportFailed(f"--map {target}={column}: only JSON fields take a key after the dot")
        if header_set is not None and column not in header_set:
            raise ImportFailed(f"--map {target}={column}: the file has no column {column!r}; columns: {', '.join(header)}")
        if dot:
            json_keys.setdefault(name, {})[key] = column
        else:
            columns[name] = column
    mapped = set(columns.values()) | {c for keys in json_keys.values() for c in keys.values()}
    if header is not None:
        by_lower = {column.lower(): column for column in header}
        for name in fields:
            if name not in columns and name.lower() in by_lower and by_lower[name.lower()] not in mapped:
                columns[name] = by_lower[name.lower()]
    else:
        for name in fields:
            columns.setdefault(name, name)
    for f in schema.fields:
        derivable = f.name in schema.key and schema.derive_key_from
        if f.required and f.name not in columns and f.name not in json_keys and not derivable:
            raise ImportFailed(
                f"{schema.kind} need a {f.name!r} column; map one with --map {f.name}=COLUMN"
                + (f" (columns: {', '.join(header)})" if header else "")
            )
    return Mapping(columns, json_keys)


def _cell(value: Any) -> str | None:
    """Return a cell (text, or a JSON value) as stripped text, or None when it is blank or absent."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    text = str(value).strip()
    return text or None


class RowParser:
    """Turn one record into field values, or into the rejections that explain why not.

    This runs once per row of files with millions of rows, so the per-field plan is computed
    once and the loop body stays flat.
    """

    def __init__(
        self, schema: Schema, mapping: Mapping, context: Context, *, derive_key: bool, derive_when_absent: bool = False
    ) -> None:
        self.schema = schema
        self.context = context
        self.derive_key = derive_key
        # JSON Lines records may each carry their key or not; one without it gets a derived key.
        self.derive_when_absent = derive_when_absent
        self.key_column = mapping.columns.get(schema.key[0])
        self.json_keys = mapping.json_keys
        self.plan = [
            (f.name, mapping.columns.get(f.name), f.parse, f.required and not (f.name in schema.key and schema.derive_key_from), f.json)
            for f in schema.fields
            if f.name in mapping.columns or f.required or f.name in mapping.json_keys
        ]
        self.key_label = " + ".join(schema.key)
        # Python's keyed 64-bit string hash: a false duplicate needs a collision (odds ~2^-64 a pair).
        self.seen_keys: set[int] = set()
        self.occurrences: dict[bytes, int] = {}

    def parse(self, line: int, record: dict[str, Any]) -> tuple[dict[str, Any] | None, list[Rejection]]:
        if "" in record and len(record) == 1:
            return None, [Rejection(line, "", "", f"line {record['']}")]
        row: dict[str, Any] = {}
        errors: list[Rejection] = []
        for name, column, parse, required, is_json in self.plan:
            raw = record.get(column) if column else None
            if raw.__class__ is str:
                raw = raw.strip()
            elif isinstance(raw, (dict, list)) and not is_json:
                kind = "object" if isinstance(raw, dict) else "list"
                errors.append(Rejection(line, column, json.dumps(raw)[:80], f"{name} must be text or a number, not a JSON {kind}"))
                continue
            elif raw is not None:
                raw = _cell(raw)
            if not raw:
                if name in self.json_keys:
                    row[name] = {}
                elif required or (name == self.schema.key[0] and not self._derives(record)):
                    errors.append(Rejection(line, column or name, "", f"{name} is empty"))
                continue
            if is_json and raw[0] != "{":
                errors.append(Rejection(line, column, raw, f"{name} must be a JSON object"))
                continue
            try:
                row[name] = parse(raw)
            except ValueError as error:
                errors.append(Rejection(line, column, raw, f"{name}: {error}"))
        for name, keys in self.json_keys.items():
            target = row[name]
            for key, column in keys.items():
                raw = _cell(record.get(column))
                if raw is not None:
                    target[key] = raw
        if errors:
            return None, errors
        if self.schema.complete:
            self.schema.complete(row, self.context)
        key_name = self.schema.key[0]
        if row.get(key_name) is None:
            row[key_name] = self._derived_key(row)
        key = tuple(row[k] for k in self.schema.key)
        fingerprint = hash(key)
        if fingerprint in self.seen_keys:
            shown = ", ".join(str(k) for k in key)
            column = self.key_column or key_name
            return None, [Rejection(line, column, shown, f"duplicate {self.key_label} {shown!r} earlier in this file")]
        self.seen_keys.add(fingerprint)
        return row, []

    def _derives(self, record: dict[str, Any]) -> bool:
        return self.derive_key or (self.derive_when_absent and self.key_column not in record)

    def _derived_key(self, row: dict[str, Any]) -> str:
        """Return a stable id from the row's content and how often that content came before."""
        content = values.content_digest([row.get(name) for name in self.schema.derive_key_from])
        seen = self.occurrences.get(content, 0) + 1
        self.occurrences[content] = seen
        return f"{self.schema.kind[0]}-{content}-{seen}"


def _batches(parser: RowParser, records: Iterator[tuple[int, dict]], size: int, report: ImportReport) -> Iterator[Batch]:
    batch = Batch()
    for line, record in records:
        report.read += 1
        row, errors = parser.parse(line, record)
        if row is None:
            batch.rejections.extend(errors)
            batch.rejected_rows += 1
        else:
            batch.lines.append(line)
            batch.rows.append(row)
        if len(batch.rows) + batch.rejected_rows >= size:
            yield batch
            batch = Batch()
    if batch.rows or batch.rejected_rows:
        yield batch


def import_file(
    kind: str,
    path: str | Path,
    *,
    mapping: dict[str, str] | None = None,
    delimiter: str = "auto",
    date_format: str = "auto",
    dry_run: bool = False,
    errors_to: IO[str] | None = None,
    progress: bool = False,
    batch_size: int | None = None,
) -> ImportReport:
    """Import one file of `kind` and return what happened; see `python manage.py import_data --help`."""
    if kind not in KINDS:
        raise ImportFailed(f"unknown kind {kind!r}; choose one of {', '.join(KINDS)}")
    path = Path(path)
    if not path.is_file():
        raise ImportFailed(f"{path} is not a file")
    try:
        dialect = sources.sniff(path, delimiter)
    except sources.SourceError as error:
        raise ImportFailed(f"{path.name}: {error}") from None
    context = Context(
        date_format=None if date_format == "auto" else date_format,
        default_zone=ZoneInfo(settings.TIME_ZONE),
        source=path.name,
        now=timezone.now(),
    )
    schema = build_schemas(context)[kind]
    report = ImportReport(kind=kind, source=str(path), dialect=dialect.describe(), dry_run=dry_run)

    try:
        _run(path, dialect, schema, context, report, mapping or {}, dry_run, errors_to, progress, batch_size)
    except sources.SourceError as error:
        kept = f" Rows of earlier batches were kept ({report.inserted:,} inserted)." if report.inserted else " Nothing was stored."
        raise ImportFailed(f"{path.name}: {error}.{kept}") from None
    except UnicodeDecodeError as error:
        raise ImportFailed(
            f"{path.name}: byte {error.start} of a block is not UTF-8; save the file as UTF-8 and import again. "
            f"Rows before that block were kept ({report.inserted:,} inserted, {report.updated:,} updated)."
        ) from None
    return report


def _run(path, dialect, schema, context, report, mapping, dry_run, errors_to, progress, batch_size) -> None:
    error_writer = _ErrorWriter(errors_to)
    with open(path, "rb") as raw:
        bar = _progress_bar(path, raw) if progress else nullcontext(raw)
        with bar as counted:
            stream = _text_stream(counted, dialect)
            try:
                header, records = sources.open_records(stream, dialect)
            except sources.SourceError as error:
                raise ImportFailed(f"{path.name}: {error}") from None
            plan = build_mapping(schema, header, mapping)
            derivable = bool(schema.derive_key_from)
            parser = RowParser(
                schema,
                plan,
                context,
                derive_key=derivable and schema.key[0] not in plan.columns,
                derive_when_absent=derivable and header is None and schema.key[0] not in mapping,
            )
            fields = written_fields(schema, plan.columns, plan.json_keys)
            batches = _batches(parser, records, batch_size or settings.IMPORT_BATCH_ROWS, report)
            with _collector_paused():
                for batch, outcome in written_batches(schema, fields, batches, dry_run=dry_run):
                    report.inserted += outcome.inserted
                    report.updated += outcome.updated
                    report.rejected += batch.rejected_rows + len(outcome.rejected_lines)
                    report.customers_created += outcome.customers_created
                    report.kept_suppressed += outcome.kept_suppressed
                    for rejection in sorted(batch.rejections + outcome.rejections, key=lambda r: r.line):
                        error_writer.write(rejection)
                        if len(report.errors) < MAX_ERRORS_KEPT:
                            report.errors.append(rejection)


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector: a batch allocates ~10^5 acyclic dicts, and generation
    scans over them cost more than parsing (measured: 17 µs a row with it, 12 µs without)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


class _ErrorWriter:
    def __init__(self, stream: IO[str] | None) -> None:
        self._writer = csv_writer(stream) if stream is not None else None
        if self._writer:
            self._writer.writerow(["line", "column", "value", "reason"])

    def write(self, rejection: Rejection) -> None:
        if self._writer:
            self._writer.writerow([rejection.line, rejection.column, rejection.value, rejection.reason])


def _text_stream(raw: IO[bytes], dialect: sources.Dialect) -> IO[str]:
    return io.TextIOWrapper(raw, encoding=dialect.encoding, newline="" if dialect.format == "csv" else None)


def _progress_bar(path: Path, raw: IO[bytes]):
    from tqdm import tqdm

    return tqdm.wrapattr(raw, "read", total=path.stat().st_size, desc=path.name, unit="B", unit_scale=True, leave=False)

