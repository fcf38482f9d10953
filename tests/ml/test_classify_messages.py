"""classify_messages: CSV and line files, exact output, input order, neutralised formulas, stderr logging, bad files."""

import csv
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

pytestmark = pytest.mark.django_db

HEADER = ["text", "language", "intent", "sentiment", "confidence"]


def rows(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


def test_a_csv_file_is_read_by_its_text_column_and_written_in_order(intent_model, tmp_path: Path):
    source = tmp_path / "mail.csv"
    source.write_text(
        'id,text\n1,"Where is my order 10234? It hasn\'t arrived."\n2,我的订单什么时候发货？\n3,"Please unsubscribe me,\nthanks"\n',
        encoding="utf-8",
    )
    out = tmp_path / "out.csv"

    call_command("classify_messages", str(source), "--output", str(out))

    written = rows(out.read_text(encoding="utf-8"))
    assert written[0] == HEADER
    assert [row[:3] for row in written[1:]] == [
        ["Where is my order 10234? It hasn't arrived.", "en", "order_status"],
        ["我的订单什么时候发货？", "zh", "order_status"],
        ["Please unsubscribe me,\nthanks", "en", "unsubscribe_request"],
    ]
    assert all(0 < float(row[4]) <= 1 for row in written[1:])


def test_any_other_file_is_one_message_per_line_and_goes_to_standard_output(intent_model, tmp_path: Path):
    source = tmp_path / "mail.txt"
    source.write_text("I love my new jacket, thank you!\n\nWo ist mein Paket?\n", encoding="utf-8")
    stdout = io.StringIO()

    call_command("classify_messages", str(source), stdout=stdout)

    written = rows(stdout.getvalue())
    assert written[0] == HEADER
    assert [row[:4] for row in written[1:]] == [
        ["I love my new jacket, thank you!", "en", "praise", "positive"],
        ["", "other", "other", "neutral"],
        ["Wo ist mein Paket?", "other", "other", "neutral"],
    ]
    assert [row[4] for row in written[2:]] == ["0.125", "0.125"]


@pytest.mark.parametrize("start", ["=", "+", "-", "@"])
def test_a_text_that_a_spreadsheet_would_run_is_neutralised(intent_model, tmp_path: Path, start):
    source = tmp_path / "mail.txt"
    source.write_text(f'{start}HYPERLINK("http://evil.example") where is my order\n', encoding="utf-8")
    stdout = io.StringIO()

    call_command("classify_messages", str(source), stdout=stdout)

    assert rows(stdout.getvalue())[1][0] == f'\'{start}HYPERLINK("http://evil.example") where is my order'


def test_a_csv_file_without_a_text_column_is_refused_naming_its_columns(intent_model, tmp_path: Path):
    source = tmp_path / "mail.csv"
    source.write_text("message,id\nhello,1\n", encoding="utf-8")

    with pytest.raises(CommandError, match="needs a text column; its columns are message, id"):
        call_command("classify_messages", str(source))


def test_a_file_that_is_not_utf8_is_refused_with_its_line(intent_model, tmp_path: Path):
    source = tmp_path / "mail.txt"
    source.write_bytes(b"fine\nalso fine\n" + b"caf\xe9 latte\n")

    with pytest.raises(CommandError, match=r"mail.txt, line 3: not UTF-8 text \(byte 18\)"):
        call_command("classify_messages", str(source))


def test_a_binary_file_is_refused(intent_model, tmp_path: Path):
    source = tmp_path / "mail.bin"
    source.write_bytes(b"hello\n\x00\x01\x02")

    with pytest.raises(CommandError, match="line 2: contains a NUL byte; this is not a text file"):
        call_command("classify_messages", str(source))


def test_without_an_active_model_the_command_says_how_to_get_one(tmp_path: Path):
    source = tmp_path / "mail.txt"
    source.write_text("where is my order\n", encoding="utf-8")

    with pytest.raises(
        CommandError, match="no message_intents model is active; run `python manage.py train_intents --activate`"
    ):
        call_command("classify_messages", str(source))


@pytest.mark.postgres_only
def test_the_command_writes_only_csv_to_stdout_and_logs_to_stderr(transactional_db, intent_artifact, tmp_path: Path):
    from django.db import connection

    from ml.models import ModelStatus, ModelVersion
    from tests.fixtures.services import worker_database_url

    ModelVersion.objects.create(
        task="message_intents",
        version=1,
        status=ModelStatus.ACTIVE,
        horizon_days=0,
        beats_baselines=True,
        artifact=intent_artifact,
    )
    source = tmp_path / "mail.txt"
    source.write_text("where is my order\nthank you so much!\n", encoding="utf-8")
    env = {
        **os.environ,
        "DATABASE_URL": worker_database_url(connection.settings_dict),
        "DJANGO_SETTINGS_MODULE": "tests.settings",
    }

    done = subprocess.run(
        [sys.executable, "manage.py", "classify_messages", str(source)],
        cwd=Path(__file__).resolve().parents[2],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )

    assert [row[:3] for row in rows(done.stdout)] == [
        HEADER[:3],
        ["where is my order", "en", "order_status"],
        ["thank you so much!", "en", "praise"],
    ]
    assert "classified 2 messages" in done.stderr
