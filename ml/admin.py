"""Admin pages of the ML app: model versions judged against their baselines, scoring runs, and each
customer's score with its reasons on their own page."""

from django.contrib import admin, messages
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

from marketing.admin import CustomerAdmin
from marketing.enqueue import enqueue_on_commit
from marketing.models import Customer
from marketing.permissions import AdminActionPermissions
from ml import charts
from ml.card import weighting
from ml.evaluation import METRIC_LABELS
from ml.explanations import reasons_for
from ml.models import Backtest, ModelStatus, ModelVersion, Score, ScoringRun
from ml.reasons import worded
from ml.registry import ActivationRefused, activate_version, roll_back

BASELINES = (("model", "Model"), ("recency", "Recency rank"), ("logistic", "Logistic regression"), ("bgnbd", "BG/NBD"))


def _columns(metrics: dict) -> list[tuple[str, str]]:
    """Return the model and the baselines a stored version has figures for (older versions had two)."""
    return [(name, label) for name, label in BASELINES if name in metrics]


class BacktestInline(admin.TabularInline):
    model = Backtest
    fields = ["as_of", "horizon_days", "customers", "positives", "figures", "created_at"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    verbose_name_plural = "backtests: this version scored as of its training date, judged on what happened next"

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="model against baselines")
    def figures(self, backtest: Backtest) -> str:
        return metrics_html(backtest.metrics)


@admin.register(ModelVersion)
class ModelVersionAdmin(AdminActionPermissions, admin.ModelAdmin):
    list_display = [
        "__str__",
        "status",
        "horizon_days",
        "as_of",
        "model_auc",
        "best_baseline_auc",
        "beats_baselines",
        "created_at",
    ]
    list_filter = ["task", "status", "beats_baselines"]
    ordering = ["task", "-version"]
    actions = ["activate", "roll_back_task"]
    inlines = [BacktestInline]
    fieldsets = [
        (None, {"fields": ["task", "version", "status", "activated_at", "beats_baselines"]}),
        (
            "Training",
            {"fields": ["horizon_days", "as_of", "training_from", "training_to", "snapshot_table", "parameters"]},
        ),
        ("Model against baselines (validation snapshot)", {"fields": ["metrics_table", "curves", "importance"]}),
        ("Fairness", {"fields": ["fairness_table"]}),
        ("Model card", {"fields": ["model_card"]}),
    ]
    readonly_fields = [
        "task",
        "version",
        "status",
        "activated_at",
        "beats_baselines",
        "horizon_days",
        "as_of",
        "training_from",
        "training_to",
        "snapshot_table",
        "parameters",
        "metrics_table",
        "curves",
        "importance",
        "fairness_table",
        "model_card",
    ]

    def has_add_permission(self, request) -> bool:
        return False  # versions come from training, never from a form

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="ROC AUC")
    def model_auc(self, version: ModelVersion):
        return version.metrics.get("model", {}).get("roc_auc")

    @admin.display(description="best baseline AUC")
    def best_baseline_auc(self, version: ModelVersion):
        values = [version.metrics.get(name, {}).get("roc_auc") for name, _ in BASELINES[1:]]
        values = [value for value in values if value is not None]
        return max(values) if values else None

    @admin.display(description="snapshots")
    def snapshot_table(self, version: ModelVersion) -> str:
        rows = version.metrics.get("snapshots", [])
        return format_html(
            "<table><tr><th>role</th><th>cutoff</th><th>customers</th><th>bought</th></tr>{}</table>",
            format_html_join(
                "",
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                ((row["role"], row["cutoff"][:10], row["customers"], row["positives"]) for row in rows),
            ),
        )

    @admin.display(description="parameters")
    def parameters(self, version: ModelVersion) -> str:
        params = version.params
        refit = params.get("refit_cutoffs") or []
        bgnbd = params.get("bgnbd") or {}
        return format_html(
            "{} trees chosen on the validation snapshot, refit on {} snapshots{} ({}); sample every {} customer(s); "
            "BG/NBD {}; LightGBM {}",
            params.get("best_iteration"),
            len(refit),
            f" from {refit[0][:10]} to {refit[-1][:10]}" if refit else "",
            weighting(params.get("half_life_days")),
            params.get("sample_stride"),
            ", ".join(f"{key}={bgnbd[key]:.4g}" for key in ("r", "alpha", "a", "b") if key in bgnbd) or "not fitted",
            ", ".join(f"{key}={value}" for key, value in sorted(params.get("lightgbm", {}).items())),
        )

    @admin.display(description="metrics")
    def metrics_table(self, version: ModelVersion) -> str:
        metrics = version.metrics
        if "model" not in metrics:
            return "—"
        note = metrics.get("calibration_note", "")
        return format_html("{}<p>{}</p>", metrics_html(metrics), note)

    @admin.display(description="charts")
    def curves(self, version: ModelVersion) -> str:
        return curves_html(version.metrics)

    @admin.display(description="feature importance (gain)")
    def importance(self, version: ModelVersion) -> str:
        ranked = [(name, gain) for name, gain in version.metrics.get("importance", [])]
        return mark_safe(charts.importance_chart(ranked)) if ranked else "—"  # noqa: S308

    @admin.display(description="fairness report")
    def fairness_table(self, version: ModelVersion) -> str:
        report = version.fairness
        if not report:
            return "No report: the customers record no gender, age or country."
        if report.get("warnings"):
            warnings = format_html_join("", "<li>{}</li>", ((warning,) for warning in report["warnings"]))
        else:
            warnings = format_html(
                "<li>No warning: no group's buyers are reached at under four fifths of the best-served group's rate, "
                "and the model is calibrated within every group it can judge.</li>"
            )
        sections = []
        for attribute, data in report["attributes"].items():
            rows = format_html_join(
                "",
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                (
                    (
                        group["group"] + (" (too small to judge)" if group["small"] else ""),
                        group["customers"],
                        _percent(group["observed_rate"]),
                        _percent(group["mean_predicted"]),
                        _percent(group["selected_top_share"]),
                        _percent(group["tpr_top_share"]),
                        _percent(group["selected_threshold"]),
                        _percent(group["tpr_threshold"]),
                    )
                    for group in data["groups"]
                ),
            )
            sections.append(
                format_html(
                    "<h4>{} (unknown: {}; lowest true-positive-rate ratio: top share {}, threshold {})</h4>"
                    "<table><tr><th>group</th><th>customers</th><th>bought</th><th>predicted</th>"
                    "<th>selected, top share</th><th>buyers reached, top share</th><th>selected, threshold</th>"
                    "<th>buyers reached, threshold</th></tr>{}</table>",
                    attribute.replace("_", " "),
                    data["unknown"],
                    data.get("tpr_ratio_top_share", "—"),
                    data.get("tpr_ratio_threshold", "—"),
                    rows,
                )
            )
        return format_html(
            "<p>Top share {}; threshold {}. Selection rates are shown next to how many of each group actually bought; "
            "a warning needs a difference their buying does not explain.</p><ul>{}</ul>{}",
            _percent(report["top_share"]),
            report["threshold"],
            warnings,
            format_html_join("", "{}", ((section,) for section in sections)),
        )

    @admin.display(description="model card")
    def model_card(self, version: ModelVersion) -> str:
        return format_html('<pre style="white-space:pre-wrap">{}</pre>', version.card)

    @admin.action(description="Activate the selected version (it must beat every baseline)", permissions=["activate"])
    def activate(self, request, queryset) -> None:
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one version to activate.", messages.ERROR)
            return
        try:
            version = activate_version(queryset.get())
        except ActivationRefused as refusal:
            self.message_user(request, str(refusal), messages.ERROR)
            return
        self.message_user(request, f"{version} is active; segments and campaigns read its scores now.")

    @admin.action(description="Roll back to the previously active version", permissions=["activate"])
    def roll_back_task(self, request, queryset) -> None:
        tasks = set(queryset.values_list("task", flat=True))
        for task in tasks:
            try:
                version = roll_back(task)
            except ActivationRefused as refusal:
                self.message_user(request, str(refusal), messages.ERROR)
                continue
            self.message_user(request, f"Rolled back: {version} is active again, with its stored scores.")


