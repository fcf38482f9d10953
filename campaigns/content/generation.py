"""Generating content in bulk: every channel for every subject, stored so that a rerun updates in place."""

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from django.db import transaction
from django.utils import timezone

from campaigns.content.seo import render_meta
from campaigns.content.social import POST_MAX_CHARS, render_post
from campaigns.content.subjects import SEGMENT_TOP_SUBJECTS, Subject, category_subjects, product_subjects
from campaigns.content.templates import PieceOutput
from campaigns.models import Channel, ContentPiece, ContentStatus
from campaigns.rendering import layout_names
from marketing.models import Segment

ALL_CHANNELS: tuple[str, ...] = (Channel.META, *POST_MAX_CHARS)


class Kind(StrEnum):
    PRODUCTS = "products"
    CATEGORIES = "categories"


class Outcome(StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"


@dataclass(frozen=True)
class Refusal:
    subject_key: str
    channel: str
    problem: str

    def __str__(self) -> str:
        return f"{self.subject_key} on {Channel(self.channel).label}: {self.problem}"


@dataclass
class GenerationReport:
    """What a run did: pieces created, updated and unchanged, and the refused ones with their reasons."""

    created: int = 0
    updated: int = 0
    unchanged: int = 0
    refused: int = 0
    refusals: list[Refusal] = field(default_factory=list)

    @property
    def total(self) -> int:
        return self.created + self.updated + self.unchanged + self.refused

    def record(self, subject_key: str, channel: str, outcome: Outcome, problem: str) -> None:
        """Count one stored piece; a refused one counts as refused whether it was created, updated or unchanged."""
        if problem:
            self.refused += 1
            self.refusals.append(Refusal(subject_key, channel, problem))
        else:
            setattr(self, outcome.value, getattr(self, outcome.value) + 1)

    def add(self, other: "GenerationReport") -> None:
        """Add another run's counts and refusals to this one."""
        self.created += other.created
        self.updated += other.updated
        self.unchanged += other.unchanged
        self.refused += other.refused
        self.refusals += other.refusals

    def summary(self) -> str:
        """Return one line for logs and the demo."""
        return (
            f"{self.total:,} content pieces: {self.created:,} created, {self.updated:,} updated, "
            f"{self.unchanged:,} unchanged, {self.refused:,} refused"
        )


def checked_channels(channels: Iterable[str] | None) -> tuple[str, ...]:
    """Return the channels to generate, in their usual order; an unknown one raises ValueError naming the known ones."""
    if channels is None:
        return ALL_CHANNELS
    wanted = set(channels)
    if unknown := sorted(wanted - set(ALL_CHANNELS)):
        raise ValueError(f"unknown channel(s) {', '.join(unknown)}; channels: {', '.join(ALL_CHANNELS)}")
    return tuple(channel for channel in ALL_CHANNELS if channel in wanted)


def render_piece(channel: str, subject: Subject, locale: str, available: Iterable[str]) -> PieceOutput:
    """Render one channel's content for a subject."""
    if channel == Channel.META:
        return render_meta(subject, locale, available)
    return render_post(channel, subject, locale, available)


def store_piece(
    piece: ContentPiece | None,
    channel: str,
    subject: Subject,
    output: PieceOutput,
    *,
    locale: str,
    segment: Segment | None,
    now: datetime,
) -> Outcome:
    """Create or update a subject's piece; unchanged output keeps its review, changed output goes back to review."""
    generated = {
        "product_id": subject.product_id,
        "category": subject.category,
        "segment_id": segment.pk if segment is not None else None,
        "body": output.body,
        "data": output.data,
        "template_name": output.template_name,
        "problem": output.problem,
    }
    status = ContentStatus.REFUSED if output.problem else ContentStatus.DRAFT
    if piece is None:
        ContentPiece.objects.create(
            channel=channel,
            subject_key=subject.key,
            locale=locale,
            scope_key=scope_key(segment),
            status=status,
            generated_at=now,
            **generated,
        )
        return Outcome.CREATED
    if all(getattr(piece, name) == value for name, value in generated.items()):
        return Outcome.UNCHANGED
    for name, value in generated.items():
        setattr(piece, name, value)
    piece.status, piece.generated_at, piece.reviewed_at = status, now, None
    piece.save()
    return Outcome.UPDATED


def scope_key(segment: Segment | None) -> str:
    """Return the audience part of a piece's key: "" for everyone, "segment:<id>" for a segment."""
    return f"segment:{segment.pk}" if segment is not None else ""


def generate_content(
    kind: str,
    locale: str = "",
    segment: Segment | None = None,
    channels: Iterable[str] | None = None,
    *,
    top: int = SEGMENT_TOP_SUBJECTS,
    now: datetime | None = None,
) -> GenerationReport:
    """Generate and store SEO metadata and social posts for every product or category, or a segment's top ones."""
    kind = Kind(kind)
    chosen = checked_channels(channels)
    now = now or timezone.now()
    # Listed once per run: choosing a locale's template is then a set lookup, not a disk read.
    available = frozenset(layout_names())
    subjects = product_subjects(segment, top) if kind == Kind.PRODUCTS else category_subjects(segment, top)
    report = GenerationReport()
    for subject in subjects:
        outputs = {channel: render_piece(channel, subject, locale, available) for channel in chosen}
        # One transaction per subject: its pieces stay locked from comparison to write, so two runs cannot
        # interleave an update; two runs creating the same new piece meet the unique constraint instead.
        with transaction.atomic():
            existing = {
                piece.channel: piece
                for piece in ContentPiece.objects.select_for_update().filter(
                    subject_key=subject.key, locale=locale, scope_key=scope_key(segment), channel__in=chosen
                )
            }
            for channel, output in outputs.items():
                outcome = store_piece(
                    existing.get(channel), channel, subject, output, locale=locale, segment=segment, now=now
                )
                report.record(subject.key, channel, outcome, output.problem)
    return report


def generate_all_content(
    locale: str = "",
    segment: Segment | None = None,
    channels: Iterable[str] | None = None,
    *,
    now: datetime | None = None,
) -> GenerationReport:
    """Generate content for every product and every category (or a segment's top ones), in one report."""
    report = GenerationReport()
    for kind in Kind:
        report.add(generate_content(kind, locale, segment, channels, now=now))
    return report
