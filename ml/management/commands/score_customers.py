import time

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from ml.features import FeatureMismatch
from ml.management.commands._moments import as_of_moment
from ml.models import RunStatus, ScoringRun
from ml.runs import NoActiveModel, start_scoring_run

POLL_S = 0.5


class Command(BaseCommand):
    help = (
        "Score every customer with the active purchase-propensity model as of --as-of (default now): "
        "one Celery task per chunk of customers, with progress shown until the run finishes."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--as-of", metavar="DATE", help="Read features as of this date or moment (backtesting).")
        parser.add_argument("--no-wait", action="store_true", help="Start the run and return without waiting.")

    def handle(self, *args, as_of: str | None, no_wait: bool, **options) -> None:
        try:
            run = start_scoring_run(as_of_moment(as_of))
        except (NoActiveModel, FeatureMismatch) as refusal:
            raise CommandError(str(refusal)) from None
        self.stdout.write(
            f"Scoring run {run.pk}: {run.model_version}, {run.chunks_total} chunks, as of {run.as_of:%Y-%m-%d %H:%M}."
        )
        if no_wait:
            return
        with tqdm(total=run.chunks_total, unit="chunk", disable=None, file=self.stderr) as bar:
            while True:
                run = ScoringRun.objects.get(pk=run.pk)
                bar.update(run.chunks_done - bar.n)
                if run.status != RunStatus.RUNNING:
                    break
                time.sleep(POLL_S)
        if run.status == RunStatus.FAILED:
            raise CommandError(f"scoring run {run.pk} failed: {run.error}")
        deciles = run.decile_cut_points
        self.stdout.write(
            f"Scored {run.customers_scored:,} customers in {(run.finished_at - run.created_at).total_seconds():.1f} s; "
            f"top-decile cut point {deciles[-1] if deciles else 0:.3f}."
        )
