"""Fixtures for the campaigns tests: a published template and customers to send it to."""

import pytest

from campaigns.models import Broadcast
from campaigns.versions import save_template
from tests.factories import CustomerFactory

WELCOME_HTML = """{% extends "emails/base.html" %}
{% from "emails/recommendations.html" import product_grid %}
{% block content %}
<h1>Hello {{ customer.greeting_name }}</h1>
<p>Our <a href="https://shop.example.com/sale?from=mail&amp;x=1">winter sale</a> starts today.</p>
{{ product_grid(recommendations) }}
{% endblock %}"""


@pytest.fixture
def welcome_template(db):
    """A published template that extends the base layout and links to the shop."""
    return save_template("Welcome", subject="Hello {{ customer.first_name }}", html=WELCOME_HTML)


@pytest.fixture
def no_quiet_hours(settings):
    """Let marketing messages leave at any hour: for tests of delivery itself, which CI runs at any hour."""
    settings.QUIET_HOURS_START_HOUR = settings.QUIET_HOURS_END_HOUR = 0


@pytest.fixture
def broadcast_to(welcome_template, no_quiet_hours):
    """Return a function that creates a draft broadcast of the welcome template (sent at any hour)."""

    def create(name: str = "Winter sale") -> Broadcast:
        return Broadcast.objects.create(name=name, template=welcome_template)

    return create


@pytest.fixture
def customers(db):
    """Three customers who opted in."""
    return [CustomerFactory() for _ in range(3)]


def three_recommendations(customer_ids: list[int]) -> dict[int, list[dict]]:
    """A recommendation source for tests: the same three products for everyone."""
    products = [
        {"sku": f"R{n}", "name": f"Pick {n}", "url": f"https://shop.example.com/p/R{n}", "image_url": "", "price": "9.90",
         "currency": "EUR", "category": "books"}
        for n in range(1, 4)
    ]  # fmt: skip
    return {customer_id: products for customer_id in customer_ids}


@pytest.fixture
def run(django_capture_on_commit_callbacks):
    """Run a function and then what it handed to workers after commit (tasks run in-process), like production."""

    def call(function, *args, **kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            return function(*args, **kwargs)

    return call
