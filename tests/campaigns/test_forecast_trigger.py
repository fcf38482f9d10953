"""Campaigns react to sales forecasts: `forecast_changed` enrolls a slowing category's likely buyers, read after
a cursor of forecast versions, and a branch step follows a category's forecast trend."""

from datetime import UTC, date, datetime, timedelta

import pytest

from campaigns.engine import CampaignError, advance, launch, poll_triggers
from campaigns.models import Campaign, Enrollment, Reentry, Step
from campaigns.simulation import simulate
from campaigns.steps import StepError, steps
from campaigns.triggers import TriggerError, triggers
from marketing.models import Customer, OrderLine
from ml.buyers import AFFINITY_PRIOR_LINES, likely_buyers
from ml.forecast_registry import ForecastTrainingOptions, activate_forecast, roll_back_forecast, train_forecast
from ml.forecast_trends import category_trend
from ml.models import PURCHASE_PROPENSITY, Forecast, ModelStatus, ModelVersion, Score
from tests.factories import CustomerFactory
from tests.ml.forecast_store import write_weekly_sales

pytestmark = pytest.mark.django_db

FIRST_MONDAY = date(2025, 1, 6)
WEEKS = 60
AS_OF = datetime(2026, 3, 2, tzinfo=UTC)
NOW = AS_OF + timedelta(hours=10)
CONFIG = {"category": "books", "weeks": 4, "direction": "below", "percent": 20, "compared_to": "last_year"}


@pytest.fixture
def people() -> dict[str, Customer]:
    """Ann buys only books, Ben books and toys, Cid only toys, Dee never ordered; each has a propensity score."""
    named = {name: CustomerFactory(external_id=name) for name in ("ann", "ben", "cid", "dee")}
    propensity = ModelVersion.objects.create(
        task=PURCHASE_PROPENSITY, version=1, status=ModelStatus.ACTIVE, activated_at=AS_OF
    )
    for name, probability in {"ann": 0.6, "ben": 0.9, "cid": 0.95, "dee": 0.5}.items():
        Score.objects.create(
            customer=named[name], model_version=propensity, probability=probability, decile=1, scored_at=AS_OF
        )
    return named


def books_in_decline(people: dict[str, Customer]) -> None:
    """Books sold about 30 a week last year and fell to about 8; toys sold about 10 a week throughout."""
    wobble = [week % 3 for week in range(WEEKS)]
    write_weekly_sales(
        {
            "books": [30 + wobble[week] if week < 30 else max(8, 30 - (week - 30)) + wobble[week] for week in range(WEEKS)],
            "toys": [10 + wobble[week] for week in range(WEEKS)],
        },
        FIRST_MONDAY,
        buyers={"books": [people["ann"], people["ann"], people["ben"]], "toys": [people["ben"], people["cid"]]},
    )


def forecast(weeks: int = 8):
    return activate_forecast(train_forecast(ForecastTrainingOptions(as_of=AS_OF, weeks=weeks)), force=True)


def campaign(config: dict, reentry: str = Reentry.ONCE) -> Campaign:
    created = Campaign.objects.create(
        name="Push slowing categories", trigger_type="forecast_changed", trigger_config=config, reentry=reentry
    )
    Step.objects.create(campaign=created, position=1, key="done", type="exit")
    return launch(created, NOW - timedelta(hours=1))


def enrolled() -> dict[str, dict]:
    return {
        external_id: data
        for external_id, data in Enrollment.objects.values_list("customer__external_id", "trigger_data")
    }


def test_the_forecast_of_books_is_far_below_last_year_and_toys_are_steady(people):
    books_in_decline(people)

    version = forecast()

    books, toys = category_trend(version, "books", 4), category_trend(version, "toys", 4)
    assert books.last_year_units == 4 * 30 + (2 + 0 + 1 + 2)  # weeks 8 to 11 of last year, with their wobble
    assert books.change_vs_last_year < -50
    assert abs(toys.change_vs_last_year) < 15


def test_forecast_changed_enrolls_the_declining_categorys_likeliest_buyers(people):
    books_in_decline(people)
    version = forecast()
    launched = campaign({**CONFIG, "likely_buyers": 2})

    count = poll_triggers(NOW)

    assert count == 2
    assert set(enrolled()) == {"ann", "ben"}
    ann = enrolled()["ann"]
    trend = category_trend(version, "books", 4)
    assert ann["category"] == "books"
    assert ann["forecast_version"] == version.pk
    assert ann["change_percent"] == trend.change_vs_last_year
    assert ann["weeks"] == ["2026-03-02", "2026-03-09", "2026-03-16", "2026-03-23"]
    assert ann["probability"] == 0.6
    assert ann["ranked_by"] == "propensity x affinity"
    launched.refresh_from_db()
    assert launched.trigger_cursor == version.pk


