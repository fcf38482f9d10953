from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from ml.forecast import ALL_SERIES, NotEnoughHistory
from ml.forecast.card import backtest_rows
from ml.forecast.history import MAX_HORIZON_WEEKS
from ml.forecast.methods import METHOD_LABELS, METHODS
from ml.forecast_queries import CategoryNameClash
from ml.forecast_registry import ForecastTrainingOptions, activate_forecast, train_forecast
from ml.forecast_trends import DEFAULT_TREND_WEEKS, largest_changes
from ml.management.commands._moments import as_of_moment
from ml.models import ModelVersion
from ml.registry import ActivationRefused

CATEGORY_COLUMN_CHARS = 16


class Command(BaseCommand):
    help = (
        "Forecast weekly units and revenue per category and for the whole shop from the orders before --as-of "
        "(default now), backtest LightGBM against the seasonal naive and AutoETS on rolling origins, choose a method "
        "per category, print the backtest table and register the forecast as a new version."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--as-of", metavar="DATE", help="Use only orders before this date or moment (backtesting).")
        parser.add_argument(
            "--weeks",
            type=int,
            default=settings.FORECAST_HORIZON_WEEKS,
            help=f"Weeks to forecast (default {settings.FORECAST_HORIZON_WEEKS}, at most {MAX_HORIZON_WEEKS}).",
        )
        parser.add_argument(
            "--activate", action="store_true", help="Activate the version if it beats the seasonal naive."
        )
        parser.add_argument("--force", action="store_true", help="With --activate: activate even if it does not.")

    def handle(self, *args, as_of: str | None, weeks: int, activate: bool, force: bool, **options) -> None:
        if not 1 <= weeks <= MAX_HORIZON_WEEKS:
            raise CommandError(f"--weeks must be a whole number from 1 to {MAX_HORIZON_WEEKS}, not {weeks}")
        moment = as_of_moment(as_of) or timezone.now()
        try:
            version = train_forecast(ForecastTrainingOptions(as_of=moment, weeks=weeks))
        except NotEnoughHistory as refusal:
            raise CommandError("not enough history to forecast:\n- " + "\n- ".join(refusal.reasons)) from None
        except CategoryNameClash as clash:
            raise CommandError(str(clash)) from None
        self.report(version)
        if activate:
            try:
                activate_forecast(version, force=force)
            except ActivationRefused as refusal:
                raise CommandError(f"{refusal}; it stays a candidate") from None
        verdict = "beats" if version.beats_baselines else "does NOT beat"
        self.stdout.write(f"{version} {verdict} the seasonal naive on overall MASE; status {version.status}.")

    def report(self, version: ModelVersion) -> None:
        metrics = version.metrics
        data, backtest = metrics["data"], metrics["backtest"]
        self.stdout.write(
            f"Trained {version.task} v{version.version} on {data['weeks']} weeks of sales ({data['first_week']} to the week before "
            f"{data['end_week']}), forecasting {backtest['horizon_weeks']} weeks from {data['end_week']}."
        )
        excluded = ", ".join(
            f"{figures['orders']:,} {status} ({figures['total']:,.2f})" for status, figures in data["excluded"].items()
        )
        self.stdout.write(f"  {data['kept_orders']:,} orders in {data['categories']} categories; left out: {excluded}.")
        self.stdout.write(
            f"  {data['orders_without_lines']:,} orders without lines ({data['revenue_without_lines']:,.2f}) count "
            "towards the shop's revenue, not towards units or any category."
        )
        self.stdout.write(
            f"  Backtest on history only: origins {', '.join(backtest['origins'])}, {backtest['horizon_weeks']} weeks each."
        )
        self.table(metrics["units"])
        for target in ("units", "revenue"):
            overall = metrics[target]["overall"]
            figures = "; ".join(f"{label} {mase}" for label, mase, _ in backtest_rows(overall, METHODS))
            self.stdout.write(
                f"  {target} overall MASE over {overall['categories_evaluated']} categories and the last "
                f"{overall['origins_evaluated']} origins: {figures}"
            )
            smapes = "; ".join(f"{label} {smape}" for label, _, smape in backtest_rows(overall, METHODS))
            self.stdout.write(f"  {target} overall sMAPE (%): {smapes}")
            chosen = ", ".join(f"{METHOD_LABELS[method]} {count}" for method, count in overall["chosen"].items())
            self.stdout.write(f"  {target} methods chosen: {chosen}")
        changes = [
            f"{trend.category} {trend.change_vs_last_year:+.1f} %"
            for trend in largest_changes(version, DEFAULT_TREND_WEEKS)
            if trend.change_vs_last_year is not None
        ]
        if changes:
            self.stdout.write(
                f"  Next {DEFAULT_TREND_WEEKS} weeks against the same weeks last year (units): {', '.join(changes)}"
            )

    def table(self, units: dict) -> None:
        labels = [METHOD_LABELS[method] for method in METHODS]
        header = "".join(f"{label:>15}" for label in labels)
        self.stdout.write(
            f"  {'units':<{CATEGORY_COLUMN_CHARS}}{'weeks':>6}  {'chosen':<15}MASE{header}   sMAPE{header}"
        )
        series = sorted(units["series"].values(), key=lambda row: (row["series"] != ALL_SERIES, row["series"]))
        for row in series:
            mase = "".join(_cell(row, method, "mase", 3) for method in METHODS)
            smape = "".join(_cell(row, method, "smape", 1) for method in METHODS)
            name = row["series"][:CATEGORY_COLUMN_CHARS] or "(none)"
            note = f"  fallback: {row['fallback']}" if row["fallback"] else ""
            if row.get("note"):
                note += f"  ({row['note']})"
            self.stdout.write(
                f"  {name:<{CATEGORY_COLUMN_CHARS}}{row['history_weeks']:>6}  {METHOD_LABELS.get(row['method'], row['method']):<15}"
                f"    {mase}        {smape}{note}"
            )


def _cell(row: dict, method: str, metric: str, digits: int) -> str:
    value = row["figures"][method][metric]
    text = "—" if value is None else f"{value:.{digits}f}"
    return f"{text + ('*' if row['method'] == method else ' '):>15}"
