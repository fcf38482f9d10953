"""Admin pages of the sales forecasts: the home lists the categories whose next weeks differ most from the
same weeks last year; each category has a page with its history, forecast and interval in one chart,
and its backtest figures next to the baselines'; forecast versions are activated and rolled back on
their own page, judged by their backtest."""

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import path
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

from marketing.permissions import AdminActionPermissions
from ml import charts
from ml.forecast import ALL_SERIES
from ml.forecast.card import backtest_rows
from ml.forecast.methods import METHOD_LABELS, METHODS
from ml.forecast_registry import activate_forecast, active_forecast, roll_back_forecast
from ml.forecast_trends import DEFAULT_TREND_WEEKS, category_trend, largest_changes
from ml.models import SALES_FORECAST, Forecast, SalesForecastVersion, WeeklySales
from ml.registry import ActivationRefused

CHART_HISTORY_WEEKS = 104


def series_label(name: str) -> str:
    return "The whole shop" if name == ALL_SERIES else (name or "(no category)")


@admin.register(Forecast)
class ForecastAdmin(admin.ModelAdmin):
    """The home of the forecasts and one page per category; forecast rows are never edited by hand."""

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("category/<path:category>/", view(self.category_view), name="ml_forecast_category"),
            *super().get_urls(),
        ]

    def _context(self, request: HttpRequest, title: str) -> dict:
        return {**self.admin_site.each_context(request), "title": title, "opts": self.model._meta}

    def changelist_view(self, request: HttpRequest, extra_context=None) -> HttpResponse:
        """List the active forecast's categories, largest change against the same weeks last year first."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        version = active_forecast()
        context = self._context(request, "Sales forecasts")
        if version is None:
            context["candidates"] = SalesForecastVersion.objects.filter(task=SALES_FORECAST).count()
            return TemplateResponse(request, "admin/ml/forecast/home.html", context)
        units = version.metrics.get("units", {})
        series = units.get("series", {})
        rows = []
        for trend in largest_changes(version, DEFAULT_TREND_WEEKS):
            figures = series.get(trend.category, {})
            chosen = figures.get("method", trend.method)
            rows.append(
                {
                    "category": trend.category,
                    "label": series_label(trend.category),
                    "forecast": trend.forecast_units,
                    "last_year": trend.last_year_units,
                    "change": trend.change_vs_last_year,
                    "method": METHOD_LABELS.get(chosen, chosen),
                    "mase": figures.get("figures", {}).get(chosen, {}).get("mase"),
                    "fallback": figures.get("fallback", ""),
                }
            )
        context |= {
            "version": version,
            "rows": rows,
            "weeks": DEFAULT_TREND_WEEKS,
            "data": version.metrics.get("data", {}),
            "backtest": version.metrics.get("backtest", {}),
            "overall": backtest_rows(units["overall"], METHODS) if "overall" in units else [],
            "overall_figures": units.get("overall", {}),
        }
        return TemplateResponse(request, "admin/ml/forecast/home.html", context)

    def category_view(self, request: HttpRequest, category: str) -> HttpResponse:
        """Show one category's history and forecast in one chart, and its backtest figures by method."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        version = active_forecast()
        if version is None or not Forecast.objects.filter(model_version=version, category=category).exists():
            raise Http404(f"the active forecast has no category {category!r}")
        history = list(
            WeeklySales.objects.filter(model_version=version, category=category)
            .order_by("-week_start")
            .values_list("week_start", "units", "revenue")[:CHART_HISTORY_WEEKS]
        )[::-1]
        weeks = list(
            Forecast.objects.filter(model_version=version, category=category)
            .order_by("week_start")
            .values(
                "week_start", "units", "units_low", "units_high", "revenue", "revenue_low", "revenue_high", "method",
                "revenue_method",
            )
        )  # fmt: skip
        level = version.params.get("level", 80)
        interval = f"{level}% interval"
        sections = []
        for column, (target, label) in enumerate((("units", "Units"), ("revenue", "Revenue")), start=1):
            figures = version.metrics.get(target, {}).get("series", {}).get(category, {})
            method = weeks[0]["method" if target == "units" else "revenue_method"] if weeks else ""
            chart = charts.forecast_chart(
                f"{label} per week of {series_label(category)}",
                label,
                [(row[0], row[column]) for row in history],
                [(row["week_start"], row[target], row[f"{target}_low"], row[f"{target}_high"]) for row in weeks],
                f"Forecast ({METHOD_LABELS.get(method, method)})",
                interval,
            )
            sections.append(
                {
                    "target": target,
                    "label": label,
                    # The SVG comes from ml.charts, which escapes every text and interpolates only numbers.
                    "chart": mark_safe(chart),  # noqa: S308
                    "chosen": METHOD_LABELS.get(figures.get("method", method), method),
                    "fallback": figures.get("fallback", ""),
                    "methods": [
                        {
                            "label": METHOD_LABELS[name],
                            "chosen": figures.get("method") == name,
                            **figures.get("figures", {}).get(name, {}),
                        }
                        for name in METHODS
                    ],
                }
            )
        trend = category_trend(version, category, DEFAULT_TREND_WEEKS)
        context = self._context(request, f"Sales forecast: {series_label(category)}") | {
            "version": version,
            "category": category,
            "label": series_label(category),
            "sections": sections,
            "weeks": weeks,
            "trend": trend,
            "trend_weeks": DEFAULT_TREND_WEEKS,
            "level": level,
            "profile": version.metrics.get("units", {}).get("series", {}).get(category, {}),
        }
        return TemplateResponse(request, "admin/ml/forecast/category.html", context)


