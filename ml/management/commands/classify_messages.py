"""python manage.py classify_messages PATH [--output OUT]"""

import csv
import io
import logging
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from marketing.spreadsheets import csv_writer, neutralise_formula
from ml.intent_registry import classify_texts

logger = logging.getLogger("kairos")

OUTPUT_COLUMNS = ["text", "language", "intent", "sentiment", "confidence"]
# Messages classified at once: one sparse matrix of about this many rows, a few megabytes.
CLASSIFY_CHUNK = 5_000


class Command(BaseCommand):
    help = (
        "Classify messages with the active intent model: a .csv file by its text column, any other file one message "
        "per line. Writes text,language,intent,sentiment,confidence in input order to OUT or standard output."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("path", type=Path)
        parser.add_argument("--output", type=Path, default=None, help="Write the CSV here instead of standard output.")

    def handle(self, *args, path: Path, output: Path | None, **options) -> None:
        texts = read_messages(path)
        result = classify_texts(texts[:1]) if texts else None
        if result is None and texts:
            raise CommandError("no message_intents model is active; run `python manage.py train_intents --activate`")
        version = result[1] if result else None
        target = output.open("w", encoding="utf-8", newline="") if output else None
        writer = csv_writer(target if target is not None else _Lines(self.stdout))
        writer.writerow(OUTPUT_COLUMNS)
        try:
            for start in range(0, len(texts), CLASSIFY_CHUNK):
                chunk = texts[start : start + CLASSIFY_CHUNK]
                predictions, _ = classify_texts(chunk)
                writer.writerows(
                    [neutralise_formula(text), p.language, p.intent, p.sentiment, f"{p.confidence:.3f}"]
                    for text, p in zip(chunk, predictions, strict=True)
                )
        finally:
            if target is not None:
                target.close()
        logger.info("classified %d messages from %s with %s", len(texts), path, version or "no model")


class _Lines:
    """Hand csv.writer's rows to the command's stdout without an extra line ending."""

    def __init__(self, stdout) -> None:
        self.stdout = stdout

    def write(self, text: str) -> None:
        self.stdout.write(text, ending="")


def read_messages(path: Path) -> list[str]:
    """Read the messages of a file: a .csv file's text column, any other file's lines; refuse what cannot be read."""
    if not path.is_file():
        raise CommandError(f"{path}: no such file")
    raw = path.read_bytes()
    try:
        content = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        raise CommandError(
            f"{path}, line {line}: not UTF-8 text (byte {error.start}); save the file as UTF-8"
        ) from None
    if "\x00" in content:
        line = content[: content.index("\x00")].count("\n") + 1
        raise CommandError(f"{path}, line {line}: contains a NUL byte; this is not a text file")
    if path.suffix.lower() == ".csv":
        reader = csv.DictReader(io.StringIO(content, newline=""))
        if reader.fieldnames is None or "text" not in reader.fieldnames:
            found = ", ".join(reader.fieldnames or []) or "none"
            raise CommandError(f"{path}: a .csv file needs a text column; its columns are {found}")
        try:
            texts = [(row.get("text") or "") for row in reader]
        except csv.Error as error:
            raise CommandError(f"{path}, line {reader.line_num}: {error}") from None
    else:
        texts = content.splitlines()
    blank = sum(not text.strip() for text in texts)
    if blank:
        logger.warning("%s: %d empty messages are classified as other, with no confidence to act on", path, blank)
    return texts
