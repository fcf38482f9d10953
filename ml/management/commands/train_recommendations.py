from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from ml.management.commands._moments import as_of_moment
from ml.recommend import evaluation_table
from ml.recommend_registry import RecommenderOptions, activate_recommender, train_recommender
from ml.recommend_runs import start_recommendation_run
from ml.registry import ActivationRefused
from ml.training import NotEnoughData


class Command(BaseCommand):
    help = (
        "Train a product recommender on data up to --as-of (default now), judge it and the recent-popularity "
        "and item-kNN baselines on what customers bought in the 30 days after a split, print the table, and "
        "register it as a new version. With --activate (earned by beating both on recall@10, or --force), "
        "every customer's picks are then computed in chunks."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--as-of", metavar="DATE", help="Use only data before this date or moment (backtesting).")
        parser.add_argument("--activate", action="store_true", help="Activate the version if it beats both baselines.")
        parser.add_argument("--force", action="store_true", help="With --activate: activate even if it does not.")

    def handle(self, *args, as_of: str | None, activate: bool, force: bool, **options) -> None:
        moment = as_of_moment(as_of) or timezone.now()
        try:
            version = train_recommender(RecommenderOptions(as_of=moment))
        except NotEnoughData as refusal:
            raise CommandError("not enough data to train a recommender:\n- " + "\n- ".join(refusal.reasons)) from None
        metrics = version.metrics
        self.stdout.write(
            f"Trained recommender v{version.version} on data before {moment:%Y-%m-%d %H:%M} UTC; judged on purchases in the "
            f"{metrics['window_days']} days after {metrics['split'][:10]} by "
            f"{metrics['model']['customers']:,} customers, {metrics['products']:,} products."
        )
        for line in evaluation_table(metrics):
            self.stdout.write(f"  {line}")
        params = version.params
        self.stdout.write(
            f"  chosen on the 30 days before the split: half-life {params['half_life_days']:g} days, views "
            f"{params['view_weight']:g}, popularity weight {params['popularity_weight']:g}"
        )
        if activate:
            try:
                activate_recommender(version, force=force)
            except ActivationRefused as refusal:
                raise CommandError(f"{refusal}; it stays a candidate") from None
        verdict = "beats both baselines" if version.beats_baselines else "does NOT beat both baselines"
        self.stdout.write(f"{version} {verdict} on recall@10; status {version.status}.")
        if activate:
            run = start_recommendation_run(moment if as_of else None)
            run.refresh_from_db()
            self.stdout.write(
                f"Picks: run {run.pk}, {run.chunks_total} chunks of {run.chunk_customers:,} customers "
                f"({run.chunks_done} done, {run.customers_scored:,} customers so far, {run.status})."
            )
