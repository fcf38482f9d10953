"""What each kind of import accepts: its fields, their parsers, its key and its references."""

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from typing import Any

from django.db import models

from marketing import models as audience
from marketing.imports import values
from marketing.suppression import email_hash

CONSENT_SPELLINGS = {
    **dict.fromkeys(["opted_in", "opt_in", "opt-in", "subscribed", "yes", "y", "true", "1"], audience.Consent.OPTED_IN),
    **dict.fromkeys(["opted_out", "opt_out", "opt-out", "unsubscribed", "no", "n", "false", "0"], audience.Consent.OPTED_OUT),
    "unknown": audience.Consent.UNKNOWN,
}
STATUS_SPELLINGS = {
    **dict.fromkeys(["pending", "new", "open", "placed"], audience.OrderStatus.PENDING),
    **dict.fromkeys(["completed", "complete", "paid", "fulfilled", "shipped", "delivered"], audience.OrderStatus.COMPLETED),
    **dict.fromkeys(["cancelled", "canceled", "void"], audience.OrderStatus.CANCELLED),
    **dict.fromkeys(["refunded", "returned"], audience.OrderStatus.REFUNDED),
}


@dataclass(frozen=True)
class Field:
    """One importable field: its name on the model and how a cell becomes its value."""

    name: str
    parse: values.Parser
    required: bool = False
    json: bool = False  # a JSON object: `--map attributes.tier=Tier` fills one key of it


@dataclass(frozen=True)
class Reference:
    """A field that names another row by its natural key, e.g. an order's customer."""

    model: type[models.Model]
    lookup: str
    column: str  # the foreign key column written, e.g. customer_id
    create_missing: bool = False


@dataclass(frozen=True)
class Context:
    """What parsing depends on besides the cell: the date format, the shop's zone, the source."""

    date_format: str | None
    default_zone: tzinfo
    source: str
    now: datetime


@dataclass(frozen=True)
class Schema:
    kind: str
    model: type[models.Model]
    key: tuple[str, ...]
    fields: tuple[Field, ...]
    references: dict[str, Reference] = field(default_factory=dict)
    # Fields whose values identify a row when the file carries no key (transaction logs).
    derive_key_from: tuple[str, ...] = ()
    complete: Callable[[dict[str, Any], Context], None] | None = None
    # (field naming the customer, field holding a moment): each row is a sign of life of that customer.
    first_seen: tuple[str, str] | None = None



def _complete_customer(row: dict[str, Any], context: Context) -> None:
    """Add the address hash, and say where consent came from when the file gave consent."""
    if row.get("email") is not None:
        row["email_hash"] = email_hash(row["email"])
    if row.get("consent_state") is not None:
        if row.get("consent_source") is None:
            row["consent_source"] = f"import:{context.source}"[:120]
        if row.get("consent_at") is None:
            row["consent_at"] = context.now


def build_schemas(context: Context) -> dict[str, Schema]:
    """Return the schema of every import kind, with date parsing bound to the context."""
    moment = values.datetime_parser(context.date_format, context.default_zone)
    day = values.date_parser(context.date_format)
    return {
        "customers": Schema(
            kind="customers",
            model=audience.Customer,
            key=("external_id",),
            fields=(
                Field("external_id", values.identifier(), required=True),
                Field("email", values.email),
                Field("first_name", values.text(150)),
                Field("last_name", values.text(150)),
                Field("locale", values.locale),
                Field("timezone", values.time_zone),
                Field("country", values.country),
                Field("city", values.text(120)),
                Field("birth_date", day),
                Field("gender", values.text(32)),
                Field("attributes", values.json_object, json=True),
                Field("consent_state", values.choice(CONSENT_SPELLINGS)),
                Field("consent_source", values.text(120)),
                Field("consent_at", moment),
                Field("signed_up_at", moment),
            ),
            complete=_complete_customer,
            first_seen=("external_id", "signed_up_at"),
        ),
        "products": Schema(
            kind="products",
            model=audience.Product,
            key=("sku",),
            fields=(
                Field("sku", values.identifier(64), required=True),
                Field("name", values.text(255), required=True),
                Field("category", values.text(120)),
                Field("price", values.decimal(), required=True),
                Field("currency", values.currency),
                Field("url", values.text(500)),
                Field("image_url", values.text(500)),
                Field("description", values.text(20_000)),
                Field("in_stock", values.boolean),
            ),
        ),
        "orders": Schema(
            kind="orders",
            model=audience.Order,
            key=("external_id",),
            fields=(
                Field("external_id", values.identifier(), required=True),
                Field("customer", values.identifier(), required=True),
                Field("placed_at", moment, required=True),
                Field("total", values.decimal(), required=True),
                Field("currency", values.currency),
                Field("status", values.choice(STATUS_SPELLINGS)),
            ),
            references={"customer": Reference(audience.Customer, "external_id", "customer_id", create_missing=True)},
            derive_key_from=("customer", "placed_at", "total", "currency", "status"),
            first_seen=("customer", "placed_at"),
        ),
        "order_lines": Schema(
            kind="order_lines",
            model=audience.OrderLine,
            key=("order", "product"),
            fields=(
                Field("order", values.identifier(), required=True),
                Field("product", values.identifier(64), required=True),
                Field("quantity", values.positive_integer),
                Field("unit_price", values.decimal(), required=True),
            ),
            references={
                "order": Reference(audience.Order, "external_id", "order_id"),
                "product": Reference(audience.Product, "sku", "product_id"),
            },
        ),
        "events": Schema(
            kind="events",
            model=audience.Event,
            key=("external_id",),
            fields=(
                Field("external_id", values.identifier(), required=True),
                Field("customer", values.identifier(), required=True),
                Field("name", values.event_name, required=True),
                Field("occurred_at", moment, required=True),
                Field("properties", values.json_object, json=True),
            ),
            references={"customer": Reference(audience.Customer, "external_id", "customer_id", create_missing=True)},
            derive_key_from=("customer", "name", "occurred_at", "properties"),
            first_seen=("customer", "occurred_at"),
        ),
    }


KINDS = ("customers", "products", "orders", "order_lines", "events")
