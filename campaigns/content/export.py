"""Reviewed content leaving Kairos: CSV for spreadsheets, JSON for the shop's build or a scheduler."""

import io
import json
from collections.abc import Iterable

from campaigns.models import ContentPiece
from marketing.spreadsheets import csv_writer, neutralise_formula

EXPORT_COLUMNS = ["channel", "subject", "locale", "segment", "status", "body", "title", "description", "json_ld"]


def export_row(piece: ContentPiece) -> dict:
    """Return a piece as the fields every export carries; JSON-LD stays a dict (the CSV serialises it)."""
    return {
        "channel": piece.channel,
        "subject": piece.subject_key,
        "locale": piece.locale,
        "segment": piece.segment.name if piece.segment is not None else "",
        "status": piece.status,
        "body": piece.body,
        "title": piece.data.get("title", ""),
        "description": piece.data.get("description", ""),
        "json_ld": piece.data.get("json_ld"),
    }


def _cell(value) -> str:
    if value is None:
        return ""
    # Keys sorted: PostgreSQL's jsonb does not keep the order they were written in; sorted, exports compare.
    text = json.dumps(value, ensure_ascii=False, sort_keys=True) if isinstance(value, dict) else str(value)
    return neutralise_formula(text)


def pieces_csv(pieces: Iterable[ContentPiece]) -> str:
    """Return the pieces as CSV with a header row; cells that a spreadsheet would run as formulas start with a quote."""
    out = io.StringIO()
    writer = csv_writer(out)
    writer.writerow(EXPORT_COLUMNS)
    for piece in pieces:
        row = export_row(piece)
        writer.writerow([_cell(row[column]) for column in EXPORT_COLUMNS])
    return out.getvalue()


def pieces_json(pieces: Iterable[ContentPiece]) -> str:
    """Return the pieces as a JSON array of objects with the export fields."""
    return json.dumps([export_row(piece) for piece in pieces], ensure_ascii=False, indent=2)
