from django.core.management.base import BaseCommand, CommandError

from campaigns.content import GenerationReport, Kind, generate_content
from campaigns.content.generation import ALL_CHANNELS
from marketing.models import Segment


class Command(BaseCommand):
    help = "Generate SEO metadata and social posts for products and categories, and print what was stored or refused."

    def add_arguments(self, parser) -> None:
        kinds = parser.add_mutually_exclusive_group()
        kinds.add_argument("--products", action="store_true", help="Only products.")
        kinds.add_argument("--categories", action="store_true", help="Only categories.")
        parser.add_argument(
            "--locale", default="", help="BCP 47 tag such as de or de-AT; picks x_product.de.txt first."
        )
        parser.add_argument(
            "--segment", metavar="NAME", help="Aim at a segment: its members' top products or categories."
        )
        parser.add_argument(
            "--channel", action="append", choices=ALL_CHANNELS, dest="channels", help="Only this channel (repeatable)."
        )

    def handle(
        self,
        *args,
        products: bool,
        categories: bool,
        locale: str,
        segment: str | None,
        channels: list[str] | None,
        **options,
    ) -> None:
        audience = None
        if segment is not None:
            audience = Segment.objects.filter(name=segment).first()
            if audience is None:
                names = ", ".join(Segment.objects.values_list("name", flat=True)) or "none yet"
                raise CommandError(f"no segment named {segment!r}; segments: {names}")
        kinds = [Kind.PRODUCTS] if products else [Kind.CATEGORIES] if categories else list(Kind)
        for kind in kinds:
            self.print_report(kind, generate_content(kind, locale=locale, segment=audience, channels=channels), audience)

    def print_report(self, kind: Kind, report: GenerationReport, audience: Segment | None) -> None:
        aimed = f" aimed at {audience.name!r}" if audience is not None else ""
        self.stdout.write(f"{kind}{aimed}: {report.summary()}")
        for refusal in report.refusals:
            self.stdout.write(f"  refused {refusal}")
