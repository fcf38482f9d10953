"""Privacy requests: everything Kairos holds about one customer, exported or erased.

An export gathers every category of data about the person (profile, consent history, orders and
their lines, events, messages, scores, recommendations, conversations, segment memberships and
campaign enrollments) as plain JSON. An erasure removes the personal data from every table and
keeps what aggregates need (orders, message outcomes, enrollments) on an anonymous customer row.
A keyed hash of the address stays on the suppression list, so a re-import of the same address, in
any letter case, is never mailed. Both are recorded as a PrivacyRequest, without the person's data.
"""

import uuid
from decimal import Decimal
from typing import Any

from django.contrib.admin.models import LogEntry
from django.contrib.contenttypes.models import ContentType
from django.db import transaction
from django.forms.models import model_to_dict
from django.utils import timezone
from django.utils.crypto import salted_hmac

from marketing.models import (
    Consent,
    ConsentChange,
    Customer,
    Event,
    InboundMessage,
    Order,
    PrivacyRequest,
    PrivacyRequestKind,
    SegmentChange,
    SegmentMembership,
    Suppression,
    SuppressionReason,
)

ERASED_SOURCE = "erased on request"
EXPORT_CATEGORIES = (
    "customer", "consent_history", "orders", "events", "messages", "scores", "recommendations",
    "conversations", "memberships", "enrollments",
)  # fmt: skip


class CustomerNotFound(LookupError):
    """No customer has this shop id."""


def subject_hash(external_id: str) -> str:
    """Return the keyed hash a privacy request is recorded under, instead of the id itself."""
    return salted_hmac("kairos.privacy-subject", external_id, algorithm="sha256").hexdigest()


def _customer(external_id: str) -> Customer:
    customer = Customer.objects.filter(external_id=external_id).first()
    if customer is None:
        raise CustomerNotFound(f"no customer has the id {external_id!r}")
    return customer


def _plain(value: Any) -> Any:
    """Return the value as JSON-ready data."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if isinstance(value, Decimal):
        return str(value)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


def _rows(queryset, exclude: tuple[str, ...] = ()) -> list[dict]:
    return [_plain(model_to_dict(row, exclude=list(exclude))) | {"id": row.pk} for row in queryset]


def customer_data(customer: Customer) -> dict[str, Any]:
    """Return every category of data Kairos holds about the customer."""
    from campaigns.context import recommendation_source
    from campaigns.models import Enrollment, Message, PromotionHold
    from ml.models import Score

    profile = _plain(model_to_dict(customer, exclude=["id"])) | {
        "created_at": customer.created_at.isoformat(),
        "first_seen_at": customer.first_seen_at.isoformat() if customer.first_seen_at else None,
    }
    orders = []
    for order in Order.objects.filter(customer=customer).prefetch_related("lines__product").order_by("placed_at"):
        orders.append(
            _plain(model_to_dict(order, exclude=["id", "customer"]))
            | {
                "lines": [
                    {"sku": line.product.sku, "product": line.product.name, "quantity": line.quantity,
                     "unit_price": str(line.unit_price)}
                    for line in order.lines.all()
                ]
            }  # fmt: skip
        )
    conversations = _rows(InboundMessage.objects.filter(customer=customer).order_by("received_at"), ("customer",))
    holds = _rows(PromotionHold.objects.filter(customer=customer), ("customer",))
    return {
        "customer": profile,
        "consent_history": [
            {"state": change.state, "source": change.source, "at": change.at.isoformat()}
            for change in ConsentChange.objects.filter(customer=customer)
        ],
        "orders": orders,
        "events": [
            {"name": event.name, "occurred_at": event.occurred_at.isoformat(), "properties": event.properties,
             "external_id": event.external_id}
            for event in Event.objects.filter(customer=customer).order_by("occurred_at")
        ],  # fmt: skip
        "messages": _rows(Message.objects.filter(customer=customer).order_by("created_at"), ("customer", "links")),
        "scores": [
            {"model": str(score.model_version), "probability": score.probability, "decile": score.decile,
             "reasons": score.reasons, "scored_at": score.scored_at.isoformat()}
            for score in Score.objects.filter(customer=customer).select_related("model_version")
        ],  # fmt: skip
        "recommendations": _plain(recommendation_source()([customer.pk]).get(customer.pk, [])),
        "conversations": {"messages": conversations, "promotion_holds": holds},
        "memberships": sorted(
            SegmentMembership.objects.filter(customer=customer).values_list("segment__name", flat=True)
        ),
        "enrollments": [
            {"campaign": enrollment.campaign.name, "state": enrollment.state, "entered_at": enrollment.entered_at.isoformat(),
             "variant": enrollment.variant, "trigger": enrollment.trigger_data}
            for enrollment in Enrollment.objects.filter(customer=customer).select_related("campaign")
        ],  # fmt: skip
    }


def export_customer(external_id: str, *, requested_by: str) -> dict[str, Any]:
    """Return all of one customer's data as JSON-ready data, and record the export."""
    data = customer_data(_customer(external_id))
    counts = {key: len(value) if isinstance(value, list) else 1 for key, value in data.items()}
    PrivacyRequest.objects.create(
        kind=PrivacyRequestKind.EXPORT, subject=subject_hash(external_id), requested_by=requested_by[:150],
        at=timezone.now(), counts=counts,
    )  # fmt: skip
    return data