def curves_html(metrics: dict) -> str:
    """Return the ROC, gains and calibration charts of the model and its baselines."""
    if "model" not in metrics:
        return "—"
    names = {label: metrics[name] for name, label in _columns(metrics)}
    # The SVG comes from ml.charts, which escapes every text and interpolates only numbers.
    svg = (
        charts.roc_chart({label: data["roc"] for label, data in names.items()})
        + charts.gains_chart({label: data["gains"] for label, data in names.items()})
        + charts.calibration_chart({label: data["calibration"] for label, data in names.items()})
    )
    return mark_safe(f'<div style="display:flex;flex-wrap:wrap;gap:1em">{svg}</div>')  # noqa: S308


def metrics_html(metrics: dict) -> str:
    """Return the model and its baselines side by side as an HTML table, one metric per row."""
    columns = _columns(metrics)
    header = format_html_join("", "<th>{}</th>", ((label,) for _, label in columns))
    rows = format_html_join(
        "",
        "<tr><th>{}</th>{}<td>{} is better</td></tr>",
        (
            (
                label,
                format_html_join("", "<td>{}</td>", ((f"{metrics[name][key]:.4f}",) for name, _ in columns)),
                direction,
            )
            for key, label, direction in METRIC_LABELS
        ),
    )
    return format_html("<table><tr><th></th>{}<th></th></tr>{}</table>", header, rows)


def _percent(value) -> str:
    return "—" if value is None else f"{100 * value:.1f} %"


