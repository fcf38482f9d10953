"""The sales forecast's model card: what it forecasts, from what, how well against the baselines, and its limits.

Pure: built from the version's stored figures at training time, so the card always describes the
forecast next to it.
"""

from typing import Any

from ml.forecast.methods import METHOD_LABELS

SELECTED_LABEL = "Selected per category"


def _figure(value: float | None, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def backtest_rows(overall: dict[str, Any], methods: tuple[str, ...]) -> list[tuple[str, str, str]]:
    """Return (label, MASE, sMAPE) for the selected forecasts and each method, as the card and the command print them."""
    figures = overall["methods"]
    rows = [(SELECTED_LABEL, figures["selected"]["mase"], figures["selected"]["smape"])]
    rows += [(METHOD_LABELS[method], figures[method]["mase"], figures[method]["smape"]) for method in methods]
    return [(label, _figure(mase), _figure(smape, 1)) for label, mase, smape in rows]


def forecast_card(facts: dict[str, Any]) -> str:
    """Return the card as Markdown text from the version's facts."""
    metrics, params = facts["metrics"], facts["params"]
    data, backtest = metrics["data"], metrics["backtest"]
    units = metrics["units"]["overall"]
    lines = [
        f"# Sales forecast, version {facts['version']}",
        "",
        "## What it forecasts",
        f"Units and revenue per week, per product category and for the whole shop, for the {params['horizon_weeks']} "
        f"weeks from {data['end_week']} (weeks start on Monday in {params['time_zone']}), each with a "
        f"{params['level']}% prediction interval. Cancelled and refunded orders are not sales.",
        "",
        "## Data",
        f"- Trained on the {data['weeks']} complete weeks from {data['first_week']} to the week before {data['end_week']}, "
        f"made as of {facts['as_of']:%Y-%m-%d %H:%M} UTC.",
        f"- {data['kept_orders']:,} orders in {data['categories']} categories; left out: "
        + ", ".join(f"{figures['orders']:,} {status}" for status, figures in data["excluded"].items())
        + ".",
        f"- {data['orders_without_lines']:,} orders without lines count towards the shop's revenue but no category and "
        "no units.",
        "",
        "## Methods",
        "- LightGBM, one global model across categories, on lags, rolling means, last year's weeks, calendar and "
        f"holiday features, trained with an L1 objective for {params['boost_rounds']} rounds.",
        "- Seasonal naive (statsforecast): the same week a year earlier, or the last 4 weeks with less history.",
        "- AutoETS (statsforecast): error, trend and damping chosen by AICc (non-seasonal on weekly data).",
        f"- A category with under {params['model_min_weeks']} weeks of history, or with sales in fewer than one week in "
        f"{params['intermittent_adi']}, falls back to the better baseline.",
        "",
        "## Backtest (units)",
        f"Rolling origins {', '.join(backtest['origins'])}, {backtest['horizon_weeks']} weeks each, on history only. "
        f"MASE is scaled by the one-week naive error before each origin; sMAPE is in percent. The selected forecasts "
        f"choose each category's method from the earlier origins and are judged on the later ones "
        f"({units['categories_evaluated']} categories, {units['origins_evaluated']} origins).",
        "",
        "| Forecast | MASE | sMAPE |",
        "|---|---|---|",
        *[f"| {label} | {mase} | {smape} |" for label, mase, smape in backtest_rows(units, facts["methods"])],
        "",
        "Chosen for the forecast: " + ", ".join(f"{METHOD_LABELS[m]} {n}" for m, n in units["chosen"].items()) + ".",
        "The selected forecasts "
        + ("beat" if units["beats_seasonal_naive"] else "do NOT beat")
        + " the seasonal naive on overall MASE.",
        "",
        "## Limits",
        "- A category's first weeks, a new product line or a price change move it away from its history; the "
        "backtest says how far each method was off before, not how far it will be.",
        "- Intervals of the LightGBM forecasts come from its backtest errors, pooled across categories and scaled to "
        "each; those of the baselines are statsforecast's.",
        "- Units forecasts are not capped by stock: a sold-out week reads as low demand.",
    ]
    return "\n".join(lines) + "\n"
