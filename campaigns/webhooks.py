"""What an ESP reports back through django-anymail: bounces, complaints, and mail to the unsubscribe address.

Anymail verifies and parses each ESP's webhook and sends one `tracking` signal per event, and one
`inbound` signal per received mail; the receivers only hand them to the plain functions here.
"""

import re

from django.conf import settings

from campaigns.tracking import BadToken, suppress_address, unsubscribe
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


def on_inbound_message(sender, event, esp_name: str, **kwargs) -> None:
    """Receive anymail's `inbound` signal; only mail to the unsubscribe address is Kairos's business here."""
    message = event.message
    if message is None:
        return
    recipients = [address.addr_spec for address in message.to] + (
        [message.envelope_recipient] if message.envelope_recipient else []
    )
    if any(is_unsubscribe_address(address) for address in recipients):
        record_unsubscribe_mail(message.subject or "", message.from_email.addr_spec if message.from_email else "")
