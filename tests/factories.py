"""factory_boy factories for the audience models: deterministic, sequential, valid by default.

Every id is a zero-padded sequence ("C00001") and every timestamp is BASE_TIME plus the sequence,
so two runs build the same rows. Sequences keep counting across tests; a test that asserts an
id passes it explicitly (or calls `Factory.reset_sequence()`).
"""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import factory
from factory.django import DjangoModelFactory

from marketing.models import (
    Consent,
    Customer,
    Event,
    Order,
    OrderLine,
    OrderStatus,
    Product,
    Suppression,
    SuppressionReason,
)
from marketing.suppression import email_hash

BASE_TIME = datetime(2024, 1, 1, 9, 0, tzinfo=UTC)


class CustomerFactory(DjangoModelFactory):
    class Meta:
        model = Customer

    external_id = factory.Sequence(lambda n: f"C{n + 1:05d}")
    email = factory.Sequence(lambda n: f"customer{n + 1:05d}@example.com")
    first_name = factory.Sequence(lambda n: f"First{n + 1:05d}")
    last_name = factory.Sequence(lambda n: f"Last{n + 1:05d}")
    locale = "de-DE"
    timezone = "Europe/Berlin"
    country = "DE"
    city = "Berlin"
    consent_state = Consent.OPTED_IN
    consent_source = "factory"
    consent_at = factory.Sequence(lambda n: BASE_TIME + timedelta(days=n))


class ProductFactory(DjangoModelFactory):
    class Meta:
        model = Product

    sku = factory.Sequence(lambda n: f"P{n + 1:05d}")
    name = factory.Sequence(lambda n: f"Product {n + 1:05d}")
    category = "books"
    price = Decimal("19.90")
    currency = "EUR"
    url = factory.LazyAttribute(lambda product: f"https://shop.example.com/products/{product.sku}")
    in_stock = True


class OrderFactory(DjangoModelFactory):
    class Meta:
        model = Order

    external_id = factory.Sequence(lambda n: f"O{n + 1:05d}")
    customer = factory.SubFactory(CustomerFactory)
    placed_at = factory.Sequence(lambda n: BASE_TIME + timedelta(hours=n))
    total = Decimal("39.80")
    currency = "EUR"
    status = OrderStatus.COMPLETED


class OrderLineFactory(DjangoModelFactory):
    class Meta:
        model = OrderLine

    order = factory.SubFactory(OrderFactory)
    product = factory.SubFactory(ProductFactory)
    quantity = 2
    unit_price = factory.SelfAttribute("product.price")


class EventFactory(DjangoModelFactory):
    class Meta:
        model = Event

    external_id = factory.Sequence(lambda n: f"E{n + 1:05d}")
    customer = factory.SubFactory(CustomerFactory)
    name = "product_viewed"
    occurred_at = factory.Sequence(lambda n: BASE_TIME + timedelta(minutes=n))
    properties = factory.LazyFunction(dict)


class SuppressionFactory(DjangoModelFactory):
    """A suppressed address, hashed as `Suppression.suppress` hashes it; pass `email=` to pick it."""

    class Meta:
        model = Suppression
        # Suppressing an address twice keeps its first entry, as `Suppression.suppress` does.
        django_get_or_create = ("email_hash",)

    class Params:
        email = factory.Sequence(lambda n: f"suppressed{n + 1:05d}@example.com")

    email_hash = factory.LazyAttribute(lambda suppression: email_hash(suppression.email))
    reason = SuppressionReason.UNSUBSCRIBED
