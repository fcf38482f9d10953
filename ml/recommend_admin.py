"""Admin pages of the recommender and send-time versions: figures against their baselines with a chart,
activation, one-action rollback, and (for the recommender) a fresh run of every customer's picks.

Registered from `ml.apps`, next to the other models' pages.
"""

from django.contrib import admin, messages
from django.db import transaction
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

from marketing.permissions import AdminActionPermissions
from ml import charts
from ml.models import (
    PRODUCT_RECOMMENDATIONS,
    SEND_TIMES,
    RecommenderVersion,
    RunStatus,
    ScoringRun,
    SendTimeVersion,
)
from ml.recommend import BASELINES, LABELS
from ml.recommend_registry import activate_recommender
from ml.recommend_runs import start_recommendation_run
from ml.registry import ActivationRefused, roll_back
from ml.runs import NoActiveModel
from ml.send_time_registry import activate_send_times
from ml.send_times import hour_label

MEASURES = (("recall_at_10", "recall@10"), ("ndcg_at_10", "NDCG@10"), ("coverage", "coverage"))


class VersionAdmin(AdminActionPermissions, admin.ModelAdmin):
    """What both pages share: read-only rows from training, activation through the task's own rule, rollback."""

    task = ""
    list_filter = ["status", "beats_baselines"]
    ordering = ["-version"]
    actions = ["activate", "roll_back_task"]

    def get_queryset(self, request):
        return super().get_queryset(request).filter(task=self.task).defer("artifact")

    def has_add_permission(self, request) -> bool:
        return False  # versions come from training

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def activate_one(self, version):
        raise NotImplementedError

    @admin.action(description="Activate the selected version (it must beat its baselines)", permissions=["activate"])
    def activate(self, request, queryset) -> None:
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one version to activate.", messages.ERROR)
            return
        try:
            version = self.activate_one(queryset.get())
        except ActivationRefused as refusal:
            self.message_user(request, str(refusal), messages.ERROR)
            return
        self.message_user(request, f"{version} is active; e-mails read it from now on.")

    @admin.action(description="Roll back to the previously active version", permissions=["activate"])
    def roll_back_task(self, request, queryset) -> None:
        try:
            version = roll_back(self.task)
        except ActivationRefused as refusal:
            self.message_user(request, str(refusal), messages.ERROR)
            return
        self.message_user(request, f"Rolled back: {version} is active again, with what it stored.")


