"""What a reply template sees: the customer's message, and the order it is about (plain data, never ORM rows).

The order is the one the message names, if it is one of this customer's; else the customer's latest.
A message that names an order number the customer does not have gets no order and keeps the number,
so the reply can say plainly that no such order was found, rather than quote another.
"""

import re

from marketing.models import InboundMessage, Order

EXCERPT_CHARS = 300
# Something shaped like an order number: digits, maybe after a short prefix (#10234, ORD-2024-5532, SO88213).
_REFERENCE = re.compile(r"(?<![A-Za-z0-9])([A-Za-z]{0,5}[-_]?\d[\dA-Za-z-]{3,30})(?![A-Za-z0-9])")
_DATE = re.compile(r"\d{4}-\d{1,2}-\d{1,2}|\d{1,2}-\d{1,2}-\d{2,4}")
# An order number is trusted as one only when the text calls it one.
_ORDER_WORDS = re.compile(r"(order|ref|reference|#|订单|单号|订单号|编号)", re.I)


def order_references(text: str) -> list[str]:
    """Return the tokens of a text that may be order numbers, in order, without a leading '#'."""
    return [match.group(1).strip("-_") for match in _REFERENCE.finditer(text.replace("＃", "#"))]


def named_reference(text: str) -> str:
    """Return the first token the text calls an order number ("order 10234", "订单号 2024…"), or ""."""
    normalised = text.replace("＃", "#")
    for match in _REFERENCE.finditer(normalised):
        if _DATE.fullmatch(match.group(1)):
            continue  # "ordered on 2026-03-02" names a day, not an order
        if _ORDER_WORDS.search(normalised[max(0, match.start() - 20) : match.start()]):
            return match.group(1).strip("-_")
    return ""


def order_data(order: Order | None, *, named: bool = False) -> dict:
    if order is None:
        return {}
    return {
        "named": named,
        "external_id": order.external_id,
        "status": order.status,
        "status_label": order.get_status_display(),
        "placed_at": order.placed_at.isoformat(),
        "placed_on": f"{order.placed_at:%Y-%m-%d}",
        "total": f"{order.total:.2f}",
        "currency": order.currency,
    }


def order_for(customer_id: int | None, text: str) -> tuple[Order | None, str]:
    """Return the order a message is about and the order number it named that matched nothing ("" if none)."""
    if customer_id is None:
        return None, named_reference(text)
    orders = Order.objects.filter(customer_id=customer_id)
    candidates = order_references(text)
    if candidates:
        variants = {variant for candidate in candidates for variant in (candidate, candidate.upper(), f"#{candidate}")}
        named = orders.filter(external_id__in=variants).order_by("-placed_at").first()
        if named is not None:
            return named, ""
        unmatched = named_reference(text)
        if unmatched:
            return None, unmatched
    return orders.order_by("-placed_at", "-pk").first(), ""


def reply_context(message: InboundMessage | None) -> tuple[dict, dict]:
    """Return the `message` and `order` views for a reply template."""
    if message is None:
        return {}, {}
    text = f"{message.subject}\n{message.body}"
    order, unmatched = order_for(message.customer_id, text)
    named = order is not None and order.external_id.lstrip("#").upper() in {r.upper() for r in order_references(text)}
    view = {
        "subject": message.subject,
        "excerpt": message.body[:EXCERPT_CHARS] + ("…" if len(message.body) > EXCERPT_CHARS else ""),
        "received_at": message.received_at.isoformat(),
        "received_on": f"{message.received_at:%Y-%m-%d}",
        "language": message.language,
        "intent": message.intent,
        "order_reference": unmatched,
    }
    return view, order_data(order, named=named)
