"""What flows between parsing and writing: batches of parsed rows and what writing them did."""

from dataclasses import dataclass, field
from typing import Any

from django.db import models

from marketing.imports.schemas import Schema


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


def has_field(model: type[models.Model], name: str) -> bool:
    return any(f.name == name for f in model._meta.concrete_fields)
