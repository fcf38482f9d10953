from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from ml.forecast_exports import write_forecast_csv
from ml.forecast_registry import active_forecast


class Command(BaseCommand):
    help = (
        "Write category,week_start,units,revenue,units_low,units_high of the active sales forecast to a CSV file "
        "(category __all__ is the whole shop; week_start is a Monday in the shop's time zone)."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("path", type=Path, help="Where to write the CSV ('-' for standard output).")

    def handle(self, *args, path: Path, **options) -> None:
        version = active_forecast()
        if version is None:
            raise CommandError("no active sales forecast: train one with train_forecast --activate")
        if str(path) == "-":
            write_forecast_csv(self.stdout, version)
            return
        try:
            with open(path, "w", newline="", encoding="utf-8") as handle:
                written = write_forecast_csv(handle, version)
        except OSError as error:
            raise CommandError(f"cannot write {path}: {error.strerror}") from None
        self.stdout.write(f"Wrote {written:,} forecast weeks of {version} to {path}.")
