"""Server-side SVG charts: well-formed, one line per series, escaped text, bounded bars."""

import xml.etree.ElementTree as ET
from datetime import date, timedelta

import pytest

from ml.charts import calibration_chart, forecast_chart, gains_chart, importance_chart, roc_chart

SVG = "{http://www.w3.org/2000/svg}"
HOSTILE = "<script>alert(1)</script>"
CURVE = [[0.0, 0.0], [0.1, 0.5], [0.4, 0.8], [1.0, 1.0]]


def parsed(svg: str) -> ET.Element:
    return ET.fromstring(svg)


def texts(root: ET.Element) -> list[str]:
    return [element.text for element in root.iter(f"{SVG}text")]


def calibration(*pairs: tuple[float, float]) -> list[dict]:
    return [
        {"bin": i, "lower": 0.0, "upper": 1.0, "customers": 10, "mean_predicted": mean, "observed_rate": rate}
        for i, (mean, rate) in enumerate(pairs, start=1)
    ]


@pytest.mark.parametrize("draw", [roc_chart, gains_chart])
def test_curve_charts_draw_one_polyline_per_series_and_a_dashed_diagonal(draw):
    root = parsed(draw({"LightGBM": CURVE, "Logistic": CURVE, "Recency": CURVE}))

    polylines = root.findall(f"{SVG}polyline")
    dashed = [line for line in root.findall(f"{SVG}line") if line.get("stroke-dasharray")]
    assert len(polylines) == 3
    assert len({line.get("stroke") for line in polylines}) == 3
    assert len(dashed) == 1
    assert polylines[0].get("points") == "52.0,196.0 81.2,105.0 168.8,50.4 344.0,14.0"


@pytest.mark.parametrize("draw", [roc_chart, gains_chart])
def test_curve_charts_are_labelled_images_with_unit_ticks_and_a_legend(draw):
    root = parsed(draw({"LightGBM": CURVE}))

    assert root.tag == f"{SVG}svg"
    assert root.get("role") == "img"
    assert root.get("aria-label") == root.find(f"{SVG}title").text
    assert root.get("width") == "360"
    assert texts(root).count("0") == 2
    assert texts(root).count("1") == 2
    assert "LightGBM" in texts(root)


def test_roc_chart_axes_are_named():
    root = parsed(roc_chart({"LightGBM": CURVE}))

    assert {"False positive rate", "True positive rate"} <= set(texts(root))
    assert root.find(f"{SVG}title").text == "ROC curve: LightGBM"


def test_a_hostile_series_name_is_escaped():
    svg = roc_chart({HOSTILE: CURVE})

    root = parsed(svg)
    assert "<script>" not in svg
    assert root.findall(f".//{SVG}script") == []
    assert root.find(f"{SVG}title").text == f"ROC curve: {HOSTILE}"
    assert root.get("aria-label") == f"ROC curve: {HOSTILE}"


def test_calibration_chart_scales_axes_to_the_data():
    # Given predictions and rates no higher than 0.08, the axes end at 0.1 rather than 1
    root = parsed(calibration_chart({"LightGBM": calibration((0.01, 0.02), (0.05, 0.04), (0.08, 0.07))}))

    assert texts(root).count("0.1") == 2
    assert "1" not in texts(root)
    assert len(root.findall(f"{SVG}polyline")) == 1
    assert len(root.findall(f"{SVG}circle")) == 3


def test_calibration_chart_draws_each_table_and_the_diagonal():
    tables = {"LightGBM": calibration((0.2, 0.1), (0.6, 0.7)), "Logistic": calibration((0.3, 0.4))}

    root = parsed(calibration_chart(tables))

    assert len(root.findall(f"{SVG}polyline")) == 2
    assert len(root.findall(f"{SVG}circle")) == 3
    assert len([line for line in root.findall(f"{SVG}line") if line.get("stroke-dasharray")]) == 1
    assert texts(root).count("1") == 2


def test_more_series_than_colours_are_refused():
    with pytest.raises(ValueError, match="at most 4 curves"):
        roc_chart({f"model {i}": CURVE for i in range(5)})


def test_importance_chart_shows_the_largest_features_first_up_to_the_limit():
    importances = [(f"feature_{i}", float(i)) for i in range(20)]

    root = parsed(importance_chart(importances, limit=5))

    bars = [rect for rect in root.findall(f"{SVG}rect") if rect.find(f"{SVG}title") is not None]
    assert [bar.find(f"{SVG}title").text for bar in bars] == [
        "feature_19: 19",
        "feature_18: 18",
        "feature_17: 17",
        "feature_16: 16",
        "feature_15: 15",
    ]
    assert [float(bar.get("width")) for bar in bars] == [193.8, 183.6, 173.4, 163.2, 153.0]
    assert [text for text in texts(root) if text.startswith("feature_")] == [f"feature_{i}" for i in range(19, 14, -1)]


def test_importance_chart_escapes_feature_names_and_shortens_long_ones():
    svg = importance_chart([(HOSTILE, 2.0), ("days_since_last_order_in_the_garden_category", 1.0)])

    root = parsed(svg)
    assert "<script>" not in svg
    assert HOSTILE[:21] + "…" in texts(root)
    assert "days_since_last_order…" in texts(root)
    assert root.get("role") == "img"


def test_forecast_chart_draws_history_then_the_forecast_over_its_interval():
    history = [(date(2026, 1, 5) + timedelta(weeks=k), float(10 + k)) for k in range(6)]
    forecast = [(date(2026, 2, 16) + timedelta(weeks=k), 16.0, 12.0, 20.0) for k in range(3)]

    svg = forecast_chart("Units per week of <books>", "Units", history, forecast, "Forecast (LightGBM)", "80% interval")

    root = ET.fromstring(svg)
    assert root.get("aria-label") == "Units per week of <books>"
    assert root.get("width") == "720"
    lines = root.findall("{http://www.w3.org/2000/svg}polyline")
    assert [len(line.get("points").split()) for line in lines] == [6, 4]  # the forecast starts at the last week
    band = root.find("{http://www.w3.org/2000/svg}polygon").get("points").split()
    assert len(band) == 6  # the interval's upper edge out, its lower edge back
    labels = [text.text for text in root.iter("{http://www.w3.org/2000/svg}text")]
    assert "2026-01-05" in labels and "2026-03-02" in labels
    assert "&lt;books&gt;" in svg and "<books>" not in svg


def test_forecast_chart_without_weeks_says_so():
    svg = forecast_chart("Units", "Units", [], [], "Forecast", "80% interval")

    assert "No weeks to show." in svg
