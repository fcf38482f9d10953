from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from marketing.spreadsheets import csv_writer
from ml.models import ModelVersion, Score


class Command(BaseCommand):
    help = "Write external_id,probability,decile of every customer scored by the active model to a CSV file."

    def add_arguments(self, parser) -> None:
        parser.add_argument("path", type=Path, help="Where to write the CSV ('-' for standard output).")

    def handle(self, *args, path: Path, **options) -> None:
        version = ModelVersion.objects.active().first()
        if version is None:
            raise CommandError("no active model: train one with train_propensity --activate, then score_customers")
        rows = (
            Score.objects.filter(model_version=version)
            .order_by("customer__external_id")
            .values_list("customer__external_id", "probability", "decile")
        )
        if str(path) == "-":
            written = write_scores_csv(self.stdout, rows)
        else:
            try:
                with open(path, "w", newline="", encoding="utf-8") as handle:
                    written = write_scores_csv(handle, rows)
            except OSError as error:
                raise CommandError(f"cannot write {path}: {error.strerror}") from None
            self.stdout.write(f"Wrote {written:,} scores of {version} to {path}.")


def write_scores_csv(handle, rows) -> int:
    writer = csv_writer(handle, lineterminator="\n")
    writer.writerow(["external_id", "probability", "decile"])
    written = 0
    for external_id, probability, decile in rows.iterator(chunk_size=10_000):
        writer.writerow([external_id, f"{probability:.6f}", decile])
        written += 1
    return written
