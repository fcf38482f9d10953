"""train_forecast and export_forecast: the backtest table, refusals with their minimums, the CSV and its formula guard."""

import csv
import io
import json
from datetime import date, timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from ml.forecast import ALL_SERIES
from ml.models import SALES_FORECAST, Forecast, ModelStatus, ModelVersion, WeeklySales
from tests.ml.forecast_store import write_weekly_sales

pytestmark = pytest.mark.django_db

FIRST_MONDAY = date(2025, 1, 6)
WEEKS = 60
AS_OF = (FIRST_MONDAY + timedelta(weeks=WEEKS)).isoformat()  # 2026-03-02, a Monday


def declining_and_steady_store(extra: dict[str, list[int]] | None = None) -> None:
    write_weekly_sales(
        {
            "books": [20 - week // 5 for week in range(WEEKS)],
            "toys": [10 + (week % 52 in (46, 47, 48)) * 6 for week in range(WEEKS)],
            **(extra or {}),
        },
        FIRST_MONDAY,
    )


def train(*arguments: str) -> str:
    out = StringIO()
    call_command("train_forecast", "--as-of", AS_OF, *arguments, stdout=out)
    return out.getvalue()


def test_train_forecast_prints_the_data_it_read_and_the_backtest_table():
    declining_and_steady_store()

    output = train()

    version = ModelVersion.objects.get(task=SALES_FORECAST)
    lines = output.splitlines()
    assert lines[:4] == [
        "Trained sales_forecast v1 on 60 weeks of sales (2025-01-06 to the week before 2026-03-02), forecasting 8 "
        "weeks from 2026-03-02.",
        f"  {60 * 10 + 6 * 3 + sum(20 - week // 5 for week in range(60)):,} orders in 2 categories; left out: "
        "0 cancelled (0.00), 0 refunded (0.00).",
        "  0 orders without lines (0.00) count towards the shop's revenue, not towards units or any category.",
        "  Backtest on history only: origins 2025-07-21, 2025-09-15, 2025-11-10, 2026-01-05, 8 weeks each.",
    ]
    assert version.metrics["backtest"]["origins"] == ["2025-07-21", "2025-09-15", "2025-11-10", "2026-01-05"]
    rows = {line.split()[0]: line for line in lines if line.startswith(("  __all__", "  books", "  toys"))}
    assert set(rows) == {"__all__", "books", "toys"}
    series = version.metrics["units"]["series"]
    for name, line in rows.items():
        figures = series[name]["figures"]
        assert f"{figures['seasonal_naive']['mase']:.3f}" in line
        assert f"{figures['auto_ets']['mase']:.3f}" in line
        assert line.split()[1] == "60"
    overall = version.metrics["units"]["overall"]["methods"]
    assert (
        f"  units overall MASE over 2 categories and the last 3 origins: Selected per category "
        f"{overall['selected']['mase']:.3f}; Seasonal naive {overall['seasonal_naive']['mase']:.3f}; "
        f"AutoETS {overall['auto_ets']['mase']:.3f}; LightGBM {overall['model']['mase']:.3f}"
    ) in lines
    verdict = "beats" if version.beats_baselines else "does NOT beat"
    assert lines[-1] == f"sales_forecast v1 (candidate) {verdict} the seasonal naive on overall MASE; status candidate."
    assert version.status == ModelStatus.CANDIDATE


def test_the_version_stores_every_forecast_week_and_the_weeks_it_learned_from():
    declining_and_steady_store()

    train()

    version = ModelVersion.objects.get(task=SALES_FORECAST)
    weeks = [date(2026, 3, 2) + timedelta(weeks=k) for k in range(8)]
    assert sorted(set(Forecast.objects.filter(model_version=version).values_list("week_start", flat=True))) == weeks
    assert Forecast.objects.filter(model_version=version).count() == 3 * 8
    assert WeeklySales.objects.filter(model_version=version).count() == 3 * 60
    assert WeeklySales.objects.get(model_version=version, category="books", week_start=FIRST_MONDAY).units == 20.0
    assert version.horizon_days == 56
    assert version.params["horizon_weeks"] == 8
    assert set(version.params) >= {"lightgbm", "boost_rounds", "origins", "level", "time_zone"}
    assert set(json.loads(version.artifact)) == {"units", "revenue"}
    assert version.card.startswith("# Sales forecast, version 1\n")


def test_a_store_with_under_twelve_weeks_is_refused_with_the_minimum_and_nothing_is_stored():
    write_weekly_sales({"books": [5] * 11}, FIRST_MONDAY)

    with pytest.raises(CommandError) as refused:
        call_command("train_forecast", "--as-of", (FIRST_MONDAY + timedelta(weeks=11)).isoformat())

    assert str(refused.value) == (
        "not enough history to forecast:\n- the store has 11 complete weeks of orders; at least 12 are needed"
    )
    assert ModelVersion.objects.count() == 0
    assert Forecast.objects.count() == 0


def test_a_store_without_orders_is_refused_with_the_minimum():
    with pytest.raises(CommandError) as refused:
        call_command("train_forecast", "--as-of", AS_OF)

    assert str(refused.value) == (
        "not enough history to forecast:\n- the store has no kept orders before 2026-03-02; at least 12 complete "
        "weeks of orders are needed"
    )


@pytest.mark.parametrize("weeks", ["0", "27"])
def test_weeks_outside_the_horizon_are_refused(weeks):
    with pytest.raises(CommandError) as refused:
        call_command("train_forecast", "--as-of", AS_OF, "--weeks", weeks)

    assert str(refused.value) == f"--weeks must be a whole number from 1 to 26, not {weeks}"


def test_a_longer_horizon_forecasts_that_many_weeks():
    declining_and_steady_store()

    train("--weeks", "12")

    version = ModelVersion.objects.get(task=SALES_FORECAST)
    assert Forecast.objects.filter(model_version=version, category="books").count() == 12
    assert version.metrics["backtest"]["horizon_weeks"] == 12


def test_activate_refuses_a_forecast_that_does_not_beat_the_seasonal_naive():
    # Every year repeats exactly: nothing can beat last year's same week.
    pattern = [10 + (week * 7) % 13 for week in range(52)]
    write_weekly_sales({"books": [pattern[week % 52] for week in range(110)]}, FIRST_MONDAY)

    with pytest.raises(CommandError) as refused:
        call_command("train_forecast", "--as-of", (FIRST_MONDAY + timedelta(weeks=110)).isoformat(), "--activate")

    assert str(refused.value) == (
        "sales_forecast v1 (candidate) does not beat the seasonal naive on overall MASE in the backtest (selected "
        "forecasts 0.0 vs seasonal naive 0.0); activate it with force to override; it stays a candidate"
    )
    assert ModelVersion.objects.get(task=SALES_FORECAST).status == ModelStatus.CANDIDATE


def test_activate_with_force_activates_it_anyway():
    pattern = [10 + (week * 7) % 13 for week in range(52)]
    write_weekly_sales({"books": [pattern[week % 52] for week in range(110)]}, FIRST_MONDAY)

    out = StringIO()
    call_command(
        "train_forecast", "--as-of", (FIRST_MONDAY + timedelta(weeks=110)).isoformat(), "--activate", "--force", stdout=out
    )

    assert out.getvalue().splitlines()[-1] == (
        "sales_forecast v1 (active) does NOT beat the seasonal naive on overall MASE; status active."
    )


def export(path: str = "-") -> str:
    out = StringIO()
    call_command("export_forecast", path, stdout=out)
    return out.getvalue()


def test_export_writes_every_series_and_week_of_the_active_forecast():
    declining_and_steady_store()
    train("--activate", "--force")
    version = ModelVersion.objects.get(task=SALES_FORECAST)

    rows = list(csv.reader(io.StringIO(export())))

    assert rows[0] == ["category", "week_start", "units", "revenue", "units_low", "units_high"]
    assert len(rows) == 1 + 3 * 8
    assert [row[0] for row in rows[1::8]] == [ALL_SERIES, "books", "toys"]
    assert [row[1] for row in rows[1:9]] == [(date(2026, 3, 2) + timedelta(weeks=k)).isoformat() for k in range(8)]
    stored = Forecast.objects.get(model_version=version, category="books", week_start=date(2026, 3, 2))
    assert rows[9] == [
        "books",
        "2026-03-02",
        f"{stored.units:.2f}",
        f"{stored.revenue:.2f}",
        f"{stored.units_low:.2f}",
        f"{stored.units_high:.2f}",
    ]
    for row in rows[1:]:
        assert float(row[4]) <= float(row[2]) <= float(row[5])


def test_export_to_a_file_says_how_many_weeks(tmp_path):
    declining_and_steady_store()
    train("--activate", "--force")
    path = tmp_path / "forecast.csv"

    message = export(str(path))

    assert message == f"Wrote 24 forecast weeks of sales_forecast v1 (active) to {path}.\n"
    assert path.read_text(encoding="utf-8").startswith("category,week_start,units,revenue,units_low,units_high\n")


def test_export_neutralises_category_names_a_spreadsheet_would_run_and_keeps_numbers():
    declining_and_steady_store({"=HYPERLINK(1)": [3] * WEEKS, "-sale": [2] * WEEKS, "@home": [4] * WEEKS})
    train("--activate", "--force")

    rows = list(csv.reader(io.StringIO(export())))

    categories = [row[0] for row in rows[1::8]]
    assert categories == [ALL_SERIES, "'-sale", "'=HYPERLINK(1)", "'@home", "books", "toys"]
    for row in rows[1:]:
        assert all(cell[0].isdigit() for cell in row[2:])  # numbers are never quoted or prefixed


def test_export_without_an_active_forecast_is_refused(tmp_path):
    with pytest.raises(CommandError) as refused:
        call_command("export_forecast", str(tmp_path / "forecast.csv"))

    assert str(refused.value) == "no active sales forecast: train one with train_forecast --activate"
    assert not (tmp_path / "forecast.csv").exists()


def test_export_to_a_folder_that_does_not_exist_is_refused(tmp_path):
    declining_and_steady_store()
    train("--activate", "--force")
    path = tmp_path / "missing" / "forecast.csv"

    with pytest.raises(CommandError) as refused:
        call_command("export_forecast", str(path))

    assert str(refused.value) == f"cannot write {path}: No such file or directory"
