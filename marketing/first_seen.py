"""A customer exists from their first sign of life: the earliest of their sign-up, first order and first event.

`Customer.first_seen_at` is what models, snapshots and tenure read, never `created_at`, which is
only the moment a row was written (an order log imported today would otherwise make every buyer
a day old). Signs of life only ever add up, so every writer lowers the column to the earliest
moment it writes (`note_first_seen`), in one statement per batch; `recompute_first_seen` derives
it afresh from what is stored, for repairs.
"""

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime

from django.db import connection
from django.db.models import DateTimeField, OuterRef, Subquery, Value
from django.db.models.functions import Coalesce, Least, NullIf

# Stands in for "never" inside LEAST, which SQLite answers with NULL as soon as one argument is NULL.
NEVER = datetime(9999, 12, 31, tzinfo=UTC)


def earliest_by_customer(pairs: Iterable[tuple[int, datetime]]) -> dict[int, datetime]:
    """Return each customer's earliest moment among (customer id, moment) pairs."""
    earliest: dict[int, datetime] = {}
    for customer_id, moment in pairs:
        if moment is not None and (customer_id not in earliest or moment < earliest[customer_id]):
            earliest[customer_id] = moment
    return earliest


def note_first_seen(moments: Mapping[int, datetime]) -> int:
    """Lower each customer's `first_seen_at` to the given moment where it is later or unknown; return how many moved."""
    from marketing.models import Customer

    moments = {customer_id: moment for customer_id, moment in moments.items() if customer_id and moment is not None}
    if not moments:
        return 0
    table = connection.ops.quote_name(Customer._meta.db_table)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                f"UPDATE {table} AS c SET first_seen_at = v.at FROM unnest(%s::bigint[], %s::timestamptz[]) AS v(id, at) "
                "WHERE c.id = v.id AND (c.first_seen_at IS NULL OR c.first_seen_at > v.at)",
                [list(moments), list(moments.values())],
            )
            return cursor.rowcount
        changed = 0
        for customer_id, moment in moments.items():
            stored = connection.ops.adapt_datetimefield_value(moment)
            cursor.execute(
                f"UPDATE {table} SET first_seen_at = %s WHERE id = %s AND (first_seen_at IS NULL OR first_seen_at > %s)",
                [stored, customer_id, stored],
            )
            changed += cursor.rowcount
        return changed


def first_seen_expression():
    """Return the ORM expression of a customer's first sign of life, from what is stored (NULL when none)."""
    from marketing.models import Event, Order

    never = Value(NEVER, output_field=DateTimeField())
    first_order = Order.objects.filter(customer=OuterRef("pk")).order_by("placed_at").values("placed_at")[:1]
    first_event = Event.objects.filter(customer=OuterRef("pk")).order_by("occurred_at").values("occurred_at")[:1]
    return NullIf(
        Least(
            Coalesce("signed_up_at", never),
            Coalesce(Subquery(first_order, output_field=DateTimeField()), never),
            Coalesce(Subquery(first_event, output_field=DateTimeField()), never),
        ),
        never,
    )


def recompute_first_seen(customer_ids: Iterable[int] | None = None) -> int:
    """Derive `first_seen_at` afresh from sign-ups, orders and events (all customers, or these); return rows written."""
    from marketing.models import Customer

    customers = Customer.objects.all() if customer_ids is None else Customer.objects.filter(pk__in=list(customer_ids))
    return customers.update(first_seen_at=first_seen_expression())
