"""The sales forecasts in the admin: the home ranks categories against last year, a page per category charts
history, forecast and interval with the backtest figures, and forecast versions are activated and rolled back."""

import re
from datetime import UTC, date, datetime

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.contrib.messages import get_messages
from django.urls import reverse
from pytest_django.asserts import assertContains, assertNotContains

from ml.forecast_registry import ForecastTrainingOptions, activate_forecast, train_forecast
from ml.forecast_trends import category_trends
from ml.models import ModelStatus
from tests.ml.forecast_store import write_weekly_sales

pytestmark = pytest.mark.django_db

FIRST_MONDAY = date(2025, 1, 6)
AS_OF = datetime(2026, 3, 2, tzinfo=UTC)
WEEKS = 60
HOME = reverse("admin:ml_forecast_changelist")


def category_page(name: str) -> str:
    return reverse("admin:ml_forecast_category", args=[name])


@pytest.fixture
def forecast():
    """A store where books sold half as much this winter as last, toys the same, and <b>gifts</b> a little more."""
    wobble = [week % 3 for week in range(WEEKS)]
    write_weekly_sales(
        {
            "books": [20 + wobble[week] if week < 52 else 10 + wobble[week] for week in range(WEEKS)],
            "toys": [10 + wobble[week] for week in range(WEEKS)],
            "<b>gifts</b>": [6 + wobble[week] + (week >= 52) for week in range(WEEKS)],
        },
        FIRST_MONDAY,
    )
    return activate_forecast(train_forecast(ForecastTrainingOptions(as_of=AS_OF, weeks=8)), force=True)


def test_the_home_lists_categories_by_their_change_against_the_same_weeks_last_year(admin_client, forecast):
    response = admin_client.get(HOME)

    assert response.status_code == 200
    table = response.content.decode().split('id="forecast-categories"')[1].split("</table>")[0]
    order = re.findall(r'<a href="[^"]+">([^<]+)</a>', table)
    trends = sorted(category_trends(forecast, 4), key=lambda t: -abs(t.change_vs_last_year))
    assert order == [
        "The whole shop" if trend.category == "__all__" else trend.category.replace("<", "&lt;").replace(">", "&gt;")
        for trend in trends
    ]
    assert order[0] == "books"
    assertContains(response, f'href="{category_page("books")}"')
    assertContains(response, "&lt;b&gt;gifts&lt;/b&gt;")
    assertNotContains(response, "<b>gifts</b>")
    assertContains(response, 'id="forecast-backtest"')
    assertContains(response, "Selected per category")


def test_the_home_without_an_active_forecast_says_how_to_make_one(admin_client, db):
    response = admin_client.get(HOME)

    assertContains(response, "No sales forecast is active.")
    assertContains(response, "train_forecast --activate")


def test_a_category_page_charts_history_forecast_and_interval_with_the_backtest_figures(admin_client, forecast):
    response = admin_client.get(category_page("books"))

    assert response.status_code == 200
    html = response.content.decode()
    assert html.count("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"720\"") == 2  # units and revenue
    assert html.count("<polygon") == 2  # the shaded intervals
    assert html.count("<polyline") == 4  # history and forecast lines
    assert 'aria-label="Units per week of books"' in html
    figures = forecast.metrics["units"]["series"]["books"]
    chosen = {"seasonal_naive": "Seasonal naive", "auto_ets": "AutoETS", "model": "LightGBM"}[figures["method"]]
    assertContains(response, f"<h2>Units: {chosen}</h2>", html=True)
    table = html.split('id="forecast-methods-units"')[1].split("</table>")[0]
    assert re.findall(r"<tr><td>([^<]+)</td>", table) == ["Seasonal naive", "AutoETS", "LightGBM"]
    assert f"{figures['figures']['seasonal_naive']['mase']:.3f}" in table
    assert table.count("<strong>chosen</strong>") == 1
    assert html.count("<tr><td>2026-") == 8  # the forecast by week


def test_a_category_name_with_markup_is_escaped_in_the_page_and_its_chart(admin_client, forecast):
    response = admin_client.get(category_page("<b>gifts</b>"))

    assert response.status_code == 200
    assertNotContains(response, "<b>gifts</b>")
    assertContains(response, "Units per week of &lt;b&gt;gifts&lt;/b&gt;")


def test_the_whole_shop_has_its_page_too(admin_client, forecast):
    response = admin_client.get(category_page("__all__"))

    assertContains(response, "Sales forecast: The whole shop")


def test_an_unknown_category_is_not_found(admin_client, forecast):
    assert admin_client.get(category_page("garden")).status_code == 404


def test_staff_without_the_view_permission_are_refused(client, forecast):
    staff = get_user_model().objects.create_user("viewer", password="secret", is_staff=True)
    client.force_login(staff)

    assert client.get(HOME).status_code == 403
    assert client.get(category_page("books")).status_code == 403

    staff.user_permissions.add(Permission.objects.get(codename="view_forecast"))
    assert client.get(HOME).status_code == 200
    assert client.get(category_page("books")).status_code == 200


def test_anonymous_visitors_are_sent_to_the_login(client, forecast):
    response = client.get(category_page("books"))

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))


def test_the_version_list_shows_selected_and_seasonal_naive_mase(admin_client, forecast):
    response = admin_client.get(reverse("admin:ml_salesforecastversion_changelist"))

    overall = forecast.metrics["units"]["overall"]["methods"]
    assertContains(response, "sales_forecast v1 (active)")
    assertContains(response, f"<td class=\"field-selected_mase\">{overall['selected']['mase']}</td>", html=True)


def test_the_version_page_shows_the_backtest_table_and_card(admin_client, forecast):
    response = admin_client.get(reverse("admin:ml_salesforecastversion_change", args=[forecast.pk]))

    assertContains(response, "# Sales forecast, version 1")
    assertContains(response, "<td>Selected per category</td>", html=True)


def test_the_activate_action_refuses_a_forecast_that_does_not_beat_the_seasonal_naive(admin_client, forecast):
    candidate = train_forecast(ForecastTrainingOptions(as_of=AS_OF, weeks=4))
    candidate.beats_baselines = False
    candidate.save(update_fields=["beats_baselines"])

    response = admin_client.post(
        reverse("admin:ml_salesforecastversion_changelist"),
        {"action": "activate", "_selected_action": [candidate.pk]},
        follow=True,
    )

    messages = [str(message) for message in get_messages(response.wsgi_request)]
    assert len(messages) == 1 and messages[0].startswith("sales_forecast v2 (candidate) does not beat the seasonal naive")
    candidate.refresh_from_db()
    assert candidate.status == ModelStatus.CANDIDATE


def test_the_roll_back_action_reactivates_the_previous_forecast(admin_client, forecast):
    newer = activate_forecast(train_forecast(ForecastTrainingOptions(as_of=AS_OF, weeks=4)), force=True)

    response = admin_client.post(
        reverse("admin:ml_salesforecastversion_changelist"),
        {"action": "roll_back", "_selected_action": [newer.pk]},
        follow=True,
    )

    assert [str(message) for message in get_messages(response.wsgi_request)] == [
        "Rolled back: sales_forecast v1 (active) is active again."
    ]
    forecast.refresh_from_db()
    newer.refresh_from_db()
    assert (forecast.status, newer.status) == (ModelStatus.ACTIVE, ModelStatus.RETIRED)
