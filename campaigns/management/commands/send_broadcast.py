"""Send a template to a segment (or to every mailable customer) and report what became of each message."""

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from campaigns.delivery import queue_broadcast, status_counts
from campaigns.models import Broadcast, EmailTemplate, Message
from campaigns.starters import install_starters
from marketing.models import Segment


class Command(BaseCommand):
    help = "Queue a broadcast of an e-mail template to a segment; with in-process tasks it is sent before this returns."

    def add_arguments(self, parser) -> None:
        parser.add_argument("name", help="The broadcast's name, shown in the admin and the e-mails' campaign field.")
        parser.add_argument("--template", required=True, help="The e-mail template's name.")
        parser.add_argument("--segment", help="The segment's name; without it, every mailable customer.")
        parser.add_argument(
            "--install-starters",
            action="store_true",
            dest="starters",
            help="First create the starter templates that are missing.",
        )
        parser.add_argument(
            "--best-time",
            action="store_true",
            help="Send each message at its customer's best time within the next 24 hours (train_send_times).",
        )

    def handle(self, *args, name: str, template: str, segment: str | None, starters: bool, best_time: bool, **options) -> None:
        if starters:
            for installed in install_starters():
                self.stdout.write(f"starter template installed: {installed.name}")
        chosen = EmailTemplate.objects.filter(name=template).first()
        if chosen is None:
            names = ", ".join(EmailTemplate.objects.values_list("name", flat=True)) or "none yet"
            raise CommandError(f"--template: no e-mail template named {template!r} (there are: {names})")
        audience = None
        if segment:
            audience = Segment.objects.filter(name=segment).first()
            if audience is None:
                raise CommandError(f"--segment: no segment named {segment!r}")
        with transaction.atomic():
            broadcast = Broadcast.objects.create(
                name=name, template=chosen, segment=audience, send_at_best_time=best_time
            )
            queued = queue_broadcast(broadcast.pk)
        self.stdout.write(
            f"broadcast {broadcast.pk} {name!r}: {queued:,} messages queued to {audience or 'every mailable customer'}"
        )
        counts = {
            status: count
            for status, count in status_counts(Message.objects.filter(broadcast=broadcast)).items()
            if count
        }
        self.stdout.write("messages: " + ", ".join(f"{count:,} {status}" for status, count in counts.items()))
        waiting = Message.objects.filter(broadcast=broadcast, status="queued", error__startswith="waits: quiet hours").count()
        if waiting:
            self.stdout.write(f"{waiting:,} wait for the end of quiet hours in their time zone; they leave then")
