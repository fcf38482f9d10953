"""Time windows shared by the behavioural rule types."""

from datetime import datetime, timedelta
from typing import Any

from marketing.segments.registry import MAX_DAYS, whole_number


def window_start(config: dict[str, Any], now: datetime) -> datetime | None:
    """Return the start of the rule's "within the last N days" window, or None without one."""
    days = config.get("within_days")
    return None if days is None else now - timedelta(days=days)


def clean_window(config: dict[str, Any]) -> int | None:
    return whole_number(config, "within_days", minimum=1, maximum=MAX_DAYS, required=False)


def in_window(moment: datetime, start: datetime | None, now: datetime) -> bool:
    return moment <= now and (start is None or moment >= start)
