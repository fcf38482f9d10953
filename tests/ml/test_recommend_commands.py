"""The recommender's Django shell on a small store: its queries, refusal, commands, rollback and the e-mail source."""

import csv
from datetime import UTC, datetime, timedelta
from io import StringIO

import numpy as np
import pytest
from django.core.management import CommandError, call_command

from marketing.models import OrderStatus, Product
from ml.models import PRODUCT_RECOMMENDATIONS, ModelStatus, ModelVersion, Recommendation
from ml.recommend import CLICK, PURCHASE, VIEW
from ml.recommend_queries import read_catalogue, read_interactions
from ml.recommend_runs import json_rows
from ml.recommendations import active_recommendations
from ml.registry import roll_back
from tests.factories import CustomerFactory, EventFactory, OrderFactory, OrderLineFactory, ProductFactory

AS_OF = datetime(2026, 6, 1, tzinfo=UTC)


@pytest.fixture
def small_minimums(settings):
    settings.ML_RECOMMEND_MIN_BUYERS = 5
    settings.ML_RECOMMEND_MIN_ORDER_LINES = 10
    settings.ML_RECOMMEND_MIN_PRODUCTS = 10
    settings.ML_RECOMMEND_MIN_JUDGED_BUYERS = 2


@pytest.fixture
def store(db, small_minimums):
    """Twelve products; twenty customers who buy product 0 with 1 (and a few 2 with 3), some in the last month."""
    products = [ProductFactory(category="books" if n % 2 else "games") for n in range(12)]
    customers = [CustomerFactory() for _ in range(20)]
    for number, customer in enumerate(customers):
        days_ago = 60 + number if number < 14 else 3 + number % 5
        order = OrderFactory(customer=customer, placed_at=AS_OF - timedelta(days=days_ago))
        pair = (0, 1) if number % 4 else (2, 3)
        for index in pair:
            OrderLineFactory(order=order, product=products[index])
    return products, customers


def test_the_queries_read_purchases_views_and_product_clicks_before_the_bound_only(db):
    # given
    shoe, hat = ProductFactory(), ProductFactory()
    buyer = CustomerFactory()
    OrderLineFactory(order=OrderFactory(customer=buyer, placed_at=AS_OF - timedelta(days=2)), product=shoe)
    cancelled = OrderFactory(customer=buyer, placed_at=AS_OF - timedelta(days=1), status=OrderStatus.CANCELLED)
    OrderLineFactory(order=cancelled, product=hat)
    EventFactory(customer=buyer, occurred_at=AS_OF - timedelta(days=1), properties={"sku": hat.sku})
    EventFactory(customer=buyer, occurred_at=AS_OF + timedelta(days=1), properties={"sku": hat.sku})
    EventFactory(customer=buyer, name="email_clicked", occurred_at=AS_OF - timedelta(hours=12), properties={"url": hat.url})
    EventFactory(customer=buyer, name="email_clicked", occurred_at=AS_OF - timedelta(hours=6), properties={"url": "https://shop.example.com/sale"})
    catalogue = read_catalogue()

    # when
    seen = read_interactions(catalogue, AS_OF, AS_OF - timedelta(days=30))

    # then
    rows = sorted(zip(seen.products.tolist(), seen.kinds.tolist(), np.round(seen.age_days, 2).tolist(), strict=True))
    assert rows == [(0, PURCHASE, 2.0), (1, VIEW, 1.0), (1, CLICK, 0.5)]
    assert seen.customers.tolist() == [buyer.pk] * 3