@admin.register(Backtest)
class BacktestAdmin(admin.ModelAdmin):
    list_display = ["__str__", "as_of", "horizon_days", "customers", "positives", "model_roc_auc", "model_pr_auc", "ahead"]
    list_filter = ["horizon_days"]
    fields = ["model_version", "as_of", "horizon_days", "customers", "positives", "figures", "curves", "created_at"]
    readonly_fields = fields

    def has_add_permission(self, request) -> bool:
        return False  # backtests come from `manage.py backtest_propensity`

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="ROC AUC")
    def model_roc_auc(self, backtest: Backtest):
        return backtest.metrics.get("model", {}).get("roc_auc")

    @admin.display(description="PR AUC")
    def model_pr_auc(self, backtest: Backtest):
        return backtest.metrics.get("model", {}).get("pr_auc")

    @admin.display(description="ahead of every baseline on ROC and PR AUC", boolean=True)
    def ahead(self, backtest: Backtest) -> bool:
        metrics = backtest.metrics
        return all(
            metrics["model"][key] > metrics[name][key] for name, _ in _columns(metrics)[1:] for key in ("roc_auc", "pr_auc")
        )

    @admin.display(description="model against baselines, judged on who ordered within the horizon")
    def figures(self, backtest: Backtest) -> str:
        return metrics_html(backtest.metrics)

    @admin.display(description="charts")
    def curves(self, backtest: Backtest) -> str:
        return curves_html(backtest.metrics)


@admin.register(ScoringRun)
class ScoringRunAdmin(AdminActionPermissions, admin.ModelAdmin):
    list_display = [
        "pk",
        "model_version",
        "as_of",
        "status",
        "progress_bar",
        "customers_scored",
        "created_at",
        "finished_at",
    ]
    list_filter = ["status", "model_version"]
    readonly_fields = [
        "model_version",
        "as_of",
        "status",
        "progress_bar",
        "chunk_customers",
        "chunks_total",
        "chunks_done",
        "customers_scored",
        "decile_cut_points",
        "error",
        "created_at",
        "updated_at",
        "finished_at",
    ]
    actions = ["score_again"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="progress")
    def progress_bar(self, run: ScoringRun) -> str:
        return format_html(
            '<progress max="{}" value="{}"></progress> {} / {} chunks',
            run.chunks_total,
            run.chunks_done,
            run.chunks_done,
            run.chunks_total,
        )

    @admin.action(description="Score every customer again with the active model (as of now)", permissions=["activate"])
    def score_again(self, request, queryset) -> None:
        enqueue_on_commit("ml.start_scoring_run")
        self.message_user(request, "A new scoring run was queued; it appears here when it starts.")


class ScoreInline(admin.TabularInline):
    model = Score
    fields = ["model_version", "probability", "decile", "reason_list", "scored_at"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    ordering = ["-model_version__version"]
    verbose_name_plural = "purchase propensity (every version that scored this customer)"

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="top reasons")
    def reason_list(self, score: Score) -> str:
        # Reasons are computed on demand for the active version (the one campaigns read), stored ones shown for others.
        if score.model_version.status == ModelStatus.ACTIVE:
            reasons = reasons_for(score)
        else:
            reasons = worded(score.reasons, score.model_version.horizon_days) if score.reasons else []
        return format_html_join("", "<div>{}</div>", ((reason["text"],) for reason in reasons)) or "—"


class CustomerWithScoresAdmin(CustomerAdmin):
    """The audience's customer page, with the propensity scores ml adds (marketing never imports ml)."""

    def get_inlines(self, request, obj):
        # A customer being added has no scores; the add form stays exactly the audience's own.
        return (
            [*super().get_inlines(request, obj), ScoreInline] if obj is not None else super().get_inlines(request, obj)
        )

    readonly_fields = [*CustomerAdmin.readonly_fields, "propensity"]
    fieldsets = [*CustomerAdmin.fieldsets, ("Purchase propensity (active model)", {"fields": ["propensity"]})]

    @admin.display(description="probability, decile and reasons")
    def propensity(self, customer: Customer) -> str:
        score = (
            Score.objects.filter(customer=customer, model_version__status=ModelStatus.ACTIVE)
            .select_related("model_version")
            .first()
        )
        if score is None:
            return "Not scored by the active model yet."
        return format_html(
            "{} % likely to order within {} days (decile {}, {}, as of {}){}",
            f"{100 * score.probability:.1f}",
            score.model_version.horizon_days,
            score.decile,
            score.model_version,
            f"{score.scored_at:%Y-%m-%d}",
            ScoreInline.reason_list(None, score),
        )


admin.site.unregister(Customer)
admin.site.register(Customer, CustomerWithScoresAdmin)

from ml import forecast_admin  # noqa: E402,F401 - registers the sales forecasts' pages
