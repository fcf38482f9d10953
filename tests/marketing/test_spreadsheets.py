"""The spreadsheet formula guard every CSV Kairos writes passes its text cells through."""

import pytest

from marketing.spreadsheets import neutralise_formula


@pytest.mark.parametrize(
    ("text", "written"),
    [
        ("=HYPERLINK(\"http://x\")", "'=HYPERLINK(\"http://x\")"),
        ("+1", "'+1"),
        ("-sale", "'-sale"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tcmd", "'\tcmd"),
        ("\rcmd", "'\rcmd"),
        ("books", "books"),
        ("a=b", "a=b"),
        ("", ""),
    ],
)
def test_a_cell_a_spreadsheet_would_run_starts_with_an_apostrophe(text, written):
    assert neutralise_formula(text) == written


FORMULA_IDS = ['=HYPERLINK("http://evil.example","x")', "+cmd|' /C calc'!A0", "@SUM(1)", "-1+1", "\uff1dSUM(1)"]


@pytest.mark.parametrize("number", ["-3.5", "-12", "0.25", "-1e-05"])
def test_plain_numbers_are_left_as_numbers(number):
    assert neutralise_formula(number) == number


def test_the_importers_errors_file_neutralises_every_cell(tmp_path, db):
    from django.core.management import call_command

    path = tmp_path / "c.csv"
    path.write_text("external_id,email\n" + "".join(f"{value.replace(',', ';')},broken\n" for value in FORMULA_IDS))
    errors = tmp_path / "errors.csv"

    call_command("import_data", "customers", str(path), "--errors", str(errors))

    import csv

    rows = list(csv.reader(errors.open(newline="")))[1:]
    assert len(rows) == len(FORMULA_IDS)
    assert [cell for row in rows for cell in row if cell.startswith(FORMULA_STARTS_ANY)] == []


FORMULA_STARTS_ANY = ("=", "+", "-", "@", "\uff1d")


def test_export_scores_neutralises_formula_ids():
    import io

    from ml.management.commands.export_scores import write_scores_csv

    class Rows(list):
        def iterator(self, chunk_size):
            return iter(self)

    out = io.StringIO()
    write_scores_csv(out, Rows((external_id, 0.5, 3) for external_id in FORMULA_IDS))

    import csv

    ids = [row[0] for row in list(csv.reader(io.StringIO(out.getvalue())))[1:]]
    assert ids == ["'" + external_id for external_id in FORMULA_IDS]


def test_every_csv_written_for_people_goes_through_the_guard():
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    # Files Kairos writes only to read back itself (demo inputs, a training set) may hold raw text.
    allowed = {"marketing/spreadsheets.py", "marketing/demo/samples.py", "ml/data/compose.py"}
    offenders = [
        str(path.relative_to(root))
        for folder in ("marketing", "campaigns", "ml")
        for path in (root / folder).rglob("*.py")
        if ("csv.writer(" in path.read_text() or "csv.DictWriter(" in path.read_text())
        and str(path.relative_to(root)) not in allowed
    ]
    assert offenders == []
