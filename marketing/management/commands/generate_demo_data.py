from datetime import date
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from marketing.demo.store import StoreNotEmpty, build_demo_shop, generate_store


def positive_int(text: str) -> int:
    """Parse a whole number of at least 1."""
    value = int(text)
    if value < 1:
        raise ValueError(text)
    return value


class Command(BaseCommand):
    help = (
        "Fill an empty database with a believable demo shop: a catalogue, customers, orders and behavioural "
        "events. The same seed, arguments and end date always produce the same data."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--customers", type=positive_int, default=5000, help="How many customers (default 5000).")
        parser.add_argument("--days", type=positive_int, default=365, help="Days of history (default 365).")
        parser.add_argument("--seed", type=int, default=7, help="Random seed (default 7).")
        parser.add_argument(
            "--end-date", type=date.fromisoformat, default=None, metavar="YYYY-MM-DD",
            help="The history covers the days before this date (default: today, UTC). Give it for repeatable data.",
        )
        parser.add_argument(
            "--replace", action="store_true",
            help="Delete existing customers, products, orders and events first (suppressions are kept).",
        )
        parser.add_argument(
            "--marketplace", action="store_true",
            help="Also import a marketplace's sales log (var/demo/marketplace-buyers.txt): a quarter more buyers, "
            "known only by their orders, as `make demo` does.",
        )

    def handle(self, *args, **options) -> None:
        end_date = options["end_date"] or timezone.now().date()
        arguments = {
            "customers": options["customers"], "days": options["days"], "seed": options["seed"],
            "end_date": end_date, "replace": options["replace"],
        }  # fmt: skip
        try:
            if options["marketplace"]:
                shop = build_demo_shop(**arguments, folder=Path(settings.BASE_DIR) / "var" / "demo")
                summary = shop.summary
            else:
                summary = generate_store(**arguments)
        except StoreNotEmpty as error:
            raise CommandError(str(error)) from None
        self.stdout.write(summary.describe())
        if options["marketplace"]:
            self.stdout.write(f"{shop.marketplace_log}: {shop.marketplace.summary()}")