def erase_customer(external_id: str, *, requested_by: str) -> dict[str, int]:
    """Remove the customer's personal data from every table; keep aggregates on an anonymous row. Return counts."""
    from campaigns.models import Enrollment, Message, PromotionHold
    from ml.models import Score

    customer = _customer(external_id)
    now = timezone.now()
    with transaction.atomic():
        customer = Customer.objects.select_for_update().get(pk=customer.pk)
        address = customer.email
        counts: dict[str, int] = {}
        if address:
            # Kept as a keyed hash only: a re-import of the address, in any letter case, stays unmailed.
            Suppression.suppress(address, SuppressionReason.ERASED)
        inbound = InboundMessage.objects.filter(customer=customer)
        if address:
            inbound = inbound | InboundMessage.objects.filter(from_email__iexact=address)
        counts["promotion_holds"] = PromotionHold.objects.filter(customer=customer).delete()[0]
        Message.objects.filter(inbound_message__in=inbound).update(inbound_message=None)
        counts["conversations"] = inbound.delete()[0]
        counts["events"] = Event.objects.filter(customer=customer).delete()[0]
        counts["scores"] = Score.objects.filter(customer=customer).delete()[0]
        counts["memberships"] = SegmentMembership.objects.filter(customer=customer).delete()[0]
        counts["segment_changes"] = SegmentChange.objects.filter(customer=customer).delete()[0]
        counts["consent_history"] = ConsentChange.objects.filter(customer=customer).delete()[0]
        messages = Message.objects.filter(customer=customer)
        if address:
            messages = messages | Message.objects.filter(to_email__iexact=address)
        # Outcomes stay for campaign results; what names or reaches the person goes.
        counts["messages"] = messages.update(to_email="", subject="", links=[], error="", provider_id="")
        counts["enrollments"] = Enrollment.objects.filter(customer=customer).update(trigger_data={})
        counts["orders"] = Order.objects.filter(customer=customer).count()  # kept, on the anonymous row
        Customer.objects.filter(pk=customer.pk).update(
            external_id=f"erased-{uuid.uuid4().hex}", email="", email_hash="", first_name="", last_name="",
            locale="", timezone="", country="", city="", birth_date=None, gender="", attributes={},
            consent_state=Consent.OPTED_OUT, consent_source=ERASED_SOURCE, consent_at=now, signed_up_at=None,
        )  # fmt: skip
        # The admin's history named the customer in its entries: it keeps that something changed, not whom.
        LogEntry.objects.filter(
            content_type=ContentType.objects.get_for_model(Customer), object_id=str(customer.pk)
        ).update(object_repr="erased customer", change_message="[]")
        PrivacyRequest.objects.create(
            kind=PrivacyRequestKind.ERASURE, subject=subject_hash(external_id), requested_by=requested_by[:150],
            at=now, counts=counts,
        )  # fmt: skip
    return counts
