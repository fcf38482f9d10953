import sys
from contextlib import ExitStack

from django.core.management.base import BaseCommand, CommandError

from marketing.enqueue import enqueue_on_commit
from marketing.imports import KINDS, ImportFailed, import_file, parse_map_options

SHOWN_ERRORS = 10


class Command(BaseCommand):
    help = (
        "Import customers, products, orders, order lines or events from a CSV or JSON Lines file. "
        "Rows are upserted on their external id, so importing a file twice adds nothing."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("kind", choices=KINDS)
        parser.add_argument("path")
        parser.add_argument(
            "--map", action="append", default=[], metavar="FIELD=COLUMN",
            help="Read FIELD from COLUMN (repeatable). JSON fields take a key: --map attributes.tier=Tier.",
        )
        parser.add_argument("--delimiter", default="auto", help="auto (default), ',', ';', tab, '|' or whitespace.")
        parser.add_argument(
            "--date-format", default="auto",
            help="auto (ISO 8601 and YYYYMMDD) or a strptime format such as %%d/%%m/%%Y.",
        )
        parser.add_argument("--dry-run", action="store_true", help="Validate and count; write nothing.")
        parser.add_argument("--errors", metavar="PATH", help="Write every rejected row here as CSV: line, column, value, reason.")

    def handle(self, *args, **options) -> None:
        with ExitStack() as stack:
            try:
                mapping = parse_map_options(options["map"])
                errors_to = (
                    stack.enter_context(open(options["errors"], "w", newline="", encoding="utf-8"))  # noqa: SIM115
                    if options["errors"]
                    else None
                )
            except (ImportFailed, OSError) as error:
                raise CommandError(str(error)) from None
            try:
                report = import_file(
                    options["kind"],
                    options["path"],
                    mapping=mapping,
                    delimiter=options["delimiter"],
                    date_format=options["date_format"],
                    dry_run=options["dry_run"],
                    errors_to=errors_to,
                    progress=sys.stderr.isatty(),
                )
            except ImportFailed as error:
                raise CommandError(str(error)) from None
        if not report.dry_run and (report.inserted or report.updated):
            # Dynamic segments follow the audience: refresh them once this import is committed.
            enqueue_on_commit("marketing.refresh_all_segments")
        self.stdout.write(f"{report.source} ({report.dialect})")
        self.stdout.write(report.summary() + (" (dry run: nothing written)" if report.dry_run else ""))
        if report.rejected:
            for rejection in report.errors[:SHOWN_ERRORS]:
                column = f", column {rejection.column}" if rejection.column else ""
                self.stderr.write(f"  line {rejection.line}{column}: {rejection.reason}")
            if options["errors"]:
                self.stderr.write(f"Every rejected row is in {options['errors']}.")
            elif report.rejected > SHOWN_ERRORS:
                self.stderr.write("  … and more; pass --errors PATH to get every rejected row.")
