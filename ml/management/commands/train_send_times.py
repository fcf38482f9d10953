from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from ml.management.commands._moments import as_of_moment
from ml.registry import ActivationRefused
from ml.send_time_registry import SendTimeOptions, activate_send_times, send_time_table, train_send_times
from ml.send_times import hour_label
from ml.training import NotEnoughData


class Command(BaseCommand):
    help = (
        "Learn each customer's best local hour to receive e-mail from their opens and clicks (machine opens "
        "excluded), judge it on each customer's next engagement in the 30 days after a split against the "
        "shop-wide best hour, print the table, and store it as a new version."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--as-of", metavar="DATE", help="Use only data before this date or moment (backtesting).")
        parser.add_argument("--activate", action="store_true", help="Activate the version if it beats the shop-wide hour.")
        parser.add_argument("--force", action="store_true", help="With --activate: activate even if it does not.")

    def handle(self, *args, as_of: str | None, activate: bool, force: bool, **options) -> None:
        moment = as_of_moment(as_of) or timezone.now()
        try:
            version = train_send_times(SendTimeOptions(as_of=moment))
        except NotEnoughData as refusal:
            raise CommandError("not enough data to learn send times:\n- " + "\n- ".join(refusal.reasons)) from None
        metrics = version.metrics
        self.stdout.write(
            f"Learned send times v{version.version} from opens and clicks before {moment:%Y-%m-%d %H:%M} UTC: "
            f"{metrics['weekly_customers']:,} customers by hour of the week, {metrics['daily_customers']:,} by hour "
            f"of the day (thin history); shop-wide best hours {', '.join(hour_label(h) for h in metrics['shop_best_hours'])}."
        )
        self.stdout.write(
            f"  judged on the next engagement of {metrics['customers']:,} customers in the {metrics['window_days']} "
            f"days after {metrics['split'][:10]}:"
        )
        for line in send_time_table(metrics):
            self.stdout.write(f"  {line}")
        self.stdout.write(
            f"  chosen on the 30 days before the split: shrinkage {version.params['prior_strength']:g} engagements, "
            f"hour of the week from {version.params['weekly_minimum']} engagements"
        )
        if activate:
            try:
                activate_send_times(version, force=force)
            except ActivationRefused as refusal:
                raise CommandError(f"{refusal}; it stays a candidate") from None
        verdict = "beats" if version.beats_baselines else "does NOT beat"
        self.stdout.write(f"{version} {verdict} the shop-wide best hour; status {version.status}.")
