"""Writing batches through the ORM, for SQLite and for dry runs on any database.

The batch's existing rows are read once and merged with the file's values, then written with
one batched `bulk_create` upsert.
"""

from collections.abc import Iterable, Iterator
from typing import Any

from django.db import models, transaction
from django.utils import timezone

from marketing.consent import record_consent_changes
from marketing.first_seen import earliest_by_customer, note_first_seen
from marketing.imports.batches import Batch, Outcome, Rejection, has_field
from marketing.imports.schemas import Schema
from marketing.models import Consent, Customer, Suppression

LOOKUP_CHUNK = 5_000  # ids per IN (...) list: well under SQLite's 32,766 bound variables


def chunks(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def lookup_ids(model: type[models.Model], field_name: str, keys: Iterable[str]) -> dict[str, int]:
    """Return {natural key: primary key} for the keys that exist, in chunks of LOOKUP_CHUNK."""
    found: dict[str, int] = {}
    for chunk in chunks(sorted(set(keys)), LOOKUP_CHUNK):
        found.update(model.objects.filter(**{f"{field_name}__in": chunk}).order_by().values_list(field_name, "pk"))
    return found


def keep_suppressed_opted_out(rows: list[dict[str, Any]], now, dry_run: bool) -> int:
    """Opt out every imported customer whose address is suppressed; return how many rows named one."""
    hashes = {row["email_hash"] for row in rows if row.get("email_hash")}
    suppressed: set[str] = set()
    for chunk in chunks(sorted(hashes), LOOKUP_CHUNK):
        suppressed.update(Suppression.objects.filter(email_hash__in=chunk).values_list("email_hash", flat=True))
    if suppressed and not dry_run:
        for chunk in chunks(sorted(suppressed), LOOKUP_CHUNK):
            changing = Customer.objects.filter(email_hash__in=chunk).exclude(consent_state=Consent.OPTED_OUT)
            ids = list(changing.values_list("pk", flat=True))
            Customer.objects.filter(pk__in=ids).update(
                consent_state=Consent.OPTED_OUT, consent_source="suppression list", consent_at=now
            )
            record_consent_changes(ids, Consent.OPTED_OUT, "suppression list", now)
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
                    if has_field(self.model, "updated_at"):
                        update.append("updated_at")
                    self.model.objects.bulk_create(
                        objects, update_conflicts=True, unique_fields=list(self.schema.key), update_fields=update
                    )
                else:
                    self.model.objects.bulk_create(objects, ignore_conflicts=True)
                self._note_first_seen(rows)
            if self.model is Customer:
                outcome.kept_suppressed = keep_suppressed_opted_out(rows, timezone.now(), self.dry_run)
        return outcome

    def _note_first_seen(self, rows: list[dict[str, Any]]) -> None:
        """Lower the first sign of life of the batch's customers to their earliest moment in it."""
        if self.schema.first_seen is None or self.schema.first_seen[1] not in self.fields:
            return
        who, moment = self.schema.first_seen
        if who in self.schema.references:  # already resolved to customer ids
            pairs = ((row[who], row.get(moment)) for row in rows)
        else:
            ids = lookup_ids(Customer, "external_id", (row[who] for row in rows if row.get(moment) is not None))
            pairs = ((ids.get(row[who]), row.get(moment)) for row in rows)
        note_first_seen(earliest_by_customer(pairs))

    def _key(self, row: dict[str, Any]) -> tuple:
        return tuple(row[name] for name in self.schema.key)

    def _resolve(self, batch: Batch, outcome: Outcome) -> tuple[list[dict[str, Any]], list[int]]:
        """Replace natural keys of references with ids, creating customers where allowed."""
        rows, lines = batch.rows, batch.lines
        for name, ref in self.schema.references.items():
            wanted = {row[name] for row in rows}
            ids = lookup_ids(ref.model, ref.lookup, wanted)
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
                    ids.update(lookup_ids(ref.model, ref.lookup, missing))
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
            for chunk in chunks([row[key[0]] for row in rows], LOOKUP_CHUNK):
                for obj in self.model.objects.filter(**{f"{key[0]}__in": chunk}):
                    found[(getattr(obj, key[0]),)] = obj
            return found
        first, second = (f"{name}_id" for name in key)
        wanted = {self._key(row) for row in rows}
        for chunk in chunks(sorted({k[0] for k in wanted}), LOOKUP_CHUNK):
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
