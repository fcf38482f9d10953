"""The history of consent: every change to a customer's consent is kept with its source and time."""

from collections.abc import Iterable
from datetime import datetime

from marketing.models import ConsentChange


def record_consent_changes(customer_ids: Iterable[int], state: str, source: str, at: datetime) -> int:
    """Store one history row per customer whose consent became `state`; return how many."""
    rows = [ConsentChange(customer_id=pk, state=state, source=source[:120], at=at) for pk in customer_ids]
    ConsentChange.objects.bulk_create(rows, batch_size=1000)
    return len(rows)
