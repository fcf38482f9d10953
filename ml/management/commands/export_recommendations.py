from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from marketing.spreadsheets import csv_writer
from ml.recommendations import EXPORTED_PER_CUSTOMER, export_rows


class Command(BaseCommand):
    help = (
        "Write external_id,rank,sku,score for every customer from the active recommender: rank 1 first, "
        f"{EXPORTED_PER_CUSTOMER} per customer; customers without stored picks get the popular ones."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("path", type=Path, help="Where to write the CSV ('-' for standard output).")

    def handle(self, *args, path: Path, **options) -> None:
        try:
            rows = export_rows()
            if str(path) == "-":
                written = write_csv(self.stdout, rows)
                return
            with open(path, "w", newline="", encoding="utf-8") as handle:
                written = write_csv(handle, rows)
        except LookupError as error:
            raise CommandError(str(error)) from None
        except OSError as error:
            raise CommandError(f"cannot write {path}: {error.strerror}") from None
        self.stdout.write(f"Wrote {written:,} recommendations to {path}.")


def write_csv(handle, rows) -> int:
    writer = csv_writer(handle, lineterminator="\n")  # ids and SKUs come from the shop: no formula survives
    writer.writerow(["external_id", "rank", "sku", "score"])
    written = 0
    for external_id, rank, sku, score in rows:
        writer.writerow([external_id, rank, sku, f"{score:.4f}"])
        written += 1
    return written
