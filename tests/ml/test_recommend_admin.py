"""The recommender's and send times' admin pages: figures with their chart, activation earned, one-action rollback."""

import pytest

from ml.models import PRODUCT_RECOMMENDATIONS, SEND_TIMES, ModelStatus, ModelVersion

pytestmark = pytest.mark.django_db

RECOMMENDERS = "/admin/ml/recommenderversion/"
SEND_TIME_PAGE = "/admin/ml/sendtimeversion/"


@pytest.fixture
def staff_client(client, django_user_model):
    client.force_login(django_user_model.objects.create_superuser("ml", "ml@shop.example", "a-long-admin-passphrase"))
    return client


def figures(recall: float) -> dict:
    return {"recall_at_10": recall, "ndcg_at_10": recall / 2, "coverage": 0.5, "customers": 700}


def recommender(number: int, beats: bool, status: str = ModelStatus.CANDIDATE) -> ModelVersion:
    return ModelVersion.objects.create(
        task=PRODUCT_RECOMMENDATIONS, version=number, horizon_days=30, beats_baselines=beats, status=status,
        metrics={"model": figures(0.3456 if beats else 0.1), "popularity": figures(0.2561), "item_knn": figures(0.2977),
                 "split": "2026-05-02T00:00:00+00:00", "window_days": 30, "tuning": []},
        card="Product recommender <v1>",
    )  # fmt: skip


def test_the_page_lists_recommender_versions_with_both_baselines_and_a_chart(staff_client):
    version = recommender(1, beats=True)
    ModelVersion.objects.create(version=1, horizon_days=90)  # a propensity model

    listing = staff_client.get(RECOMMENDERS)
    page = staff_client.get(f"{RECOMMENDERS}{version.pk}/change/").content.decode()

    assert [row.pk for row in listing.context["cl"].result_list] == [version.pk]
    assert "0.3456" in listing.content.decode() and "0.2561" in listing.content.decode()
    assert "<svg" in page and "Kairos recommender, recall@10: 0.3456" in page
    assert "item-kNN, NDCG@10: 0.1489" in page
    assert "Product recommender &lt;v1&gt;" in page


def test_a_version_that_loses_to_a_baseline_is_not_activated(staff_client):
    loser = recommender(1, beats=False)

    response = staff_client.post(RECOMMENDERS, {"action": "activate", "_selected_action": [loser.pk]}, follow=True)

    loser.refresh_from_db()
    assert loser.status == ModelStatus.CANDIDATE
    assert "does not beat both baselines (recall@10 0.1 vs recent popularity 0.2561, item-kNN 0.2977)" in (
        response.content.decode()
    )


def test_rollback_is_one_action(staff_client):
    first = recommender(1, beats=True)
    second = recommender(2, beats=True)
    for version in (first, second):
        staff_client.post(RECOMMENDERS, {"action": "activate", "_selected_action": [version.pk]})

    staff_client.post(RECOMMENDERS, {"action": "roll_back_task", "_selected_action": [second.pk]})

    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.status, second.status) == (ModelStatus.ACTIVE, ModelStatus.RETIRED)


def test_the_send_time_page_shows_the_model_against_the_shop_wide_hour(staff_client):
    version = ModelVersion.objects.create(
        task=SEND_TIMES, version=1, horizon_days=30, beats_baselines=True,
        metrics={"model": 0.586, "shop_wide": 0.568, "customers": 2589, "window_days": 30,
                 "split": "2026-11-04T00:00:00+00:00", "weekly_customers": 778, "daily_customers": 2665,
                 "shop_best_hours": [34, 35, 36], "tuning": [{"prior_strength": 20.0, "weekly_minimum": 10, "model": 0.6}]},
    )  # fmt: skip

    page = staff_client.get(f"{SEND_TIME_PAGE}{version.pk}/change/").content.decode()

    assert "for 58.6% of them; the shop-wide best hour of that day did for 56.8%" in page
    assert "Tue 10:00, Tue 11:00, Tue 12:00" in page
    assert "Kairos send time, within 1 h: 58.6%" in page
