"""Sniffing dialects and streaming records with the line each one starts on."""

import io

import pytest

from marketing.imports import sources


def sniffed(tmp_path, content: bytes, name: str = "f.csv") -> sources.Dialect:
    path = tmp_path / name
    path.write_bytes(content)
    return sources.sniff(path)


@pytest.mark.parametrize(
    ("content", "delimiter", "aligned"),
    [
        (b"a,b,c\n1,2,3\n", ",", False),
        (b"a;b;c\r\n1;2,5;3\r\n", ";", False),
        (b"a\tb\n1\t2\n", "\t", False),
        (b"a|b\n1|2\n", "|", False),
        (b"name       city\nAnn Lee    New York\n", " ", True),
        (b"a b c\n1 2 3\n", " ", False),
        (b'a,b\n"x;y;z",2\n', ",", False),
    ],
)
def test_the_delimiter_is_sniffed_from_the_records(tmp_path, content, delimiter, aligned):
    dialect = sniffed(tmp_path, content)

    assert (dialect.format, dialect.delimiter, dialect.aligned) == ("csv", delimiter, aligned)


def test_json_lines_are_recognised_by_extension_or_first_character(tmp_path):
    assert sniffed(tmp_path, b'{"a": 1}\n', "events.txt").format == "jsonl"
    assert sniffed(tmp_path, b"a\n", "events.ndjson").format == "jsonl"


def test_an_empty_file_is_refused(tmp_path):
    with pytest.raises(sources.SourceError, match="the file is empty"):
        sniffed(tmp_path, b"\xef\xbb\xbf \r\n")


def test_an_explicit_delimiter_must_be_known(tmp_path):
    path = tmp_path / "f.csv"
    path.write_bytes(b"a,b\n")

    with pytest.raises(sources.SourceError, match="--delimiter '#' is not one of"):
        sources.sniff(path, "#")


def test_records_carry_the_physical_line_they_start_on():
    text = 'id,note\n1,"two\nlines"\n\n2,plain\n'
    dialect = sources.Dialect("csv", "utf-8-sig", ",")

    header, records = sources.open_records(io.StringIO(text, newline=""), dialect)

    assert header == ["id", "note"]
    assert list(records) == [(2, {"id": "1", "note": "two\nlines"}), (5, {"id": "2", "note": "plain"})]


def test_aligned_records_keep_single_spaces_inside_cells():
    text = "name       city\nAnn Lee    New York\n"
    dialect = sources.Dialect("csv", "utf-8-sig", " ", aligned=True)

    header, records = sources.open_records(io.StringIO(text), dialect)

    assert header == ["name", "city"]
    assert list(records) == [(2, {"name": "Ann Lee", "city": "New York"})]


def test_a_header_naming_a_column_twice_is_refused():
    dialect = sources.Dialect("csv", "utf-8-sig", ",")

    with pytest.raises(sources.SourceError, match="the header names column 'email' twice"):
        sources.open_records(io.StringIO("email,email\n"), dialect)
