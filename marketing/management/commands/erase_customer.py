"""Erase one customer's personal data: `python manage.py erase_customer EXTERNAL_ID`."""

from django.core.management.base import BaseCommand, CommandError

from marketing.privacy import CustomerNotFound, erase_customer


class Command(BaseCommand):
    help = (
        "Remove one customer's personal data from every table (a privacy request), keeping aggregates on an "
        "anonymous row and a keyed hash of the address on the suppression list."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("external_id", help="The shop's id of the customer.")

    def handle(self, *args, external_id: str, **options) -> None:
        try:
            counts = erase_customer(external_id, requested_by="command erase_customer")
        except CustomerNotFound as error:
            raise CommandError(str(error)) from None
        summary = ", ".join(f"{name} {count}" for name, count in counts.items() if count)
        self.stdout.write(f"Erased customer {external_id}: {summary or 'no related rows'}.")
