"""Write all of one customer's data as JSON: `python manage.py export_customer EXTERNAL_ID [--output FILE]`."""

import json

from django.core.management.base import BaseCommand, CommandError

from marketing.privacy import CustomerNotFound, export_customer


class Command(BaseCommand):
    help = "Write everything Kairos holds about one customer (a privacy request) as JSON."

    def add_arguments(self, parser) -> None:
        parser.add_argument("external_id", help="The shop's id of the customer.")
        parser.add_argument("--output", default="-", help="File to write; - (the default) writes to standard output.")

    def handle(self, *args, external_id: str, output: str, **options) -> None:
        try:
            data = export_customer(external_id, requested_by="command export_customer")
        except CustomerNotFound as error:
            raise CommandError(str(error)) from None
        text = json.dumps(data, ensure_ascii=False, indent=2, sort_keys=True)
        if output == "-":
            self.stdout.write(text)
            return
        try:
            with open(output, "w", encoding="utf-8") as handle:
                handle.write(text + "\n")
        except OSError as error:
            raise CommandError(f"cannot write {output}: {error.strerror}") from None
        self.stdout.write(f"Wrote the data of customer {external_id} to {output}.")
