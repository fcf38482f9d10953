"""The issue's acceptance bar: on the demo store, the selected forecasts beat the seasonal naive on overall MASE.

The store is the one `make demo` generates (its customers, days and seed), ending on a fixed day;
it is generated once for the module and forecast through the command a user runs.
"""

from datetime import date
from io import StringIO

import pytest
from django.conf import settings
from django.core.management import call_command

from marketing.demo.catalogue import CATEGORIES
from marketing.demo.store import generate_store
from marketing.management.commands.demo import DEMO_DAYS, DEMO_SEED
from marketing.models import Customer, Product
from ml.forecast import ALL_SERIES
from ml.models import SALES_FORECAST, ModelStatus, ModelVersion

END = date(2026, 12, 4)
DEMO_CUSTOMERS = 5_000

pytestmark = [
    pytest.mark.skipif(
        "sqlite" in settings.DATABASES["default"]["ENGINE"],
        reason="the demo-store forecast check runs once, on PostgreSQL; the SQLite run checks the weekly queries",
    ),
    # Marked, so that the test database is set up even when this module runs alone.
    pytest.mark.django_db,
]


@pytest.fixture(scope="module")
def trained(django_db_setup, django_db_blocker):
    """Generate the demo store, forecast it with --activate; remove it all afterwards."""
    with django_db_blocker.unblock():
        generate_store(customers=DEMO_CUSTOMERS, days=DEMO_DAYS, seed=DEMO_SEED, end_date=END, replace=True)
        output = StringIO()
        call_command("train_forecast", "--as-of", END.isoformat(), "--activate", stdout=output)
        yield ModelVersion.objects.get(task=SALES_FORECAST), output.getvalue()
        ModelVersion.objects.all().delete()
        Customer.objects.all().delete()
        Product.objects.all().delete()


@pytest.fixture
def version(trained, django_db_blocker):
    with django_db_blocker.unblock():
        yield trained[0]


def test_the_selected_forecasts_beat_the_seasonal_naive_on_overall_mase(version):
    overall = version.metrics["units"]["overall"]
    methods = overall["methods"]

    assert overall["categories_evaluated"] == len(CATEGORIES)
    assert overall["origins_evaluated"] == 3
    assert methods["selected"]["mase"] < methods["seasonal_naive"]["mase"]
    assert methods["selected"]["smape"] < methods["seasonal_naive"]["smape"]
    assert version.beats_baselines is True
    assert version.status == ModelStatus.ACTIVE


def test_the_backtest_has_four_origins_of_eight_weeks_on_history_only(version):
    backtest = version.metrics["backtest"]

    assert backtest["origins"] == ["2026-04-20", "2026-06-15", "2026-08-10", "2026-10-05"]
    assert backtest["horizon_weeks"] == 8
    assert version.metrics["data"]["end_week"] == "2026-11-30"  # the last origin's window ends there


def test_every_category_and_the_whole_shop_are_forecast_with_the_method_they_chose(version):
    series = version.metrics["units"]["series"]

    assert set(series) == {ALL_SERIES, *(category.name for category in CATEGORIES)}
    for name, row in series.items():
        assert row["method"] in ("seasonal_naive", "auto_ets", "model"), name
        assert version.forecasts.filter(category=name, method=row["method"]).count() == 8


def test_the_command_prints_the_backtest_table(trained):
    _, output = trained

    assert "  units            weeks  chosen         MASE" in output
    for category in CATEGORIES:
        assert f"\n  {category.name:<16}" in output
    assert "units overall MASE over 8 categories and the last 3 origins: Selected per category" in output
    assert output.endswith("sales_forecast v1 (active) beats the seasonal naive on overall MASE; status active.\n")
