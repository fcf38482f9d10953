"""Privacy requests: an export holds every category and nothing of anyone else; an erasure leaves no trace but a hash."""

import io
import json
from datetime import UTC, datetime

import pytest
from django.apps import apps
from django.contrib.admin.models import LogEntry
from django.core.management import CommandError, call_command
from django.db import models
from django.test import Client
from django.utils import timezone

from campaigns.models import Campaign, EmailTemplate, Enrollment, Message, PromotionHold
from campaigns.tracking import suppress_address
from marketing.imports import import_file
from marketing.models import (
    ApiKey,
    Consent,
    ConsentChange,
    Customer,
    Event,
    InboundMessage,
    Order,
    PrivacyRequest,
    Segment,
    SegmentMembership,
    Suppression,
    SuppressionReason,
)
from marketing.permissions import sync_groups
from marketing.privacy import EXPORT_CATEGORIES, erase_customer, export_customer
from ml.models import ModelVersion, Score
from tests.factories import CustomerFactory, OrderLineFactory

AT = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


def _life(customer: Customer, segment: Segment, template: EmailTemplate, campaign: Campaign, version: ModelVersion) -> None:
    """Give the customer data in every category Kairos keeps."""
    OrderLineFactory(order__customer=customer, order__external_id=f"O-{customer.pk}")
    Event.objects.create(external_id=f"ev-{customer.pk}", customer=customer, name="product_viewed", occurred_at=AT,
                         properties={"email": customer.email, "sku": "P1"})  # fmt: skip
    Message.objects.create(customer=customer, to_email=customer.email, template=template, subject=f"Hi {customer.first_name}")
    Score.objects.create(customer=customer, model_version=version, probability=0.4, decile=3, scored_at=AT)
    SegmentMembership.objects.create(segment=segment, customer=customer, entered_at=AT)
    Enrollment.objects.create(campaign=campaign, customer=customer, entered_at=AT, trigger_data={"email": customer.email})
    inbound = InboundMessage.objects.create(
        external_id=f"in-{customer.pk}", customer=customer, from_email=customer.email, from_name=customer.first_name,
        subject="Where is my order?", body=f"Hello, this is {customer.first_name} {customer.last_name}", received_at=AT,
    )  # fmt: skip
    PromotionHold.objects.create(customer=customer, until=AT, reason="complaint", inbound_message=inbound)
    ConsentChange.objects.create(customer=customer, state=Consent.OPTED_IN, source="signup form", at=AT)


@pytest.fixture
def people(db, settings):
    settings.RECOMMENDATION_SOURCE = "tests.campaigns.conftest.three_recommendations"
    segment = Segment.objects.create(name="Readers", kind="static")
    template = EmailTemplate.objects.create(name="News")
    campaign = Campaign.objects.create(name="Welcome", trigger_type="manual")
    version = ModelVersion.objects.create(version=1)
    ann = CustomerFactory(external_id="ann-77", email="ann.lovelace@example.org", first_name="Annabella", last_name="Lovelace")
    bob = CustomerFactory(external_id="bob-88", email="bob.babbage@example.org", first_name="Bartholomew", last_name="Babbage")
    for person in (ann, bob):
        _life(person, segment, template, campaign, version)
    return ann, bob


def test_an_export_holds_every_category_and_nothing_of_anyone_else(people):
    ann, bob = people

    data = export_customer("ann-77", requested_by="test")

    assert sorted(data) == sorted(EXPORT_CATEGORIES)
    assert data["customer"]["email"] == "ann.lovelace@example.org"
    empty = [key for key, value in data.items() if not value or (key == "conversations" and not value["messages"])]
    assert empty == []
    assert data["orders"][0]["lines"][0]["quantity"] == 2
    assert data["memberships"] == ["Readers"]
    text = json.dumps(data)
    assert [value for value in ("bob-88", "bob.babbage", "Bartholomew", "Babbage", f"ev-{bob.pk}") if value in text] == []
    assert PrivacyRequest.objects.get().kind == "export"


def _texts_holding(values: list[str]) -> list[str]:
    """Return 'table.column' for every stored text that contains one of the values (in any case)."""
    found = []
    lowered = [value.lower() for value in values]
    for model in apps.get_models():
        fields = [f for f in model._meta.concrete_fields if isinstance(f, models.CharField | models.TextField | models.JSONField)]
        for row in model.objects.values_list("pk", *[f.attname for f in fields]):
            for field, value in zip(fields, row[1:], strict=True):
                text = json.dumps(value) if not isinstance(value, str) else value
                if text and any(item in text.lower() for item in lowered):
                    found.append(f"{model._meta.db_table}.{field.attname}")
    return found


