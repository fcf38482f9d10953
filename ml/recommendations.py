"""Reading stored picks for e-mails and exports: the active version's, checked against today's stock.

`active_recommendations` is the default `RECOMMENDATION_SOURCE`. A customer's stored picks are filtered
again at send time, so a product that went out of stock after the run, or that the customer bought
since, never appears; the list is topped up with the version's popular products (also in stock), so a
customer without stored picks (new since the run) gets the popular ones.
"""

from collections import defaultdict
from collections.abc import Iterator
from datetime import datetime, timedelta

import numpy as np
from django.conf import settings
from django.utils import timezone

from marketing.models import Customer, OrderLine, Product
from ml.models import PRODUCT_RECOMMENDATIONS, ModelVersion, Recommendation
from ml.queries import RETURNED_STATUSES
from ml.recommend_registry import recommender_for

EXPORTED_PER_CUSTOMER = 10
# Popular products appended after each customer's own: enough for a category's picks in a typical catalogue.
POPULAR_FILL = 100
PRODUCT_FIELDS = ("sku", "name", "url", "image_url", "price", "currency", "category")
EXPORT_BATCH_CUSTOMERS = 10_000


def popular_product_ids(version: ModelVersion, limit: int) -> list[int]:
    """Return the version's most popular product ids, best first."""
    model = recommender_for(version)
    order = np.argsort(-model.popularity, kind="stable")[:limit]
    return model.product_ids[order].tolist()


def recently_bought(customer_ids: list[int], now: datetime) -> dict[int, set[int]]:
    """Return the products each customer bought within the exclusion window before `now`."""
    since = now - timedelta(days=settings.ML_RECOMMEND_EXCLUDE_BOUGHT_DAYS)
    bought: dict[int, set[int]] = defaultdict(set)
    rows = (
        OrderLine.objects.filter(
            order__customer_id__in=customer_ids, order__placed_at__gte=since, order__placed_at__lte=now
        )
        .exclude(order__status__in=RETURNED_STATUSES)
        .values_list("order__customer_id", "product_id")
    )
    for customer_id, product_id in rows:
        bought[customer_id].add(product_id)
    return bought


def active_recommendations(customer_ids: list[int], now: datetime | None = None) -> dict[int, list[dict]]:
    """Return, per customer id, in-stock product dicts best first: their own picks, then popular ones."""
    version = ModelVersion.objects.active(PRODUCT_RECOMMENDATIONS).first()
    if version is None or not customer_ids:
        return {}
    now = now or timezone.now()
    stored = dict(
        Recommendation.objects.filter(model_version=version, customer_id__in=customer_ids).values_list(
            "customer_id", "product_ids"
        )
    )
    popular = popular_product_ids(version, POPULAR_FILL * 2)
    wanted = {pk for ids in stored.values() for pk in ids} | set(popular)
    products = {
        row.pop("pk"): row for row in Product.objects.filter(pk__in=wanted, in_stock=True).values("pk", *PRODUCT_FIELDS)
    }
    popular = [pk for pk in popular if pk in products][:POPULAR_FILL]
    bought = recently_bought(customer_ids, now)
    picks: dict[int, list[dict]] = {}
    for customer_id in customer_ids:
        excluded = bought.get(customer_id, set())
        seen: set[int] = set()
        chosen = []
        for pk in [*stored.get(customer_id, []), *popular]:
            if pk in products and pk not in excluded and pk not in seen:
                seen.add(pk)
                chosen.append(products[pk])
        picks[customer_id] = chosen
    return picks


def export_rows() -> Iterator[tuple[str, int, str, float]]:
    """Yield (external_id, rank, sku, score) for every customer, rank 1 first, 10 each, from the active version."""
    version = ModelVersion.objects.active(PRODUCT_RECOMMENDATIONS).first()
    if version is None:
        raise LookupError("no active recommender: train one with train_recommendations --activate")
    model = recommender_for(version)
    stock = dict(Product.objects.values_list("pk", "in_stock"))
    skus = dict(Product.objects.values_list("pk", "sku"))
    order = np.argsort(-model.popularity, kind="stable")
    popular = [
        (pk, round(float(value) * model.params.popularity_weight, 4))
        for pk, value in zip(model.product_ids[order].tolist(), model.popularity[order].tolist(), strict=True)
        if stock.get(pk)
    ][: EXPORTED_PER_CUSTOMER * 3]
    last_id = 0
    while True:
        customers = list(
            Customer.objects.filter(pk__gt=last_id)
            .order_by("pk")
            .values_list("pk", "external_id")[:EXPORT_BATCH_CUSTOMERS]
        )
        if not customers:
            return
        last_id = customers[-1][0]
        stored = {
            customer_id: list(zip(ids, scores, strict=False))
            for customer_id, ids, scores in Recommendation.objects.filter(
                model_version=version, customer_id__gte=customers[0][0], customer_id__lte=last_id
            ).values_list("customer_id", "product_ids", "scores")
        }
        for customer_id, external_id in customers:
            own = [(pk, score) for pk, score in stored.get(customer_id, []) if stock.get(pk)]
            # Stored picks gone out of stock leave room for popular ones, so everyone has ten.
            taken = {pk for pk, _ in own}
            chosen = own + [(pk, score) for pk, score in popular if pk not in taken]
            for rank, (pk, score) in enumerate(chosen[:EXPORTED_PER_CUSTOMER], start=1):
                yield external_id, rank, skus[pk], score
