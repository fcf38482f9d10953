from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from ml.card import weighting
from ml.evaluation import metrics_table
from ml.management.commands._moments import as_of_moment
from ml.registry import ActivationRefused, TrainingOptions, activate_version, train_model
from ml.training import NotEnoughData


class Command(BaseCommand):
    help = (
        "Train a purchase-propensity model on data up to --as-of (default now), compare it with the recency, "
        "logistic-regression and BG/NBD baselines on the latest complete snapshot, refit it on every complete "
        "snapshot, and register it as a new version."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--horizon-days",
            type=int,
            default=settings.ML_HORIZON_DAYS,
            help=f"Predict an order within this many days (default {settings.ML_HORIZON_DAYS}).",
        )
        parser.add_argument("--as-of", metavar="DATE", help="Use only data before this date or moment (backtesting).")
        parser.add_argument("--activate", action="store_true", help="Activate the version if it beats every baseline.")
        parser.add_argument("--force", action="store_true", help="With --activate: activate even if it does not.")

    def handle(self, *args, horizon_days: int, as_of: str | None, activate: bool, force: bool, **options) -> None:
        if horizon_days < 1:
            raise CommandError(f"--horizon-days must be at least 1, not {horizon_days}")
        moment = as_of_moment(as_of) or timezone.now()
        try:
            version = train_model(TrainingOptions(horizon_days=horizon_days, as_of=moment))
        except NotEnoughData as refusal:
            raise CommandError("not enough data to train:\n- " + "\n- ".join(refusal.reasons)) from None
        metrics = version.metrics
        self.stdout.write(f"Trained {version} on data before {moment:%Y-%m-%d %H:%M} UTC, horizon {horizon_days} days.")
        for snapshot in metrics["snapshots"]:
            self.stdout.write(
                f"  {snapshot['role']:<10} snapshot {snapshot['cutoff'][:10]}: {snapshot['customers']:,} customers, "
                f"{snapshot['positives']:,} bought"
            )
        self.stdout.write(
            f"  refit on {len(metrics['refit'])} snapshots from {metrics['refit'][0]['cutoff'][:10]} to "
            f"{metrics['refit'][-1]['cutoff'][:10]} with {version.params['best_iteration']} trees chosen on validation; "
            f"{weighting(version.params.get('half_life_days'))}"
        )
        for line in metrics_table(metrics):
            self.stdout.write(f"  {line}")
        self.stdout.write(f"  {metrics['calibration_note']}")
        for warning in version.fairness.get("warnings", []):
            self.stdout.write(self.style.WARNING(f"  fairness: {warning}"))
        if activate:
            try:
                activate_version(version, force=force)
            except ActivationRefused as refusal:
                raise CommandError(f"{refusal}; it stays a candidate") from None
        verdict = "beats every baseline" if version.beats_baselines else "does NOT beat every baseline"
        self.stdout.write(f"{version} {verdict}; status {version.status}.")
