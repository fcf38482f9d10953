"""What an ESP reports back through django-anymail: bounces, complaints, mail to the unsubscribe address, and
customers' mail to the shop.

Anymail verifies and parses each ESP's webhook and sends one `tracking` signal per event, and one
`inbound` signal per received mail; the receivers only hand them to the plain functions here.
"""

import re

from django.conf import settings
from django.utils import timezone

from campaigns.tracking import BadToken, suppress_address, unsubscribe
from marketing.inbound.mail import read_mail
from marketing.inbound.store import store_email
from marketing.models import Customer, SuppressionReason
from marketing.suppression import email_hash

_UNSUBSCRIBE_SUBJECT = re.compile(r"\bunsubscribe\s+(\S+)", re.I)

# Anymail's normalised event types that mean "never mail this address again". A soft bounce
# ("deferred") is the ESP retrying and means nothing yet.
SUPPRESSING_EVENTS = {
    "bounced": SuppressionReason.BOUNCED,
    "complained": SuppressionReason.COMPLAINED,
    "unsubscribed": SuppressionReason.UNSUBSCRIBED,
}


def record_esp_event(event_type: str, recipient: str, *, esp_name: str, provider_id: str = "") -> bool:
    """Suppress the recipient of a hard bounce, complaint or ESP unsubscribe. Return whether it did."""
    reason = SUPPRESSING_EVENTS.get(event_type)
    if reason is None or not recipient:
        return False
    suppress_address(
        recipient, reason, source=f"{esp_name} webhook", properties={"provider_id": provider_id, "esp": esp_name}
    )
    return True


def on_tracking_event(sender, event, esp_name: str, **kwargs) -> None:
    """Receive anymail's `tracking` signal."""
    record_esp_event(event.event_type, event.recipient or "", esp_name=esp_name, provider_id=event.message_id or "")


def is_unsubscribe_address(address: str) -> bool:
    """Tell whether mail to this address is an unsubscribe request (the mailto of List-Unsubscribe)."""
    address = address.strip().lower()
    if settings.UNSUBSCRIBE_MAILTO:
        return address == settings.UNSUBSCRIBE_MAILTO.strip().lower()
    return address.partition("@")[0] == "unsubscribe"


def record_unsubscribe_mail(subject: str, sender: str) -> bool:
    """Unsubscribe on a mail to the unsubscribe address. Return whether anyone was unsubscribed.

    The subject Kairos put in the mailto carries the message's signed token. A mail without a
    valid one unsubscribes its sender, if the sender is a customer: the ESP has checked SPF and DMARC.
    """
    match = _UNSUBSCRIBE_SUBJECT.search(subject or "")
    if match:
        try:
            unsubscribe(match.group(1), source="unsubscribe e-mail")
            return True
        except BadToken:
            pass
    if sender and Customer.objects.filter(email_hash=email_hash(sender)).exists():
        suppress_address(sender, SuppressionReason.UNSUBSCRIBED, source="unsubscribe e-mail")
        return True
    return False


def is_conversation_address(address: str) -> bool:
    """Tell whether mail to this address is a customer writing to the shop (CONVERSATION_INBOUND_ADDRESSES, or any)."""
    address = address.strip().lower()
    if is_unsubscribe_address(address):
        return False
    wanted = {item.strip().lower() for item in settings.CONVERSATION_INBOUND_ADDRESSES}
    return not wanted or address in wanted


def on_inbound_message(sender, event, esp_name: str, **kwargs) -> None:
    """Receive anymail's `inbound` signal: an unsubscribe by mail, or a customer's message to the shop."""
    message = event.message
    if message is None:
        return
    recipients = [address.addr_spec for address in message.to] + (
        [message.envelope_recipient] if message.envelope_recipient else []
    )
    if any(is_unsubscribe_address(address) for address in recipients):
        record_unsubscribe_mail(message.subject or "", message.from_email.addr_spec if message.from_email else "")
        return
    if any(is_conversation_address(address) for address in recipients):
        store_email(read_mail(message, envelope_sender=message.envelope_sender), timezone.now())