def test_after_erasure_no_table_holds_the_persons_name_address_or_ids(people):
    ann, bob = people
    suppress_address(ann.email, SuppressionReason.UNSUBSCRIBED, source="unsubscribe link")
    LogEntry.objects.log_actions(user_id=_staff().pk, queryset=[ann], action_flag=2, change_message="edited")

    counts = erase_customer("ann-77", requested_by="test")

    assert _texts_holding(["ann-77", "ann.lovelace@example.org", "Annabella", "Lovelace"]) == []
    assert counts["conversations"] == 1 and counts["events"] >= 1
    # Aggregates stay, anonymously: the order and the message outcome are kept on the erased row.
    assert Order.objects.count() == 2
    assert Message.objects.filter(to_email="").count() == 1
    assert Customer.objects.get(pk=ann.pk).consent_state == Consent.OPTED_OUT
    # Nobody else lost anything.
    assert Customer.objects.get(pk=bob.pk).email == "bob.babbage@example.org"
    assert InboundMessage.objects.filter(customer=bob).count() == 1
    assert Event.objects.filter(customer=bob).count() == 1
    assert PrivacyRequest.objects.get(kind="erasure").counts == counts


def _staff():
    from django.contrib.auth.models import User

    return User.objects.get_or_create(username="clerk", defaults={"is_staff": True})[0]


def test_a_reimport_of_an_erased_address_in_any_case_is_never_mailed(people, tmp_path):
    erase_customer("ann-77", requested_by="test")
    path = tmp_path / "again.csv"
    path.write_text("external_id,email,first_name,consent_state\nann-new,ANN.Lovelace@Example.ORG,Ann,opted_in\n")

    import_file("customers", path)

    again = Customer.objects.get(external_id="ann-new")
    assert Suppression.objects.get(email_hash=again.email_hash).reason == SuppressionReason.ERASED
    assert again not in Customer.objects.mailable()


def test_consent_changes_are_kept_with_their_source_and_time(people):
    ann, _ = people

    suppress_address(ann.email, SuppressionReason.UNSUBSCRIBED, source="one-click unsubscribe")

    history = list(ConsentChange.objects.filter(customer=ann).values_list("state", "source"))
    assert history == [("opted_in", "signup form"), ("opted_out", "one-click unsubscribe")]
    assert export_customer("ann-77", requested_by="test")["consent_history"][-1]["source"] == "one-click unsubscribe"


def test_the_commands_export_and_erase(people, tmp_path):
    out = tmp_path / "ann.json"

    call_command("export_customer", "ann-77", "--output", str(out), stdout=io.StringIO())
    erased = io.StringIO()
    call_command("erase_customer", "ann-77", stdout=erased)

    assert json.loads(out.read_text())["customer"]["external_id"] == "ann-77"
    assert erased.getvalue().startswith("Erased customer ann-77:")
    with pytest.raises(CommandError, match="no customer has the id 'ann-77'"):
        call_command("export_customer", "ann-77")


@pytest.fixture
def admins(db, django_user_model):
    sync_groups()
    from django.contrib.auth.models import Group

    clients = {}
    for group in ("Viewer", "Marketer", "Approver"):
        user = django_user_model.objects.create_user(group, f"{group}@shop.example", "x", is_staff=True)
        user.groups.add(Group.objects.get(name=group))
        client = Client()
        client.force_login(user)
        clients[group] = client
    return clients


@pytest.mark.parametrize("who", ["Viewer", "Marketer"])
def test_only_an_approver_may_erase_in_the_admin(people, admins, who):
    ann, _ = people

    admins[who].post("/admin/marketing/customer/", {"action": "erase_data", "_selected_action": [ann.pk]})

    assert Customer.objects.get(pk=ann.pk).email == "ann.lovelace@example.org"
    assert PrivacyRequest.objects.count() == 0


def test_an_approvers_erasure_is_recorded(people, admins):
    ann, _ = people

    admins["Approver"].post("/admin/marketing/customer/", {"action": "erase_data", "_selected_action": [ann.pk]})

    assert Customer.objects.get(pk=ann.pk).email == ""
    assert PrivacyRequest.objects.get().requested_by == "admin Approver"
    assert LogEntry.objects.filter(object_id=str(ann.pk), change_message="Erased on request").count() == 1


def test_a_viewer_exports_from_the_admin(people, admins):
    ann, _ = people

    response = admins["Viewer"].post("/admin/marketing/customer/", {"action": "export_data", "_selected_action": [ann.pk]})

    assert response["Content-Disposition"] == 'attachment; filename="customer-data.json"'
    assert sorted(json.loads(response.content)["ann-77"]) == sorted(EXPORT_CATEGORIES)


def test_the_api_exports_and_erases_with_a_key(people):
    api_key = ApiKey(name="shop backend")
    raw = api_key.assign_new_key()
    api_key.save()
    client = Client()
    auth = {"HTTP_AUTHORIZATION": f"Bearer {raw}"}

    refused = client.get("/api/v1/customers/ann-77/data")
    exported = client.get("/api/v1/customers/ann-77/data", **auth)
    erased = client.post("/api/v1/customers/ann-77/erase", **auth)
    missing = client.get("/api/v1/customers/ann-77/data", **auth)

    assert refused.status_code == 401
    assert (exported.status_code, sorted(exported.json())) == (200, sorted(EXPORT_CATEGORIES))
    assert (erased.status_code, erased.json()["erased"]) == (200, True)
    assert missing.status_code == 404
    assert [request.requested_by for request in PrivacyRequest.objects.order_by("at")] == ["API key shop backend"] * 2
    assert timezone.now() >= PrivacyRequest.objects.first().at
