"""The audience admin: every model listed, searchable and filterable; suppressions hashed."""

import pytest
from django.urls import reverse

from marketing.models import Consent, Customer, Suppression, SuppressionReason
from marketing.suppression import email_hash
from tests.factories import CustomerFactory, EventFactory, OrderFactory, OrderLineFactory, ProductFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(client, django_user_model):
    user = django_user_model.objects.create_superuser("boss", "boss@example.com", "a-long-passphrase")
    client.force_login(user)
    return client


def listed(response) -> list[int]:
    return sorted(obj.pk for obj in response.context["cl"].result_list)


@pytest.mark.parametrize("model", ["customer", "product", "order", "orderline", "event", "suppression"])
def test_every_audience_list_opens(staff, model):
    response = staff.get(reverse(f"admin:marketing_{model}_changelist"))

    assert response.status_code == 200


def test_customers_are_searchable_by_email_and_id(staff):
    ann = CustomerFactory(external_id="C-ANN", email="ann@example.com")
    CustomerFactory(external_id="C-BOB", email="bob@example.com")

    by_email = staff.get(reverse("admin:marketing_customer_changelist"), {"q": "ann@"})
    by_id = staff.get(reverse("admin:marketing_customer_changelist"), {"q": "C-ANN"})

    assert listed(by_email) == [ann.pk]
    assert listed(by_id) == [ann.pk]


def test_customers_filter_by_consent_and_suppression(staff):
    opted_in = CustomerFactory(email="in@example.com", consent_state=Consent.OPTED_IN)
    opted_out = CustomerFactory(email="out@example.com", consent_state=Consent.OPTED_OUT)
    Suppression.suppress("in@example.com", SuppressionReason.BOUNCED)

    by_consent = staff.get(reverse("admin:marketing_customer_changelist"), {"consent_state__exact": "opted_out"})
    suppressed = staff.get(reverse("admin:marketing_customer_changelist"), {"suppressed": "yes"})
    not_suppressed = staff.get(reverse("admin:marketing_customer_changelist"), {"suppressed": "no"})

    assert listed(by_consent) == [opted_out.pk]
    assert listed(suppressed) == [opted_in.pk]
    assert listed(not_suppressed) == [opted_out.pk]


def test_orders_are_searchable_by_the_customer_email(staff):
    ann = CustomerFactory(email="ann@example.com")
    order = OrderFactory(customer=ann)
    OrderFactory()

    response = staff.get(reverse("admin:marketing_order_changelist"), {"q": "ann@example.com"})

    assert listed(response) == [order.pk]


def test_products_filter_by_stock(staff):
    ProductFactory(in_stock=True)
    gone = ProductFactory(in_stock=False)

    response = staff.get(reverse("admin:marketing_product_changelist"), {"in_stock__exact": "0"})

    assert listed(response) == [gone.pk]


def test_order_lines_are_searchable_by_sku(staff):
    mug = ProductFactory(sku="MUG-1")
    line = OrderLineFactory(product=mug)
    OrderLineFactory()

    response = staff.get(reverse("admin:marketing_orderline_changelist"), {"q": "MUG-1"})

    assert listed(response) == [line.pk]


def test_events_filter_by_name(staff):
    viewed = EventFactory(name="product_viewed")
    EventFactory(name="cart_added")

    response = staff.get(reverse("admin:marketing_event_changelist"), {"name": "product_viewed"})

    assert listed(response) == [viewed.pk]


def test_customer_page_shows_orders_and_revenue(staff):
    ann = CustomerFactory()
    OrderFactory(customer=ann, total="10.00")
    OrderFactory(customer=ann, total="5.50")

    response = staff.get(reverse("admin:marketing_customer_change", args=[ann.pk]))

    assert response.status_code == 200
    assert b"15.50" in response.content


def test_staff_add_a_suppression_by_address_and_only_its_hash_is_kept(staff):
    response = staff.post(reverse("admin:marketing_suppression_add"), {"email": "Gone@Example.com", "reason": "manual"})

    assert response.status_code == 302
    stored = Suppression.objects.get()
    assert (stored.email_hash, stored.reason) == (email_hash("gone@example.com"), SuppressionReason.MANUAL)
    assert "gone@example.com" not in str(Suppression.objects.values().get()).lower()


def test_a_suppressed_address_cannot_be_added_twice(staff):
    Suppression.suppress("gone@example.com", SuppressionReason.UNSUBSCRIBED)

    response = staff.post(reverse("admin:marketing_suppression_add"), {"email": "gone@example.com", "reason": "manual"})

    assert response.status_code == 200
    assert "This address is already suppressed." in response.content.decode()
    assert Suppression.objects.count() == 1


def test_suppressions_are_found_by_address(staff):
    Suppression.suppress("gone@example.com", SuppressionReason.UNSUBSCRIBED)
    Suppression.suppress("other@example.com", SuppressionReason.BOUNCED)

    response = staff.get(reverse("admin:marketing_suppression_changelist"), {"q": "GONE@example.com"})

    assert [s.email_hash for s in response.context["cl"].result_list] == [email_hash("gone@example.com")]


def test_customer_saved_in_the_admin_gets_its_address_hash(staff):
    response = staff.post(
        reverse("admin:marketing_customer_add"),
        {
            "external_id": "C9", "email": "New@Example.com", "first_name": "", "last_name": "", "locale": "",
            "timezone": "", "country": "", "city": "", "birth_date": "", "gender": "", "attributes": "{}",
            "consent_state": "opted_in", "consent_source": "admin", "consent_at": "",
            "orders-TOTAL_FORMS": "0", "orders-INITIAL_FORMS": "0",
        },
    )

    assert response.status_code == 302, response.content.decode()[:2000]
    customer = Customer.objects.get(external_id="C9")
    assert (customer.email, customer.email_hash) == ("new@example.com", email_hash("new@example.com"))