@admin.register(RecommenderVersion)
class RecommenderVersionAdmin(VersionAdmin):
    task = PRODUCT_RECOMMENDATIONS
    list_display = [
        "__str__", "status", "as_of", "model_recall", "popularity_recall", "knn_recall", "beats_baselines", "created_at",
    ]  # fmt: skip
    actions = ["activate", "roll_back_task", "compute_picks"]
    fields = [
        "version", "status", "activated_at", "beats_baselines", "as_of", "training_from", "training_to",
        "figures", "chart", "parameters", "tuning", "runs", "model_card",
    ]  # fmt: skip
    readonly_fields = fields

    def _recall(self, version, name: str):
        return (version.metrics.get(name) or {}).get("recall_at_10")

    @admin.display(description="recall@10")
    def model_recall(self, version):
        return self._recall(version, "model")

    @admin.display(description="recent popularity")
    def popularity_recall(self, version):
        return self._recall(version, "popularity")

    @admin.display(description="item-kNN")
    def knn_recall(self, version):
        return self._recall(version, "item_knn")

    @admin.display(description="judged on the 30 days after the split")
    def figures(self, version) -> str:
        metrics = version.metrics
        if "model" not in metrics:
            return "—"
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    LABELS[name],
                    f"{metrics[name]['recall_at_10']:.4f}",
                    f"{metrics[name]['ndcg_at_10']:.4f}",
                    f"{metrics[name]['coverage']:.1%}",
                    metrics[name]["customers"],
                )
                for name in ("model", *BASELINES)
            ),
        )
        return format_html(
            "<p>Trained on history before {}, judged on what customers bought in the {} days after it.</p>"
            "<table><tr><th></th><th>recall@10</th><th>NDCG@10</th><th>catalogue coverage</th><th>customers judged</th>"
            "</tr>{}</table>",
            metrics["split"][:10],
            metrics["window_days"],
            rows,
        )

    @admin.display(description="chart")
    def chart(self, version) -> str:
        metrics = version.metrics
        if "model" not in metrics:
            return "—"
        groups = {
            label: {LABELS[name]: metrics[name][key] for name in ("model", *BASELINES)} for key, label in MEASURES
        }
        return mark_safe(charts.grouped_bar_chart("Model against baselines", groups))  # noqa: S308

    @admin.display(description="parameters")
    def parameters(self, version) -> str:
        return format_html_join(", ", "{}={}", sorted(version.params.items()))

    @admin.display(description="configurations tried on the month before the split")
    def tuning(self, version) -> str:
        rows = version.metrics.get("tuning", [])
        return format_html(
            "<table><tr><th>half-life (days)</th><th>views</th><th>popularity</th><th>recall@10</th><th>NDCG@10</th>"
            "</tr>{}</table>",
            format_html_join(
                "",
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                (
                    (
                        row["params"]["half_life_days"],
                        row["params"]["view_weight"],
                        row["params"]["popularity_weight"],
                        row["recall_at_10"],
                        row["ndcg_at_10"],
                    )
                    for row in rows
                ),
            ),
        )

    @admin.display(description="runs of every customer's picks")
    def runs(self, version) -> str:
        return format_html_join(
            "",
            "<p>run {} as of {}: {} of {} chunks, {} customers, {}</p>",
            (
                (run.pk, f"{run.as_of:%Y-%m-%d %H:%M}", run.chunks_done, run.chunks_total, run.customers_scored,
                 run.status + (f" ({run.error})" if run.error else ""))
                for run in ScoringRun.objects.filter(model_version=version)[:10]
            ),
        ) or "none yet"  # fmt: skip

    @admin.display(description="model card")
    def model_card(self, version) -> str:
        return format_html('<pre style="white-space:pre-wrap">{}</pre>', version.card)

    def activate_one(self, version):
        return activate_recommender(version)

    @admin.action(description="Compute every customer's picks with the active version", permissions=["activate"])
    def compute_picks(self, request, queryset) -> None:
        if ScoringRun.objects.filter(model_version__task=self.task, status=RunStatus.RUNNING).exists():
            self.message_user(request, "A run of picks is already in progress.", messages.WARNING)
            return
        try:
            with transaction.atomic():
                run = start_recommendation_run()
        except NoActiveModel as error:
            self.message_user(request, str(error), messages.ERROR)
            return
        self.message_user(request, f"Run {run.pk} started: {run.chunks_total} chunks, queued for the workers.")


@admin.register(SendTimeVersion)
class SendTimeVersionAdmin(VersionAdmin):
    task = SEND_TIMES
    list_display = ["__str__", "status", "as_of", "model_rate", "shop_rate", "beats_baselines", "created_at"]
    fields = ["version", "status", "activated_at", "beats_baselines", "as_of", "figures", "chart", "tuning"]
    readonly_fields = fields

    @admin.display(description="within 1 h of next engagement")
    def model_rate(self, version):
        return version.metrics.get("model")

    @admin.display(description="shop-wide best hour")
    def shop_rate(self, version):
        return version.metrics.get("shop_wide")

    @admin.display(description="judged on each customer's next open or click after the split")
    def figures(self, version) -> str:
        metrics = version.metrics
        if "model" not in metrics:
            return "—"
        return format_html(
            "<p>{} customers judged in the {} days after {}. The chosen hour fell within one hour of their next "
            "engagement for {} of them; the shop-wide best hour of that day did for {}.</p><p>{} customers by "
            "hour of the week, {} by hour of the day (thin history); the shop's best hours: {}.</p>",
            metrics["customers"],
            metrics["window_days"],
            metrics["split"][:10],
            f"{metrics['model']:.1%}",
            f"{metrics['shop_wide']:.1%}",
            metrics["weekly_customers"],
            metrics["daily_customers"],
            ", ".join(hour_label(hour) for hour in metrics["shop_best_hours"]),
        )

    @admin.display(description="chart")
    def chart(self, version) -> str:
        if "model" not in version.metrics:
            return "—"
        groups = {
            "within 1 h": {"Kairos send time": version.metrics["model"], "shop-wide best hour": version.metrics["shop_wide"]}
        }
        return mark_safe(charts.grouped_bar_chart("Send time against the shop-wide hour", groups, percent=True))  # noqa: S308

    @admin.display(description="configurations tried on the month before the split")
    def tuning(self, version) -> str:
        return format_html_join(
            "",
            "<p>shrinkage {}, weekly from {} engagements: {}</p>",
            (
                (row["prior_strength"], row["weekly_minimum"], f"{row['model']:.1%}")
                for row in version.metrics.get("tuning", [])
            ),
        ) or "—"

    def activate_one(self, version):
        return activate_send_times(version)
