from django.core.management.base import BaseCommand, CommandError

from marketing.models import Segment, SegmentKind
from marketing.segments.refresh import refresh_all_segments, refresh_segment


class Command(BaseCommand):
    help = "Refresh the stored membership of dynamic segments and record who entered and left."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--segment", metavar="NAME", help="Refresh only this segment (by name).")

    def handle(self, *args, segment: str | None, **options) -> None:
        if segment is not None:
            found = Segment.objects.filter(name=segment).first()
            if found is None:
                names = ", ".join(Segment.objects.values_list("name", flat=True)) or "none yet"
                raise CommandError(f"no segment named {segment!r}; segments: {names}")
            if found.kind != SegmentKind.DYNAMIC:
                raise CommandError(f"{segment!r} is a static list; only dynamic segments refresh")
            results = [refresh_segment(found.pk)]
        else:
            results = refresh_all_segments()
        names = dict(Segment.objects.values_list("id", "name"))
        for result in results:
            state = "refreshed" if result.refreshed else "skipped (another refresh holds it)"
            self.stdout.write(
                f"{names[result.segment_id]}: {state}; {result.size:,} members, "
                f"{result.entered:,} entered, {result.exited:,} left"
            )
