"""Static segments from files: a list of customers, named by external id or by e-mail address."""

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from django.db import transaction
from django.utils import timezone

from marketing.imports import ImportFailed
from marketing.imports.batches import Rejection
from marketing.imports.orm_writer import LOOKUP_CHUNK, lookup_ids
from marketing.imports.sources import SourceError, open_records, sniff
from marketing.imports.values import email as parse_email
from marketing.models import (
    Customer,
    Segment,
    SegmentChange,
    SegmentChangeKind,
    SegmentKind,
    SegmentMembership,
    SegmentSize,
)


@dataclass
class ListReport:
    segment: str
    read: int = 0
    added: int = 0
    already: int = 0
    removed: int = 0
    rejected: int = 0
    errors: list[Rejection] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"{self.segment}: read {self.read:,} · added {self.added:,} · already members {self.already:,} · "
            f"removed {self.removed:,} · rejected {self.rejected:,}"
        )


def _key_column(header: list[str]) -> tuple[str, str]:
    """Return (column, lookup): an external_id column, else an e-mail column, else the first column."""
    lowered = {name.lower(): name for name in header}
    for wanted, lookup in (("external_id", "external_id"), ("email", "email"), ("e-mail", "email")):
        if wanted in lowered:
            return lowered[wanted], lookup
    return header[0], "external_id"


def import_list(name: str, path: str | Path, *, replace: bool = False, now: datetime | None = None) -> ListReport:
    """Add the customers a file names to the static segment `name` (created if missing).

    With `replace`, members the file does not name are removed. Unknown customers are rejected
    with their line; entries and exits are recorded like a refresh's.
    """
    now = now or timezone.now()
    path = Path(path)
    report = ListReport(segment=name)
    try:
        dialect = sniff(path)
        with open(path, encoding="utf-8-sig", newline="" if dialect.format == "csv" else None) as handle:
            header, records = open_records(handle, dialect)
            column, lookup = _key_column(header) if header else ("external_id", "external_id")
            wanted = _listed_keys(records, column, lookup, report)
    except (SourceError, OSError, UnicodeDecodeError) as error:
        raise ImportFailed(f"{path.name}: {error}") from None
    _add_members(name, lookup, column, wanted, replace, now, report)
    report.errors.sort(key=lambda rejection: rejection.line)
    return report


def _listed_keys(records, column: str, lookup: str, report: ListReport) -> dict[str, int]:
    """Return each key the file names with the first line naming it; count and report the rest."""
    wanted: dict[str, int] = {}
    for line, record in records:
        report.read += 1
        raw = str(record.get(column) or "").strip()
        if lookup == "email" and raw:
            try:
                raw = parse_email(raw)
            except ValueError as error:
                report.rejected += 1
                report.errors.append(Rejection(line, column, raw, str(error)))
                continue
        if not raw:
            report.rejected += 1
            report.errors.append(Rejection(line, column, "", f"{lookup} is empty"))
        elif raw in wanted:
            report.already += 1
        else:
            wanted[raw] = line
    return wanted


def _add_members(
    name: str, lookup: str, column: str, wanted: dict[str, int], replace: bool, now: datetime, report: ListReport
) -> None:
    found = lookup_ids(Customer, lookup, wanted)
    for key in sorted(set(wanted) - set(found), key=wanted.get):
        report.rejected += 1
        report.errors.append(Rejection(wanted[key], column, key, f"no customer with {lookup} {key!r}"))
    with transaction.atomic():
        segment, _ = Segment.objects.select_for_update().get_or_create(name=name, defaults={"kind": SegmentKind.STATIC})
        if segment.kind != SegmentKind.STATIC:
            raise ImportFailed(f"{name!r} is a dynamic segment; lists go into static segments")
        current = set(SegmentMembership.objects.filter(segment=segment).values_list("customer_id", flat=True))
        listed = set(found.values())
        entering = listed - current
        leaving = current - listed if replace else set()
        report.already += len(listed & current)
        version = segment.version + 1
        SegmentMembership.objects.bulk_create(
            [SegmentMembership(segment=segment, customer_id=pk, entered_at=now) for pk in sorted(entering)], batch_size=LOOKUP_CHUNK
        )
        SegmentMembership.objects.filter(segment=segment, customer_id__in=sorted(leaving)).delete()
        SegmentChange.objects.bulk_create(
            [SegmentChange(segment=segment, customer_id=pk, kind=SegmentChangeKind.ENTERED, version=version, at=now) for pk in sorted(entering)]
            + [SegmentChange(segment=segment, customer_id=pk, kind=SegmentChangeKind.EXITED, version=version, at=now) for pk in sorted(leaving)],
            batch_size=LOOKUP_CHUNK,
        )
        size = len(current | entering) - len(leaving)
        changed = bool(entering or leaving)
        Segment.objects.filter(pk=segment.pk).update(
            size=size, version=version if changed else segment.version, last_calculated_at=now
        )
        SegmentSize.objects.create(segment=segment, at=now, size=size, entered=len(entering), exited=len(leaving))
    report.added, report.removed = len(entering), len(leaving)
