"""A condition on a category's sales forecast, shared by the `forecast_changed` trigger and the branch step.

{"category": "books", "weeks": 4, "direction": "below", "percent": 10, "compared_to": "last_year"}
holds when the active forecast's units for the category's next 4 weeks are at least 10 % below the
same weeks last year. `compared_to` may also be "previous_forecast": the forecast activated before
this one, over the weeks both forecast. `direction` is "below" or "above". Without `category`, the
trigger looks at every category and the branch at the category that started the enrollment.
A comparison with nothing to compare with (a category younger than a year, a first forecast) never
holds.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ml.forecast.history import MAX_HORIZON_WEEKS
from ml.forecast_trends import CategoryTrend

DIRECTIONS = ("below", "above")
COMPARISONS = ("last_year", "previous_forecast")
MAX_PERCENT = 1000
CATEGORY_MAX_CHARS = 120
KEYS = ("category", "weeks", "direction", "percent", "compared_to")


@dataclass(frozen=True)
class ForecastCondition:
    category: str | None
    weeks: int
    direction: str
    percent: float
    compared_to: str

    def holds(self, trend: CategoryTrend) -> bool:
        """Tell whether the trend crosses the condition's threshold in its direction."""
        change = trend.change(self.compared_to)
        if change is None:
            return False
        return change <= -self.percent if self.direction == "below" else change >= self.percent

    def describe(self) -> str:
        compared = "the same weeks last year" if self.compared_to == "last_year" else "the previous forecast"
        return f"next {self.weeks} weeks at least {self.percent:g} % {self.direction} {compared}"

    def as_config(self) -> dict[str, Any]:
        config = {"weeks": self.weeks, "direction": self.direction, "percent": self.percent, "compared_to": self.compared_to}
        return {"category": self.category, **config} if self.category is not None else config


def clean_condition(
    config: Any, fail: Callable[[str, str], Exception], extra_keys: tuple[str, ...] = ()
) -> ForecastCondition:
    """Return the condition in `config`, or raise `fail(key, message)` naming the first wrong key."""
    if not isinstance(config, dict):
        raise fail("category", 'must be an object such as {"category": "books", "weeks": 4, "percent": 10}')
    unknown = sorted(set(config) - set(KEYS) - set(extra_keys))
    if unknown:
        raise fail(unknown[0], f"is not a setting of this condition; it takes {', '.join((*KEYS, *extra_keys))}")
    category = config.get("category")
    if category is not None and (not isinstance(category, str) or not category.strip()):
        raise fail("category", "must be a category name, or left out for every category")
    if category is not None and len(category.strip()) > CATEGORY_MAX_CHARS:
        raise fail("category", f"at most {CATEGORY_MAX_CHARS} characters")
    weeks = config.get("weeks", 4)
    if isinstance(weeks, bool) or not isinstance(weeks, int) or not 1 <= weeks <= MAX_HORIZON_WEEKS:
        raise fail("weeks", f"must be a whole number of weeks from 1 to {MAX_HORIZON_WEEKS}")
    direction = config.get("direction", "below")
    if direction not in DIRECTIONS:
        raise fail("direction", f"must be one of {', '.join(DIRECTIONS)}")
    percent = config.get("percent")
    if isinstance(percent, bool) or not isinstance(percent, int | float) or not 0 < percent <= MAX_PERCENT:
        raise fail("percent", f"must be a number above 0 and at most {MAX_PERCENT}, e.g. 10 for ten percent")
    if direction == "below" and percent > 100:
        raise fail("percent", "a forecast cannot fall more than 100 % below anything")
    compared_to = config.get("compared_to", "last_year")
    if compared_to not in COMPARISONS:
        raise fail("compared_to", f"must be one of {', '.join(COMPARISONS)}")
    return ForecastCondition(
        category.strip() if category is not None else None, weeks, direction, float(percent), compared_to
    )
