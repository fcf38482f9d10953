"""Marketplace buyers: customers the shop knows only from a marketplace's order log.

They have no account, leave no events and give no address: a transaction log of buyer, date and
amount is all the shop gets, as with a real marketplace's sales export. They behave like the shop's
own customers (the same profiles and calendar), and the demo imports their log through the real
importer, so part of the demo audience exists only from its first order. Pure: no Django.
"""

import dataclasses
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from random import Random

from marketing.demo.behaviour import draw_profile, simulate_customer
from marketing.demo.catalogue import Catalogue
from marketing.demo.seasons import Calendar

# Marketplace buyers per customer of the shop's own.
MARKETPLACE_SHARE = 0.25
SOLD_STATUSES = frozenset({"completed", "pending"})  # a marketplace reports sales, not cancellations
LOG_COLUMNS = ("buyer", "date", "amount")
LOG_MAPPING = {"customer": "buyer", "placed_at": "date", "total": "amount"}
LOG_DATE_FORMAT = "%Y%m%d"


def marketplace_sales(rng: Random, buyers: int, catalogue: Catalogue, calendar: Calendar) -> list[tuple[str, date, Decimal]]:
    """Return (buyer id, day, amount) of every sale to `buyers` marketplace customers, by buyer then time."""
    start = datetime.combine(calendar.start, time(), tzinfo=UTC)
    sales = []
    for number in range(1, buyers + 1):
        # Never mailed: the marketplace keeps its buyers' addresses to itself.
        profile = dataclasses.replace(draw_profile(rng, calendar.days, 0, calendar.acquisition_bursts), consent="unknown")
        timeline = simulate_customer(rng, profile, catalogue, calendar)
        for purchase in timeline.purchases:
            if purchase.status in SOLD_STATUSES:
                amount = sum((line.unit_price * line.quantity for line in purchase.lines), Decimal("0.00"))
                day = (start + timedelta(seconds=purchase.at)).date()
                sales.append((f"MKT{number:06d}", day, amount))
    return sales


def write_marketplace_log(path: Path, sales: list[tuple[str, date, Decimal]]) -> Path:
    """Write the sales as the marketplace exports them: whitespace-aligned columns, dates as YYYYMMDD."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(f"{LOG_COLUMNS[0]:<12}{LOG_COLUMNS[1]:<12}{LOG_COLUMNS[2]:>10}\n")
        for buyer, day, amount in sales:
            handle.write(f"{buyer:<12}{day:{LOG_DATE_FORMAT}}    {amount:>10.2f}\n")
    return path
