"""Reading import files as a stream of records, whatever their dialect.

A source yields `(line, record)` pairs: the physical line where the record starts and a dict
from column name to cell. CSV dialects are sniffed from the first 64 KiB: the delimiter
(`,` `;` tab `|`, or runs of spaces in aligned exports), a UTF-8 byte-order mark, CRLF line
endings and quoted fields. JSON Lines files hold one object per line.
"""

import csv
import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

SAMPLE_BYTES = 64 * 1024
SNIFF_RECORDS = 50
CANDIDATE_DELIMITERS = (",", ";", "\t", "|")
DELIMITER_NAMES = {"auto": None, ",": ",", ";": ";", "tab": "\t", "\\t": "\t", "|": "|", "whitespace": " "}
WHITESPACE = " "
_ALIGNED_GAP = re.compile(r"\s{2,}|\t")

csv.field_size_limit(16 * 1024 * 1024)


class SourceError(Exception):
    """The file as a whole cannot be read; the message says why."""


@dataclass(frozen=True)
class Dialect:
    format: str  # "csv" or "jsonl"
    encoding: str
    delimiter: str | None = None
    aligned: bool = False  # whitespace exports whose cells contain single spaces

    def describe(self) -> str:
        if self.format == "jsonl":
            return "JSON Lines, UTF-8"
        names = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe", WHITESPACE: "whitespace"}
        return f"CSV, {names[self.delimiter]}-delimited, UTF-8"


def _decode_sample(raw: bytes, complete: bool) -> tuple[str, str]:
    """Return the sample's text and the encoding it was read with."""
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    # A sample cut from a longer file may end inside a multi-byte character; forgive up to three bytes.
    for cut in range(1 if complete else 4):
        try:
            return raw[: len(raw) - cut].decode("utf-8"), "utf-8-sig"
        except UnicodeDecodeError as error:
            if error.start < len(raw) - 4:
                break
    raise SourceError(
        "the file is not UTF-8 text; save it as UTF-8 (CSV UTF-8 in spreadsheet programs) and import again"
    )


def _split_aligned(line: str, aligned: bool) -> list[str]:
    stripped = line.strip()
    return _ALIGNED_GAP.split(stripped) if aligned else stripped.split()


def _sniff_delimiter(sample: str) -> tuple[str, bool]:
    """Pick the delimiter under which the sample's records agree on a column count above one."""
    lines = sample.splitlines()
    if len(sample) >= SAMPLE_BYTES and len(lines) > 1:
        lines = lines[:-1]  # the last line of a full sample may be cut short
    body = "\n".join(lines)
    best: tuple[float, int, str] | None = None
    for delimiter in CANDIDATE_DELIMITERS:
        counts = [len(record) for record in csv.reader(io.StringIO(body), delimiter=delimiter) if record]
        counts = counts[:SNIFF_RECORDS]
        if not counts or counts[0] < 2:
            continue
        agreement = sum(1 for count in counts if count == counts[0]) / len(counts)
        candidate = (agreement, counts[0], delimiter)
        if agreement >= 0.8 and (best is None or candidate[:2] > best[:2]):
            best = candidate
    if best is not None:
        return best[2], False
    header = next((line for line in lines if line.strip()), "")
    if len(header.split()) > 1:
        # Aligned exports pad columns with two or more spaces; then single spaces belong to cells.
        aligned = len(_ALIGNED_GAP.split(header.strip())) == len(header.split())
        return WHITESPACE, aligned
    return ",", False


def sniff(path: Path, delimiter: str = "auto") -> Dialect:
    """Work out the file's format, encoding and delimiter from its first bytes."""
    if delimiter not in DELIMITER_NAMES:
        raise SourceError(f"--delimiter {delimiter!r} is not one of auto, ',', ';', tab, '|', whitespace")
    try:
        with open(path, "rb") as handle:
            raw = handle.read(SAMPLE_BYTES)
    except OSError as error:
        raise SourceError(f"cannot read {path}: {error.strerror}") from None
    sample, encoding = _decode_sample(raw, complete=len(raw) < SAMPLE_BYTES)
    if not sample.strip():
        raise SourceError("the file is empty")
    if path.suffix.lower() in {".jsonl", ".ndjson"} or sample.lstrip().startswith("{"):
        return Dialect("jsonl", encoding)
    chosen = DELIMITER_NAMES[delimiter]
    if chosen is None:
        chosen, aligned = _sniff_delimiter(sample)
    else:
        header = next((line for line in sample.splitlines() if line.strip()), "")
        aligned = chosen == WHITESPACE and len(_ALIGNED_GAP.split(header.strip())) == len(header.split())
    return Dialect("csv", encoding, chosen, aligned)


def _csv_records(stream: IO[str], dialect: Dialect) -> tuple[list[str], Iterator[tuple[int, dict[str, str]]]]:
    reader = csv.reader(stream, delimiter=dialect.delimiter, skipinitialspace=dialect.delimiter != "\t")
    header: list[str] = []
    for row in reader:
        if any(cell.strip() for cell in row):
            header = [cell.strip() for cell in row]
            break
    if not header:
        raise SourceError("the file has no header line")
    _check_header(header)

    def records() -> Iterator[tuple[int, dict[str, str]]]:
        start = reader.line_num + 1
        width = len(header)
        for row in reader:
            line, start = start, reader.line_num + 1
            if not row or not any(cell.strip() for cell in row):
                continue
            if len(row) != width:
                yield line, {"": f"has {len(row)} cells where the header has {width}"}
                continue
            yield line, dict(zip(header, row, strict=True))

    return header, records()


def _aligned_records(stream: IO[str], dialect: Dialect) -> tuple[list[str], Iterator[tuple[int, dict[str, str]]]]:
    numbered = enumerate(stream, start=1)
    text = next((text for _, text in numbered if text.strip()), "")
    header = _split_aligned(text, dialect.aligned) if text else []
    if not header:
        raise SourceError("the file has no header line")
    _check_header(header)

    def records() -> Iterator[tuple[int, dict[str, str]]]:
        width = len(header)
        for number, text in numbered:
            if not text.strip():
                continue
            cells = _split_aligned(text, dialect.aligned)
            if len(cells) != width:
                yield number, {"": f"has {len(cells)} cells where the header has {width}"}
                continue
            yield number, dict(zip(header, cells, strict=True))

    return header, records()


def _jsonl_records(stream: IO[str]) -> Iterator[tuple[int, dict[str, Any]]]:
    for number, text in enumerate(stream, start=1):
        if not text.strip():
            continue
        try:
            record = json.loads(text)
        except json.JSONDecodeError as error:
            yield number, {"": f"is not valid JSON ({error.msg} at character {error.pos})"}
            continue
        if not isinstance(record, dict):
            yield number, {"": "is not a JSON object"}
            continue
        yield number, record


def _check_header(header: list[str]) -> None:
    seen: set[str] = set()
    for name in header:
        if not name:
            raise SourceError("the header has an empty column name")
        if name in seen:
            raise SourceError(f"the header names column {name!r} twice")
        seen.add(name)


def open_records(
    stream: IO[str], dialect: Dialect
) -> tuple[list[str] | None, Iterator[tuple[int, dict[str, Any]]]]:
    """Return the header (None for JSON Lines) and an iterator of `(line, record)`.

    A record whose shape is wrong (bad JSON, too few cells) comes back as `{"": reason}`, so the
    caller rejects that line and goes on.
    """
    if dialect.format == "jsonl":
        return None, _jsonl_records(stream)
    if dialect.delimiter == WHITESPACE:
        return _aligned_records(stream, dialect)
    return _csv_records(stream, dialect)