def test_likely_buyers_combine_propensity_and_smoothed_category_affinity(people):
    books_in_decline(people)
    lines = {
        name: (
            OrderLine.objects.filter(order__customer=customer, product__category="books").count(),
            OrderLine.objects.filter(order__customer=customer).count(),
        )
        for name, customer in people.items()
    }
    share = OrderLine.objects.filter(product__category="books").count() / OrderLine.objects.count()
    probability = {"ann": 0.6, "ben": 0.9, "cid": 0.95, "dee": 0.5}
    expected = {
        name: probability[name] * (books + AFFINITY_PRIOR_LINES * share) / (total + AFFINITY_PRIOR_LINES)
        for name, (books, total) in lines.items()
    }

    found = likely_buyers("books", NOW, limit=10)

    by_id = {customer.pk: name for name, customer in people.items()}
    assert [by_id[buyer.customer_id] for buyer in found.buyers] == ["ann", "ben", "dee", "cid"]
    for buyer in found.buyers:
        assert buyer.likelihood == pytest.approx(expected[by_id[buyer.customer_id]], abs=1e-6)
    assert lines["dee"] == (0, 0)


def test_a_likelihood_floor_leaves_out_unlikely_buyers(people):
    books_in_decline(people)
    forecast()
    campaign({**CONFIG, "likely_buyers": 10, "min_likelihood": 0.3})

    poll_triggers(NOW)

    assert set(enrolled()) == {"ann", "ben", "dee"}


def test_without_a_category_only_the_categories_that_meet_the_condition_fire(people):
    books_in_decline(people)
    forecast()
    config = {key: value for key, value in CONFIG.items() if key != "category"}
    campaign({**config, "likely_buyers": 1})

    poll_triggers(NOW)

    # The whole shop fell too; its likeliest buyer is Cid, toys' buyer, pushed the shop, not toys.
    assert {name: data["category"] for name, data in enrolled().items()} == {"ann": "books", "cid": "__all__"}


def test_a_steady_category_enrolls_no_one(people):
    books_in_decline(people)
    forecast()
    launched = campaign({**CONFIG, "category": "toys"})

    assert poll_triggers(NOW) == 0
    assert Enrollment.objects.count() == 0
    launched.refresh_from_db()
    assert launched.trigger_cursor is not None  # the forecast was looked at, once


def test_each_forecast_version_is_looked_at_once_and_rollbacks_fire_nothing(people):
    books_in_decline(people)
    first = forecast()
    launched = campaign({**CONFIG, "likely_buyers": 2}, reentry=Reentry.ALWAYS)
    assert poll_triggers(NOW) == 2
    Enrollment.objects.update(state="completed")  # they went through; ALWAYS lets them in again

    assert poll_triggers(NOW + timedelta(minutes=1)) == 0  # same forecast: nothing new

    second = forecast(weeks=4)
    assert poll_triggers(NOW + timedelta(minutes=2)) == 2
    launched.refresh_from_db()
    assert launched.trigger_cursor == second.pk
    Enrollment.objects.update(state="completed")

    roll_back_forecast()
    assert ModelVersion.objects.get(pk=first.pk).status == ModelStatus.ACTIVE
    assert poll_triggers(NOW + timedelta(minutes=3)) == 0
    launched.refresh_from_db()
    assert launched.trigger_cursor == second.pk


def test_without_an_active_forecast_nothing_fires_and_the_cursor_waits(people):
    books_in_decline(people)
    launched = campaign(CONFIG)

    assert poll_triggers(NOW) == 0
    launched.refresh_from_db()
    assert launched.trigger_cursor is None


def test_compared_to_the_previous_forecast(people):
    books_in_decline(people)
    previous = forecast()
    Forecast.objects.filter(model_version=previous, category="books").update(units=100.0)  # it expected far more
    forecast()
    campaign({**CONFIG, "compared_to": "previous_forecast", "likely_buyers": 1})

    poll_triggers(NOW)

    assert set(enrolled()) == {"ann"}
    assert enrolled()["ann"]["compared_to"] == "previous_forecast"
    assert enrolled()["ann"]["change_percent"] < -50


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({"percent": 10, "weeks": 0}, "weeks"),
        ({"percent": 10, "weeks": 27}, "weeks"),
        ({"percent": 0}, "percent"),
        ({"percent": 150, "direction": "below"}, "percent"),
        ({"percent": "10"}, "percent"),
        ({"percent": 10, "direction": "sideways"}, "direction"),
        ({"percent": 10, "compared_to": "last_week"}, "compared_to"),
        ({"percent": 10, "category": ""}, "category"),
        ({"percent": 10, "likely_buyers": 0}, "likely_buyers"),
        ({"percent": 10, "min_likelihood": 1.5}, "min_likelihood"),
        ({"percent": 10, "colour": "red"}, "colour"),
    ],
)
def test_a_bad_config_names_the_field_at_fault(config, field):
    with pytest.raises(TriggerError) as raised:
        triggers.get("forecast_changed").clean(config)

    assert raised.value.field == field


