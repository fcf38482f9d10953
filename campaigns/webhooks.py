"""Bounces and complaints reported by an ESP, through django-anymail's normalised tracking events.

Anymail verifies and parses each ESP's webhook and sends one `tracking` signal per event; the
receiver only hands the event to `record_esp_event`, which suppresses the address.
"""

from campaigns.tracking import suppress_address
from marketing.models import SuppressionReason

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
