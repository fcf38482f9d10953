"""Reading the --as-of option shared by the ML commands."""

from datetime import UTC, datetime

from django.core.management.base import CommandError


def as_of_moment(text: str | None) -> datetime | None:
    """Return the moment an --as-of value names (a date is its midnight UTC), or None for now."""
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise CommandError(f"--as-of {text!r} is not a date (YYYY-MM-DD) or an ISO 8601 moment") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