def test_a_store_with_too_little_history_is_refused_with_the_minimums(db):
    ProductFactory()
    OrderLineFactory(order=OrderFactory(placed_at=AS_OF - timedelta(days=40)))

    with pytest.raises(CommandError) as refusal:
        call_command("train_recommendations", "--as-of", "2026-06-01", stdout=StringIO())

    assert str(refusal.value).splitlines() == [
        "not enough data to train a recommender:",
        "- 2 products in the catalogue; at least 10 needed",
        "- 1 customers with orders before the cutoff; at least 50 needed",
        "- 1 order lines before the cutoff; at least 200 needed",
        "- 0 customers bought in the 30 days before 2026-06-01, the judged window; at least 20 needed",
    ]
    assert not ModelVersion.objects.filter(task=PRODUCT_RECOMMENDATIONS).exists()


def train(capture, as_of: str = "2026-06-01") -> None:
    """Train, activate (forced: this store is too small to judge) and run the picks' chunks as a worker would."""
    with capture(execute=True):
        call_command("train_recommendations", "--as-of", as_of, "--activate", "--force", stdout=StringIO())


def test_training_with_force_activates_and_stores_picks_for_everyone(store, tmp_path, django_capture_on_commit_callbacks):
    products, customers = store

    train(django_capture_on_commit_callbacks)

    version = ModelVersion.objects.get(task=PRODUCT_RECOMMENDATIONS)
    assert version.status == ModelStatus.ACTIVE
    assert Recommendation.objects.filter(model_version=version).count() == len(customers)
    path = tmp_path / "picks.csv"
    call_command("export_recommendations", str(path), stdout=StringIO())
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["external_id", "rank", "sku", "score"]
    assert len(rows) == 1 + 10 * len(customers)
    assert [int(row[1]) for row in rows[1:11]] == list(range(1, 11))


def test_a_customer_who_bought_product_zero_gets_its_partner_first(store, django_capture_on_commit_callbacks):
    products, customers = store
    newcomer = CustomerFactory()
    order = OrderFactory(customer=newcomer, placed_at=AS_OF - timedelta(days=45))
    OrderLineFactory(order=order, product=products[0])
    train(django_capture_on_commit_callbacks)

    picks = active_recommendations([newcomer.pk], now=AS_OF)

    assert picks[newcomer.pk][0]["sku"] == products[1].sku


def test_without_stored_picks_a_customer_gets_the_popular_ones_in_stock(store, django_capture_on_commit_callbacks):
    products, _ = store
    train(django_capture_on_commit_callbacks)
    Product.objects.filter(pk=products[1].pk).update(in_stock=False)
    stranger = CustomerFactory()

    picks = active_recommendations([stranger.pk], now=AS_OF)

    skus = [product["sku"] for product in picks[stranger.pk]]
    assert skus[:2] == [products[0].sku, products[2].sku]
    assert products[1].sku not in skus


def test_rolling_back_restores_the_earlier_versions_picks(store, django_capture_on_commit_callbacks):
    train(django_capture_on_commit_callbacks, "2026-05-31")
    train(django_capture_on_commit_callbacks)
    first, second = ModelVersion.objects.filter(task=PRODUCT_RECOMMENDATIONS).order_by("version")

    restored = roll_back(PRODUCT_RECOMMENDATIONS)

    first.refresh_from_db()
    second.refresh_from_db()
    assert (restored.pk, first.status, second.status) == (first.pk, ModelStatus.ACTIVE, ModelStatus.RETIRED)
    assert Recommendation.objects.filter(model_version=first).count() == 20
    assert Recommendation.objects.filter(model_version=second).count() == 20


def test_picks_are_written_as_json_without_the_missing_ones():
    product_ids = np.array([101, 102, 103])
    columns = np.array([[2, 0], [1, -1]])
    scores = np.array([[0.5, 0.25], [0.123456, 0.0]], dtype=np.float32)

    ids, values = json_rows(product_ids, columns, scores)
    full_ids, full_values = json_rows(product_ids, columns[:1], scores[:1])

    assert (ids, values) == (["[103, 101]", "[102]"], ["[0.5, 0.25]", "[0.1235]"])
    assert (full_ids, full_values) == (["[103, 101]"], ["[0.5, 0.25]"])
