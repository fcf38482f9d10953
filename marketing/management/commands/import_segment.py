from django.core.management.base import BaseCommand, CommandError

from marketing.imports import ImportFailed
from marketing.segments.lists import import_list


class Command(BaseCommand):
    help = (
        "Add the customers a CSV or JSON Lines file names (an external_id or email column) to a static "
        "segment, creating it if needed."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("name", help="The static segment's name.")
        parser.add_argument("path")
        parser.add_argument("--replace", action="store_true", help="Remove members the file does not name.")

    def handle(self, *args, name: str, path: str, replace: bool, **options) -> None:
        try:
            report = import_list(name, path, replace=replace)
        except ImportFailed as error:
            raise CommandError(str(error)) from None
        self.stdout.write(report.summary())
        for rejection in report.errors[:10]:
            self.stderr.write(f"  line {rejection.line}, column {rejection.column}: {rejection.reason}")
