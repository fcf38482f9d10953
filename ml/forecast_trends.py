"""Where a category's sales are heading: its forecast for the next weeks against the same weeks last year
and against the previous forecast.

"The same weeks last year" are the weeks exactly 52 weeks earlier (364 days, so Mondays stay
Mondays and Black Friday stays in its week), read from the sales the version itself learned from.
"The previous forecast" is the forecast version activated before this one; it is compared on the
weeks both forecast. A comparison that has nothing to compare with (a category younger than a year,
a first forecast, a year without sales in those weeks) is None, never zero.
"""

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, timedelta

from ml.models import SALES_FORECAST, Forecast, ModelVersion, WeeklySales

YEAR = timedelta(weeks=52)
DEFAULT_TREND_WEEKS = 4


@dataclass(frozen=True)
class CategoryTrend:
    category: str
    weeks: tuple[date, ...]  # the forecast weeks compared, from the first
    forecast_units: float
    last_year_units: float | None
    previous_units: float | None  # the previous forecast's units over the weeks both forecast
    overlap_units: float | None  # this forecast's units over those same weeks
    method: str

    @property
    def change_vs_last_year(self) -> float | None:
        """Return the forecast's change against the same weeks last year, in percent."""
        return _change(self.forecast_units, self.last_year_units)

    @property
    def change_vs_previous(self) -> float | None:
        """Return the forecast's change against the previous forecast of the same weeks, in percent."""
        return _change(self.overlap_units, self.previous_units) if self.overlap_units is not None else None

    def change(self, compared_to: str) -> float | None:
        return self.change_vs_last_year if compared_to == "last_year" else self.change_vs_previous


def _change(value: float, base: float | None) -> float | None:
    if base is None or base <= 0:
        return None
    return round(100 * (value - base) / base, 2)


def previous_forecast(version: ModelVersion) -> ModelVersion | None:
    """Return the forecast version that was activated last before `version` was made."""
    return (
        ModelVersion.objects.filter(task=SALES_FORECAST, pk__lt=version.pk, activated_at__isnull=False)
        .order_by("-pk")
        .first()
    )


def category_trends(
    version: ModelVersion, weeks: int = DEFAULT_TREND_WEEKS, category: str | None = None
) -> list[CategoryTrend]:
    """Return every series' trend over the forecast's first `weeks` weeks (or one category's), by name."""
    forecasts = Forecast.objects.filter(model_version=version).order_by("week_start")
    if category is not None:
        forecasts = forecasts.filter(category=category)
    first_weeks = sorted(set(forecasts.values_list("week_start", flat=True)))[:weeks]
    if not first_weeks:
        return []
    window = forecasts.filter(week_start__in=first_weeks)
    units: dict[str, dict[date, float]] = defaultdict(dict)
    methods: dict[str, str] = {}
    for name, week, value, method in window.values_list("category", "week_start", "units", "method"):
        units[name][week] = value
        methods[name] = method
    past = WeeklySales.objects.filter(model_version=version, week_start__in=[week - YEAR for week in first_weeks])
    if category is not None:
        past = past.filter(category=category)
    last_year: dict[str, dict[date, float]] = defaultdict(dict)
    for name, week, value in past.values_list("category", "week_start", "units"):
        last_year[name][week + YEAR] = value
    previous: dict[str, dict[date, float]] = defaultdict(dict)
    earlier = previous_forecast(version)
    if earlier is not None:
        rows = Forecast.objects.filter(model_version=earlier, week_start__in=first_weeks)
        if category is not None:
            rows = rows.filter(category=category)
        for name, week, value in rows.values_list("category", "week_start", "units"):
            previous[name][week] = value
    trends = []
    for name in sorted(units):
        weekly = units[name]
        year = last_year.get(name, {})
        before = previous.get(name, {})
        overlap = [week for week in first_weeks if week in before]
        trends.append(
            CategoryTrend(
                category=name,
                weeks=tuple(first_weeks),
                forecast_units=round(sum(weekly.values()), 4),
                last_year_units=round(sum(year.values()), 4) if len(year) == len(first_weeks) else None,
                previous_units=round(sum(before[week] for week in overlap), 4) if overlap else None,
                overlap_units=round(sum(weekly[week] for week in overlap), 4) if overlap else None,
                method=methods[name],
            )
        )
    return trends


def category_trend(version: ModelVersion, category: str, weeks: int = DEFAULT_TREND_WEEKS) -> CategoryTrend | None:
    """Return one category's trend under the version, or None if it does not forecast that category."""
    trends = category_trends(version, weeks, category)
    return trends[0] if trends else None


def largest_changes(version: ModelVersion, weeks: int = DEFAULT_TREND_WEEKS) -> list[CategoryTrend]:
    """Return the categories whose next weeks differ most from the same weeks last year, largest first;
    those without a year to compare with come last, by name."""
    trends = category_trends(version, weeks)
    return sorted(
        trends,
        key=lambda trend: (trend.change_vs_last_year is None, -abs(trend.change_vs_last_year or 0), trend.category),
    )
