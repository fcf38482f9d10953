from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from ml.backtest import BacktestRefused, backtest
from ml.evaluation import metrics_table
from ml.management.commands._moments import as_of_moment
from ml.training import NotEnoughData


class Command(BaseCommand):
    help = (
        "Train a purchase-propensity version with data before --as-of only, score every customer known then, and "
        "judge the scores, next to the recency, logistic-regression and BG/NBD baselines, against who actually "
        "ordered within the horizon after it. The result is stored with the version."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--as-of", metavar="DATE", required=True, help="The date to go back to (YYYY-MM-DD).")
        parser.add_argument(
            "--horizon-days",
            type=int,
            default=settings.ML_HORIZON_DAYS,
            help=f"Judge orders within this many days after --as-of (default {settings.ML_HORIZON_DAYS}).",
        )

    def handle(self, *args, as_of: str, horizon_days: int, **options) -> None:
        if horizon_days < 1:
            raise CommandError(f"--horizon-days must be at least 1, not {horizon_days}")
        moment = as_of_moment(as_of)
        try:
            result = backtest(moment, horizon_days)
        except BacktestRefused as refusal:
            raise CommandError(f"cannot backtest at {as_of}: {refusal}") from None
        except NotEnoughData as refusal:
            raise CommandError("not enough data before --as-of to train:\n- " + "\n- ".join(refusal.reasons)) from None
        self.stdout.write(
            f"Backtest of {result.model_version}, trained on data before {moment:%Y-%m-%d %H:%M} UTC: "
            f"{result.customers:,} customers known then, {result.positives:,} ordered within {horizon_days} days after."
        )
        for line in metrics_table(result.metrics):
            self.stdout.write(f"  {line}")
        ahead = [
            key for key in ("roc_auc", "pr_auc")
            if all(result.metrics["model"][key] > result.metrics[name][key] for name in ("recency", "logistic", "bgnbd"))
        ]
        verdict = "ahead of every baseline on " + " and ".join(k.replace("_", " ").upper() for k in ahead) if ahead else "not ahead of every baseline on ROC AUC or PR AUC"
        self.stdout.write(f"The model is {verdict}.")