def test_clean_fills_the_defaults():
    assert triggers.get("forecast_changed").clean({"percent": 15}) == {
        "weeks": 4,
        "direction": "below",
        "percent": 15.0,
        "compared_to": "last_year",
        "likely_buyers": 1000,
        "min_likelihood": 0.0,
    }


def test_a_campaign_with_a_bad_forecast_condition_is_refused_at_launch(db):
    created = Campaign.objects.create(
        name="Broken", trigger_type="forecast_changed", trigger_config={"percent": 10, "direction": "down"}
    )
    Step.objects.create(campaign=created, position=1, key="done", type="exit")

    with pytest.raises(CampaignError) as raised:
        launch(created, NOW)

    assert raised.value.field == "trigger_config.direction"


# --- The branch condition -----------------------------------------------------------------------


def branching_campaign(condition: dict) -> Campaign:
    created = Campaign.objects.create(
        name="Branch on trend", trigger_type="forecast_changed", trigger_config={**CONFIG, "likely_buyers": 1}
    )
    Step.objects.create(
        campaign=created, position=1, key="check", type="branch",
        config={"forecast": condition, "then": "falling", "else": "steady"},
    )  # fmt: skip
    Step.objects.create(
        campaign=created, position=2, key="falling", type="update_attribute",
        config={"field": "attributes.pushed", "value": "falling"},
    )  # fmt: skip
    Step.objects.create(campaign=created, position=3, key="falling-done", type="exit")
    Step.objects.create(
        campaign=created, position=4, key="steady", type="update_attribute",
        config={"field": "attributes.pushed", "value": "steady"},
    )  # fmt: skip
    return launch(created, NOW - timedelta(hours=1))


@pytest.mark.parametrize(
    ("condition", "branch"),
    [
        ({"weeks": 4, "direction": "below", "percent": 20}, "falling"),  # the enrollment's category: books
        ({"category": "toys", "weeks": 4, "direction": "below", "percent": 20}, "steady"),
        ({"weeks": 4, "direction": "above", "percent": 5}, "steady"),
    ],
)
def test_the_branch_follows_the_categorys_forecast_trend(people, condition, branch):
    books_in_decline(people)
    forecast()
    branching_campaign(condition)
    poll_triggers(NOW)
    enrollment = Enrollment.objects.get()

    report = advance([enrollment.pk], NOW)

    assert report.outcomes[0].startswith("check: forecast of ")
    assert report.outcomes[0].endswith(": yes" if branch == "falling" else ": no")
    assert report.outcomes[1] == f"{branch}: set attributes.pushed"
    assert Customer.objects.get(pk=enrollment.customer_id).attributes == {"pushed": branch}


def test_the_branch_without_an_active_forecast_takes_the_else_branch(people):
    books_in_decline(people)
    forecast()
    branching_campaign({"category": "books", "weeks": 4, "direction": "below", "percent": 20})
    poll_triggers(NOW)
    ModelVersion.objects.filter(task="sales_forecast").update(status=ModelStatus.RETIRED)

    report = advance([Enrollment.objects.get().pk], NOW)

    assert report.outcomes[0] == "check: no active sales forecast: no"


@pytest.mark.parametrize(
    ("condition", "field"),
    [({"percent": 10, "weeks": "four"}, "forecast.weeks"), ("books", "forecast.category"), ({}, "forecast.percent")],
)
def test_a_bad_branch_condition_names_the_field(condition, field):
    with pytest.raises(StepError) as raised:
        steps.get("branch").clean({"forecast": condition, "then": "a", "else": "b"}, {"a", "b"})

    assert raised.value.field == field


def test_a_simulation_replays_the_day_the_forecast_was_activated(people):
    books_in_decline(people)
    version = forecast()
    ModelVersion.objects.filter(pk=version.pk).update(activated_at=NOW - timedelta(days=3))
    draft = Campaign.objects.create(
        name="Push books", trigger_type="forecast_changed", trigger_config={**CONFIG, "likely_buyers": 2}
    )
    Step.objects.create(campaign=draft, position=1, key="done", type="exit")

    report = simulate(draft, days=7, now=NOW)

    assert (report.fired, report.entered) == (2, 2)
    assert Enrollment.objects.count() == 0  # nothing of a simulation stays
