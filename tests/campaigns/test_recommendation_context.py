"""Product cards in the e-mail context: blank parts left out, picks by category, templates asking for them."""

from campaigns.context import build_context, customer_data, product_data
from campaigns.lint import lint_template


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
