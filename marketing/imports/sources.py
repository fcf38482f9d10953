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

# No cell Kairos stores comes near this; a longer one is a broken file, refused on its line.
MAX_CELL_CHARS = 1024 * 1024
# JSON values nested deeper than this are refused (Kairos stores flat objects of attributes).
MAX_JSON_DEPTH = 16
# The csv module refuses fields past its limit; a little above ours, so ours names the problem.
csv.field_size_limit(MAX_CELL_CHARS + 1)


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


def cell_problem(value: str) -> str | None:
    """Return why a text cell cannot be stored the same way on every database, or None.

    PostgreSQL refuses NUL characters and lone surrogates where SQLite would keep them; both are
    refused here, on their line, so the two databases store the same thing.
    """
    if len(value) > MAX_CELL_CHARS:
        return f"is longer than {MAX_CELL_CHARS:,} characters"
    if "\x00" in value:
        return "contains a NUL character"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "contains a lone surrogate, which is not a character"
    return None


def _checked(line: int, record: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """Return the record, or the problem of its first bad cell as a whole-record refusal naming the column."""
    for column, value in record.items():
        problem = _value_problem(value, 0)
        if problem:
            return line, {"": f"column {column!r} {problem}"}
    return line, record


def _value_problem(value: Any, depth: int) -> str | None:
    if isinstance(value, str):
        return cell_problem(value)
    if depth > MAX_JSON_DEPTH:
        return f"nests JSON deeper than {MAX_JSON_DEPTH} levels"
    if isinstance(value, dict):
        items = [*value.keys(), *value.values()]
    elif isinstance(value, list):
        items = value
    else:
        return None
    return next((problem for item in items if (problem := _value_problem(item, depth + 1))), None)


def _swallowed_lines(cell: str, delimiter: str, width: int) -> bool:
    """Tell whether a cell spanning lines holds what look like whole records: an unbalanced quote."""
    lines = cell.split("\n")[1:]
    return width > 1 and sum(1 for text in lines if text.count(delimiter) >= width - 1) >= 1


def _csv_records(stream: IO[str], dialect: Dialect) -> tuple[list[str], Iterator[tuple[int, dict[str, str]]]]:
    # strict: a quote left open at the end of the file is an error, never a silent end of the last record.
    reader = csv.reader(stream, delimiter=dialect.delimiter, skipinitialspace=dialect.delimiter != "\t", strict=True)
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
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as error:
                line, start = start, reader.line_num + 1
                if "unexpected end of data" in str(error) or "EOF" in str(error):
                    raise SourceError(
                        f"line {line}: a quote opened on this line is never closed, so it would swallow the rest "
                        "of the file; fix the quotes and import again"
                    ) from None
                if "field larger than field limit" in str(error):
                    yield line, {"": f"has a cell longer than {MAX_CELL_CHARS:,} characters"}
                else:
                    yield line, {"": f"cannot be read as CSV ({error})"}
                continue
            line, start = start, reader.line_num + 1
            if not row or not any(cell.strip() for cell in row):
                continue
            if reader.line_num - line > 0 and any(
                "\n" in cell and _swallowed_lines(cell, dialect.delimiter, width) for cell in row
            ):
                raise SourceError(
                    f"line {line}: a quoted cell runs over lines {line + 1}-{reader.line_num} that look like records; "
                    "a quote is probably unbalanced, so the file is refused rather than read wrong"
                )
            if len(row) != width:
                yield line, {"": f"has {len(row)} cells where the header has {width}"}
                continue
            yield _checked(line, dict(zip(header, row, strict=True)))

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
            yield _checked(number, dict(zip(header, cells, strict=True)))

    return header, records()


def _jsonl_records(stream: IO[str]) -> Iterator[tuple[int, dict[str, Any]]]:
    for number, text in enumerate(stream, start=1):
        if not text.strip():
            continue
        try:
            record = json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
        except json.JSONDecodeError as error:
            yield number, {"": f"is not valid JSON ({error.msg} at character {error.pos})"}
            continue
        except RecursionError:
            yield number, {"": f"nests JSON deeper than {MAX_JSON_DEPTH} levels"}
            continue
        except ValueError as error:  # NaN, Infinity, 1e999, or an integer of thousands of digits
            yield number, {"": f"is not valid JSON ({error})"}
            continue
        if not isinstance(record, dict):
            yield number, {"": "is not a JSON object"}
            continue
        yield _checked(number, record)


def _refuse_constant(name: str) -> float:
    raise ValueError(f"{name} is not a number JSON allows")


def _finite_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError(f"{text} is too large a number")
    return value


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