@admin.register(SalesForecastVersion)
class SalesForecastVersionAdmin(AdminActionPermissions, admin.ModelAdmin):
    list_display = ["__str__", "status", "as_of", "selected_mase", "naive_mase", "beats_baselines", "created_at"]
    list_filter = ["status", "beats_baselines"]
    ordering = ["-version"]
    actions = ["activate", "roll_back"]
    fields = ["version", "status", "as_of", "activated_at", "beats_baselines", "backtest_table", "model_card"]
    readonly_fields = fields

    def get_queryset(self, request):
        return super().get_queryset(request).filter(task=SALES_FORECAST)

    def has_add_permission(self, request) -> bool:
        return False  # versions come from train_forecast, never from a form

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def _overall(self, version) -> dict:
        return version.metrics.get("units", {}).get("overall", {}).get("methods", {})

    @admin.display(description="selected MASE")
    def selected_mase(self, version) -> float | None:
        return self._overall(version).get("selected", {}).get("mase")

    @admin.display(description="seasonal naive MASE")
    def naive_mase(self, version) -> float | None:
        return self._overall(version).get("seasonal_naive", {}).get("mase")

    @admin.display(description="backtest (units, overall)")
    def backtest_table(self, version) -> str:
        overall = version.metrics.get("units", {}).get("overall")
        if not overall:
            return "—"
        return format_html(
            "<table><tr><th>forecast</th><th>MASE</th><th>sMAPE (%)</th></tr>{}</table>",
            format_html_join("", "<tr><td>{}</td><td>{}</td><td>{}</td></tr>", backtest_rows(overall, METHODS)),
        )

    @admin.display(description="model card")
    def model_card(self, version) -> str:
        return format_html('<pre style="white-space:pre-wrap">{}</pre>', version.card)

    @admin.action(
        description="Activate the selected forecast (it must beat the seasonal naive)", permissions=["activate"]
    )
    def activate(self, request, queryset) -> None:
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one forecast version to activate.", messages.ERROR)
            return
        try:
            version = activate_forecast(queryset.get())
        except ActivationRefused as refusal:
            self.message_user(request, str(refusal), messages.ERROR)
            return
        self.message_user(request, f"{version} is active; exports and campaigns read it now.")

    @admin.action(description="Roll back to the previously active forecast", permissions=["activate"])
    def roll_back(self, request, queryset) -> None:
        try:
            version = roll_back_forecast()
        except ActivationRefused as refusal:
            self.message_user(request, str(refusal), messages.ERROR)
            return
        self.message_user(request, f"Rolled back: {version} is active again.")
