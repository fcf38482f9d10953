"""Product cards in the e-mail context: blank parts left out, picks by category, templates asking for them."""

import re
from datetime import UTC, datetime, timedelta
from io import StringIO

from django.core.management import call_command

from campaigns.context import build_context, customer_data, product_data
from campaigns.lint import lint_template
from campaigns.models import EmailTemplate
from campaigns.preview import preview_html
from campaigns.starters import install_starters
from tests.factories import CustomerFactory, OrderFactory, OrderLineFactory, ProductFactory

AS_OF = datetime(2026, 6, 1, tzinfo=UTC)


def test_a_product_without_image_or_price_shows_neither():
    card = product_data({"sku": "X1", "name": "Mystery box", "url": "https://shop.example.com/x1", "price": None})

    assert (card["image_url"], card["price"], card["price_text"]) == ("", "", "")


def test_category_picks_put_the_customers_own_first_then_stop_at_ten():
    products = [{"sku": f"S{n}", "name": f"S{n}", "category": "shoes" if n % 3 == 0 else "hats", "price": 5} for n in range(40)]

    context = build_context(customer_data({"first_name": "Ada"}), recommendations=products)

    assert [card["sku"] for card in context["recommendations"]] == [f"S{n}" for n in range(10)]
    assert [card["sku"] for card in context["category_recommendations"]["shoes"]] == [f"S{n}" for n in range(0, 30, 3)]
    assert context["category_recommendations"]["socks"] == []


def test_a_template_may_ask_for_one_categorys_picks():
    source = (
        '{% extends "emails/base.html" %}{% from "emails/recommendations.html" import product_grid %}'
        '{% block content %}{{ product_grid(category_recommendations["Samples"][:4]) }}{% endblock %}'
    )

    assert lint_template(source, html=True) == []


def test_the_preview_shows_the_chosen_customers_own_picks(db, settings, django_capture_on_commit_callbacks):
    # given: twenty customers who buy products 0 and 1 together, a trained and active recommender
    settings.ML_RECOMMEND_MIN_BUYERS, settings.ML_RECOMMEND_MIN_ORDER_LINES = 5, 10
    settings.ML_RECOMMEND_MIN_PRODUCTS, settings.ML_RECOMMEND_MIN_JUDGED_BUYERS = 10, 2
    products = [ProductFactory() for _ in range(12)]
    for number in range(20):
        order = OrderFactory(customer=CustomerFactory(), placed_at=AS_OF - timedelta(days=3 + number * 4))
        for product in products[:2]:
            OrderLineFactory(order=order, product=product)
    chosen = CustomerFactory()
    OrderLineFactory(order=OrderFactory(customer=chosen, placed_at=AS_OF - timedelta(days=50)), product=products[0])
    with django_capture_on_commit_callbacks(execute=True):
        call_command("train_recommendations", "--as-of", "2026-06-01", "--activate", "--force", stdout=StringIO())
    install_starters()

    # when
    html = preview_html(EmailTemplate.objects.get(name="Picked for you"), chosen)

    # then: product 1, bought with what they bought, comes first among the four shown
    names = re.findall(r'class="product-name"[^>]*>([^<]+)<', html)
    assert len(names) == 4
    assert names[0] == products[1].name
