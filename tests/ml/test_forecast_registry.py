"""Forecast versions: numbered in order, activated only when they beat the seasonal naive, rolled back."""

from datetime import UTC, date, datetime

import pytest

from ml.forecast_registry import (
    ForecastTrainingOptions,
    activate_forecast,
    active_forecast,
    roll_back_forecast,
    train_forecast,
)
from ml.models import PURCHASE_PROPENSITY, SALES_FORECAST, Forecast, ModelStatus, ModelVersion
from ml.registry import ActivationRefused
from tests.ml.forecast_store import write_weekly_sales

pytestmark = pytest.mark.django_db

FIRST_MONDAY = date(2025, 1, 6)
AS_OF = datetime(2026, 3, 2, tzinfo=UTC)


@pytest.fixture
def store():
    write_weekly_sales(
        {"books": [20 - week // 5 for week in range(60)], "toys": [8 + week % 3 for week in range(60)]}, FIRST_MONDAY
    )


def trained(weeks: int = 8, **flags) -> ModelVersion:
    return train_forecast(ForecastTrainingOptions(as_of=AS_OF, weeks=weeks, **flags))


def test_versions_number_on_and_every_forecast_row_names_its_version(store):
    first, second = trained(), trained(weeks=4)

    assert (first.version, second.version) == (1, 2)
    assert (first.task, second.task) == (SALES_FORECAST, SALES_FORECAST)
    assert Forecast.objects.filter(model_version=first).count() == 3 * 8
    assert Forecast.objects.filter(model_version=second).count() == 3 * 4
    assert first.training_to == datetime(2026, 3, 2, tzinfo=UTC)
    assert first.training_from == datetime(2025, 1, 6, tzinfo=UTC)


def test_a_version_that_does_not_beat_the_seasonal_naive_is_refused_unless_forced(store):
    version = trained()
    ModelVersion.objects.filter(pk=version.pk).update(beats_baselines=False)
    version.refresh_from_db()
    overall = version.metrics["units"]["overall"]["methods"]

    with pytest.raises(ActivationRefused) as refused:
        activate_forecast(version)

    assert str(refused.value) == (
        f"{version} does not beat the seasonal naive on overall MASE in the backtest (selected forecasts "
        f"{overall['selected']['mase']} vs seasonal naive {overall['seasonal_naive']['mase']}); "
        "activate it with force to override"
    )
    version.refresh_from_db()
    assert version.status == ModelStatus.CANDIDATE
    assert active_forecast() is None
    assert activate_forecast(version, force=True).status == ModelStatus.ACTIVE


def test_activating_retires_the_previous_forecast_and_rollback_restores_it(store):
    first = activate_forecast(trained(), force=True)
    second = activate_forecast(trained(weeks=4), force=True)
    first.refresh_from_db()

    assert (first.status, second.status) == (ModelStatus.RETIRED, ModelStatus.ACTIVE)

    restored = roll_back_forecast()

    second.refresh_from_db()
    assert restored.pk == first.pk
    assert (restored.status, second.status) == (ModelStatus.ACTIVE, ModelStatus.RETIRED)
    assert active_forecast().pk == first.pk
    assert Forecast.objects.filter(model_version=active_forecast()).count() == 3 * 8


def test_rollback_without_an_earlier_forecast_is_refused(store):
    activate_forecast(trained(), force=True)

    with pytest.raises(ActivationRefused) as refused:
        roll_back_forecast()

    assert str(refused.value) == "no earlier active version of sales_forecast to roll back to"


def test_forecast_versions_leave_the_propensity_model_alone(store, make_version, booster):
    propensity = make_version(booster, version=1, status=ModelStatus.ACTIVE)

    activate_forecast(trained(), force=True)

    propensity.refresh_from_db()
    assert propensity.status == ModelStatus.ACTIVE
    assert ModelVersion.objects.active(PURCHASE_PROPENSITY).get().pk == propensity.pk


def test_a_propensity_version_is_not_activated_as_a_forecast(make_version, booster):
    propensity = make_version(booster, version=1)

    with pytest.raises(ActivationRefused) as refused:
        activate_forecast(propensity)

    assert str(refused.value) == "purchase_propensity v1 (candidate) is not a sales forecast"
