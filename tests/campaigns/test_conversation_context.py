"""What a reply template sees: the order a message names (only the customer's own), else the latest."""

from datetime import UTC, datetime, timedelta

import pytest

from campaigns.conversations.context import named_reference, order_for, order_references
from tests.factories import CustomerFactory, OrderFactory

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "references", "named"),
    [
        ("Where is my order B-99887?", ["B-99887"], "B-99887"),
        ("order #10234 please", ["10234"], "10234"),
        ("订单号20240415778812的物流", ["20240415778812"], "20240415778812"),
        ("I ordered it on 2026-03-02, where is it?", ["2026-03-02"], ""),
        ("My parcel 1Z999AA10123456784 is stuck", ["1Z999AA10123456784"], ""),
        ("Where is my stuff?", [], ""),
    ],
)
def test_order_numbers_are_found_and_trusted_only_when_the_text_calls_them_orders(text, references, named):
    assert order_references(text) == references
    assert named_reference(text) == named


@pytest.mark.django_db
def test_the_named_order_wins_another_customers_is_never_returned_and_the_latest_is_the_fallback():
    customer = CustomerFactory()
    older = OrderFactory(customer=customer, external_id="A-1000", placed_at=T0 - timedelta(days=9))
    latest = OrderFactory(customer=customer, external_id="A-2000", placed_at=T0 - timedelta(days=1))
    OrderFactory(customer=CustomerFactory(), external_id="B-3000", placed_at=T0)

    assert order_for(customer.pk, "where is order A-1000?") == (older, "")
    assert order_for(customer.pk, "where is order B-3000?") == (None, "B-3000")
    assert order_for(customer.pk, "where is my order?") == (latest, "")
    assert order_for(None, "where is order A-1000?") == (None, "A-1000")
