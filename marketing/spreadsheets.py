"""Text cells that a spreadsheet would run: every CSV Kairos writes for people goes through `csv_writer`.

A cell starting with "=", "+", "-" or "@" (or a tab or carriage return, which some programs skip
before looking, or the full-width forms some spreadsheets also accept) is read as a formula by
Excel, LibreOffice and Google Sheets, so a product name or a customer id from a shop could run one
on the marketer's machine. A leading apostrophe makes it text. A plain number ("-3.5") is left as
it is: a spreadsheet reads it as that number and runs nothing.
"""

import csv
import re
from collections.abc import Iterable
from typing import Any

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\n", "\uff1d", "\uff0b", "\uff0d", "\uff20")
_PLAIN_NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?\Z")


def neutralise_formula(text: str) -> str:
    """Return the text as a spreadsheet shows it literally."""
    if text.startswith(FORMULA_STARTS) and not _PLAIN_NUMBER.match(text):
        return "'" + text
    return text


class FormulaSafeWriter:
    """csv.writer whose every text cell is neutralised: no caller can forget a column."""

    def __init__(self, handle, **options) -> None:
        self._writer = csv.writer(handle, **options)

    def writerow(self, row: Iterable[Any]) -> Any:
        return self._writer.writerow([neutralise_formula(cell) if isinstance(cell, str) else cell for cell in row])

    def writerows(self, rows: Iterable[Iterable[Any]]) -> None:
        for row in rows:
            self.writerow(row)


def csv_writer(handle, **options) -> FormulaSafeWriter:
    """Return a CSV writer for files people open in a spreadsheet."""
    return FormulaSafeWriter(handle, **options)
