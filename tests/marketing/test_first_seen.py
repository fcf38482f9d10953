"""A customer exists from their first sign of life: every writer keeps `first_seen_at` at the earliest one."""

import json
from datetime import UTC, datetime, timedelta

import pytest
from django.db import transaction

from marketing.first_seen import note_first_seen, recompute_first_seen
from marketing.imports import import_file
from marketing.models import ApiKey, Customer
from tests.factories import CustomerFactory, EventFactory, OrderFactory

pytestmark = pytest.mark.django_db

ORDER_LOG = (
    "buyer       date          amount\n"
    "B-1         20240305       19.90\n"
    "B-2         20240410       42.00\n"
    "B-1         20240201       10.00\n"
    "B-3         20240611        5.50\n"
)


def write(tmp_path, name: str, content: str) -> str:
    path = tmp_path / name
    path.write_text(content)
    return str(path)


def first_seen() -> dict[str, datetime | None]:
    return dict(Customer.objects.order_by("external_id").values_list("external_id", "first_seen_at"))


def day(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def import_log(path: str):
    return import_file(
        "orders", path, mapping={"customer": "buyer", "placed_at": "date", "total": "amount"}, date_format="%Y%m%d"
    )


def test_an_orders_only_log_makes_each_buyer_known_from_their_first_order_not_from_the_import(tmp_path):
    report = import_log(write(tmp_path, "log.txt", ORDER_LOG))

    assert report.customers_created == 3
    assert first_seen() == {"B-1": day("2024-02-01"), "B-2": day("2024-04-10"), "B-3": day("2024-06-11")}
    assert Customer.objects.known_at(day("2024-03-01")).count() == 1
    assert set(Customer.objects.known_at(day("2024-05-01")).values_list("external_id", flat=True)) == {"B-1", "B-2"}


def test_an_earlier_order_imported_later_moves_first_seen_back_and_a_later_one_does_not(tmp_path):
    import_log(write(tmp_path, "log.txt", ORDER_LOG))

    import_log(write(tmp_path, "more.txt", "buyer date amount\nB-2 20240101 3.00\nB-3 20241224 9.00\n"))

    assert first_seen() == {"B-1": day("2024-02-01"), "B-2": day("2024-01-01"), "B-3": day("2024-06-11")}


def test_importing_the_same_log_again_changes_no_first_seen(tmp_path):
    path = write(tmp_path, "log.txt", ORDER_LOG)
    import_log(path)
    before = first_seen()

    again = import_log(path)

    assert (again.inserted, again.customers_created) == (0, 0)
    assert first_seen() == before


def test_events_imported_for_new_customers_make_them_known_from_their_first_event(tmp_path):
    path = write(
        tmp_path,
        "events.csv",
        "customer,name,occurred_at\nV-1,product_viewed,2024-03-02T10:00:00Z\nV-1,cart_added,2024-03-01T09:00:00Z\n",
    )

    import_file("events", path)

    assert first_seen() == {"V-1": datetime(2024, 3, 1, 9, 0, tzinfo=UTC)}


def test_a_mapped_sign_up_date_is_a_sign_of_life_and_the_earliest_one_wins(tmp_path):
    import_log(write(tmp_path, "log.txt", ORDER_LOG))
    path = write(
        tmp_path,
        "customers.csv",
        "id,email,joined\nB-1,b1@example.com,2023-11-05\nB-2,b2@example.com,2024-12-01\nN-1,n1@example.com,\n",
    )

    import_file("customers", path, mapping={"external_id": "id", "signed_up_at": "joined"})

    stored = {c.external_id: (c.signed_up_at, c.first_seen_at) for c in Customer.objects.all()}
    assert stored["B-1"] == (day("2023-11-05"), day("2023-11-05"))
    assert stored["B-2"] == (day("2024-12-01"), day("2024-04-10"))  # their first order came before the sign-up date
    assert stored["N-1"] == (None, None)  # no sign of life yet: known from the moment their row was written


def test_a_customer_without_any_sign_of_life_is_known_from_the_moment_their_row_was_written():
    newsletter_only = CustomerFactory()

    assert newsletter_only.first_seen_at is None
    assert list(Customer.objects.known_at(newsletter_only.created_at + timedelta(seconds=1))) == [newsletter_only]
    assert not Customer.objects.known_at(newsletter_only.created_at).exists()


def test_events_sent_to_the_api_make_new_customers_known_from_their_first_event(client):
    _, raw = ApiKey.issue("shop backend")
    body = {
        "events": [
            {"customer_id": "A-7", "name": "product_viewed", "occurred_at": "2024-05-02T12:00:00Z"},
            {"customer_id": "A-7", "name": "session_started", "occurred_at": "2024-05-02T11:58:00Z"},
        ]
    }

    response = client.generic(
        "POST",
        "/api/v1/events",
        json.dumps(body).encode(),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {raw}",
    )

    assert response.status_code == 202, response.content
    assert first_seen() == {"A-7": datetime(2024, 5, 2, 11, 58, tzinfo=UTC)}


def test_orders_and_events_saved_one_by_one_lower_first_seen_and_a_stale_customer_save_keeps_it():
    customer = CustomerFactory(signed_up_at=None)
    OrderFactory(customer=customer, placed_at=day("2024-06-01"))
    EventFactory(customer=customer, occurred_at=day("2024-05-20"))
    OrderFactory(customer=customer, placed_at=day("2024-07-01"))

    customer.first_name = "Renamed"  # this instance still holds first_seen_at = None
    customer.save()

    assert Customer.objects.get(pk=customer.pk).first_seen_at == day("2024-05-20")


def test_recomputing_from_what_is_stored_agrees_with_what_the_writers_kept(tmp_path):
    import_log(write(tmp_path, "log.txt", ORDER_LOG))
    EventFactory(customer=Customer.objects.get(external_id="B-3"), occurred_at=day("2024-01-15"))
    kept = first_seen()
    Customer.objects.update(first_seen_at=None)

    recompute_first_seen()

    assert first_seen() == kept
    assert kept["B-3"] == day("2024-01-15")


def test_noting_a_later_moment_never_raises_first_seen():
    customer = CustomerFactory()
    with transaction.atomic():
        assert note_first_seen({customer.pk: day("2024-03-01")}) == 1
        assert note_first_seen({customer.pk: day("2024-04-01")}) == 0
        assert note_first_seen({customer.pk: day("2024-02-01")}) == 1

    assert Customer.objects.get(pk=customer.pk).first_seen_at == day("2024-02-01")
