"""What Kairos does with a customer's message: reply, hold promotional e-mail, suppress, hand it to a person.

Each action records itself on the message (`InboundMessage.actions`), so the inbox shows what Kairos
did and why it did not do more. Automatic replies never loop: a message that was itself sent by a
program, a bounce, mail from one of the shop's own addresses, or an address that already got
CONVERSATION_AUTO_REPLIES_PER_DAY automatic replies in the last day gets none.
"""

from datetime import datetime, timedelta
from email.utils import parseaddr

from django.conf import settings
from django.db import transaction

from campaigns.models import EmailTemplate, Message, MessageKind, PromotionHold
from campaigns.tracking import suppress_address
from marketing.inbound.mail import own_addresses
from marketing.models import Customer, InboundMessage, InboundStatus, SuppressionReason

AUTO_REPLY_WINDOW = timedelta(days=1)


def record_action(message_id: int, what: str, now: datetime, **changes) -> None:
    """Append to what Kairos did with a message, under its row lock, and apply any field changes."""
    message = InboundMessage.objects.select_for_update().get(pk=message_id)
    message.record(what, now)
    for name, value in changes.items():
        setattr(message, name, value)
    message.save(update_fields=["actions", "updated_at", *changes])


def sending_addresses() -> set[str]:
    """Every address Kairos sends from: the settings' and each template's sender and reply-to."""
    addresses = own_addresses()
    for from_email, reply_to in EmailTemplate.objects.values_list("from_email", "reply_to"):
        addresses.update(parseaddr(value)[1].lower() for value in (from_email, reply_to) if value)
    return addresses


def reply_address(message: InboundMessage) -> str:
    """Where an answer goes: the customer's stored address when the sender is a known customer, else the sender's.

    Order details are only ever sent to an address the shop already holds for that customer.
    """
    if message.customer_id:
        stored = Customer.objects.filter(pk=message.customer_id).values_list("email", flat=True).first()
        if stored:
            return stored
    return message.from_email


def auto_reply_refusal(message: InboundMessage, to_email: str, now: datetime) -> str:
    """Return why an automatic reply must not go out, or "" when it may."""
    if message.no_reply_reason:
        return message.no_reply_reason
    if not to_email:
        return "there is no address to answer"
    if to_email.lower() in sending_addresses() or message.from_email.lower() in sending_addresses():
        return "sent from the shop's own address"
    recent = Message.objects.filter(
        kind=MessageKind.AUTO_REPLY, to_email__iexact=to_email, created_at__gt=now - AUTO_REPLY_WINDOW
    ).count()
    if recent >= settings.CONVERSATION_AUTO_REPLIES_PER_DAY:
        return f"{recent} automatic replies went to this address in the last day already"
    return ""


def queue_reply(
    message_id: int,
    template_id: int,
    now: datetime,
    *,
    automatic: bool,
    enrollment=None,
    step=None,
    author: str = "",
) -> tuple[Message | None, str]:
    """Write the outbox row of a reply (delivery sends it); return it, or None and why nothing was queued.

    An automatic reply is one row per (enrollment, step), like every campaign message.
    """
    message = InboundMessage.objects.select_for_update().get(pk=message_id)
    to_email = reply_address(message)
    if automatic:
        refusal = auto_reply_refusal(message, to_email, now)
        if refusal:
            record_action(message_id, f"no automatic reply: {refusal}", now)
            return None, f"not replied: {refusal}"
    elif not to_email:
        return None, "not replied: the message has no address to answer"
    fields = {
        "kind": MessageKind.AUTO_REPLY if automatic else MessageKind.REPLY,
        "customer_id": message.customer_id,
        "inbound_message_id": message.pk,
        "template_id": template_id,
        "to_email": to_email,
        "next_attempt_at": now,
        "created_at": now,
    }
    if enrollment is not None:
        reply, created = Message.objects.get_or_create(enrollment=enrollment, step=step, defaults=fields)
        if not created:
            return reply, f"reply {reply.pk} was already decided ({reply.status})"
    else:
        reply = Message.objects.create(**fields)
    template_name = EmailTemplate.objects.values_list("name", flat=True).get(pk=template_id)
    who = "automatically" if automatic else f"by {author or 'a person'}"
    changes = {"status": InboundStatus.ANSWERED}
    if not automatic:
        changes |= {"needs_person": False, "needs_person_reason": ""}
    record_action(
        message_id, f"replied {who} with {template_name!r} to {to_email} (message {reply.pk})", now, **changes
    )
    return reply, f"queued reply {reply.pk}"


def reply_by_person(message_id: int, template_id: int, author: str, now: datetime) -> tuple[Message | None, str]:
    """Queue a reply chosen in the inbox and hand it to delivery after commit."""
    from campaigns.delivery import send_later

    with transaction.atomic():
        reply, outcome = queue_reply(message_id, template_id, now, automatic=False, author=author)
        if reply is not None:
            transaction.on_commit(lambda: send_later([reply.pk]))
    return reply, outcome


def hold_promotions(message_id: int | None, customer_id: int, days: int, now: datetime, reason: str) -> str:
    """Hold promotional e-mail to the customer for `days` from now; an existing later hold stays."""
    until = now + timedelta(days=days)
    hold = PromotionHold.objects.filter(customer_id=customer_id).order_by("-until").first()
    if hold is not None and hold.until >= until:
        outcome = f"promotional e-mail already held until {hold.until:%Y-%m-%d %H:%M} UTC"
    else:
        PromotionHold.objects.create(
            customer_id=customer_id, until=until, reason=reason[:200], inbound_message_id=message_id, created_at=now
        )
        outcome = f"promotional e-mail held for {days} days, until {until:%Y-%m-%d %H:%M} UTC"
    if message_id is not None:
        record_action(message_id, outcome, now)
    return outcome


def flag_for_person(message_id: int, reason: str, now: datetime) -> str:
    record_action(
        message_id, f"flagged for a person: {reason}", now, needs_person=True, needs_person_reason=reason[:200]
    )
    return f"needs a person: {reason}"


def suppress_sender(message_id: int, now: datetime) -> str:
    """Suppress the address of the customer who asked to hear no more from the shop."""
    message = InboundMessage.objects.get(pk=message_id)
    address = reply_address(message)
    if not address:
        record_action(message_id, "not suppressed: the message has no address", now)
        return "not suppressed: no address"
    suppress_address(
        address,
        SuppressionReason.UNSUBSCRIBED,
        source="unsubscribe request by message",
        properties={"inbound_message": message.pk},
    )
    record_action(message_id, f"suppressed {address}: no more marketing e-mail", now)
    return f"suppressed {address}"
