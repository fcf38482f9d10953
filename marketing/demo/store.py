"""Writing the demo shop to the database: catalogue first, then customers in rounds of CUSTOMER_ROUND."""

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from random import Random

from django.db import reset_queries, transaction
from django.db.models import F

from marketing.demo.behaviour import Timeline
from marketing.demo.catalogue import CATEGORIES, Catalogue, build_catalogue
from marketing.demo.customers import DemoCustomer, draw_customer
from marketing.demo.marketplace import (
    LOG_DATE_FORMAT,
    LOG_MAPPING,
    MARKETPLACE_SHARE,
    marketplace_sales,
    write_marketplace_log,
)
from marketing.demo.people import build_fakers
from marketing.demo.seasons import build_calendar
from marketing.imports import ImportReport, import_file
from marketing.models import Customer, Event, Order, OrderLine, OrderStatus, Product
from marketing.suppression import email_hash

# Customers simulated and written together: 500 customers make ~17,000 rows, a few MB of
# objects, so memory stays flat however many customers are asked for.
CUSTOMER_ROUND = 500
INSERT_BATCH = 2_000  # rows per INSERT on PostgreSQL; Django lowers it to SQLite's 999-variable limit
CATALOGUE_AGE_DAYS = 3 * 365


class StoreNotEmpty(Exception):
    """The database already holds an audience that generating would clash with."""


@dataclass(frozen=True)
class DemoSummary:
    products: int
    customers: int
    orders: int
    order_lines: int
    events: int
    revenue: Decimal  # completed orders only
    first_day: date
    last_day: date

    def describe(self) -> str:
        """Return the summary as one paragraph."""
        return (
            f"Generated a demo shop with {self.products:,} products and {self.customers:,} customers who placed "
            f"{self.orders:,} orders ({self.order_lines:,} order lines, €{self.revenue:,} revenue from completed "
            f"orders) and left {self.events:,} events between {self.first_day} and {self.last_day}."
        )


def generate_store(customers: int, days: int, seed: int, end_date: date, replace: bool = False) -> DemoSummary:
    """Write a believable shop with `days` days of history before `end_date`; the seed fixes every value."""
    if customers < 1 or days < 1:
        raise ValueError("A demo shop needs at least one customer and one day of history.")
    rng = Random(seed)
    calendar = build_calendar(end_date, days, tuple(category.name for category in CATEGORIES))
    catalogue = build_catalogue(rng)
    fakers = build_fakers(rng)
    start = datetime.combine(calendar.start, time(), tzinfo=UTC)
    totals = {"orders": 0, "order_lines": 0, "events": 0, "revenue": Decimal("0.00")}
    with transaction.atomic():
        clear_audience(replace)
        products = write_catalogue(catalogue, start - timedelta(days=CATALOGUE_AGE_DAYS))
        for first in range(1, customers + 1, CUSTOMER_ROUND):
            numbers = range(first, min(first + CUSTOMER_ROUND, customers + 1))
            round_ = [draw_customer(rng, fakers, number, catalogue, calendar, end_date) for number in numbers]
            write_round(round_, products, start, totals)
            reset_queries()  # with DEBUG on, Django would keep the SQL of every insert so far
        # bulk_create stamps created_at with the wall clock; the shop's own times keep reruns identical.
        # Events keep the write time: rewriting them took 10 s per 260,000 rows on PostgreSQL.
        Customer.objects.update(updated_at=F("created_at"))
        Order.objects.update(created_at=F("placed_at"), updated_at=F("placed_at"))
    return DemoSummary(
        products=len(products),
        customers=customers,
        first_day=calendar.start,
        last_day=calendar.last_day,
        **totals,
    )


@dataclass(frozen=True)
class DemoShop:
    """The generated shop, and the marketplace log imported into it."""

    summary: DemoSummary
    marketplace_log: Path
    marketplace: ImportReport


def build_demo_shop(customers: int, days: int, seed: int, end_date: date, folder: Path, replace: bool = False) -> DemoShop:
    """Generate the shop's own customers, then import a marketplace's log of buyers known only by their orders."""
    summary = generate_store(customers=customers, days=days, seed=seed, end_date=end_date, replace=replace)
    # A stream of its own, so the shop's customers are the same with or without the marketplace.
    rng = Random(f"marketplace-{seed}")
    calendar = build_calendar(end_date, days, tuple(category.name for category in CATEGORIES))
    sales = marketplace_sales(rng, round(customers * MARKETPLACE_SHARE), build_catalogue(Random(seed)), calendar)
    log = write_marketplace_log(folder / "marketplace-buyers.txt", sales)
    report = import_file("orders", log, mapping=LOG_MAPPING, delimiter="whitespace", date_format=LOG_DATE_FORMAT)
    return DemoShop(summary=summary, marketplace_log=log, marketplace=report)


def clear_audience(replace: bool) -> None:
    """Delete customers, the catalogue, orders and events when asked to, else refuse a non-empty store."""
    customers, products = Customer.objects.count(), Product.objects.count()
    if not (customers or products):
        return
    if not replace:
        raise StoreNotEmpty(
            f"The database already holds {customers:,} customers and {products:,} products. "
            "Pass --replace to delete them with their orders and events first (the suppression list is kept)."
        )
    # Children first: order lines protect their products.
    for model in (Event, OrderLine, Order, Product, Customer):
        model.objects.all().delete()


def write_catalogue(catalogue: Catalogue, listed_at: datetime) -> list[int]:
    """Insert the products; return their ids in catalogue order."""
    products = [
        Product(
            sku=spec.sku, name=spec.name, category=spec.category, price=spec.price, url=spec.url,
            image_url=spec.image_url, description=spec.description, in_stock=spec.in_stock,
        )
        for spec in catalogue.products
    ]
    Product.objects.bulk_create(products, batch_size=INSERT_BATCH)
    Product.objects.update(created_at=listed_at, updated_at=listed_at)
    return [product.pk for product in products]


def write_round(round_: list[DemoCustomer], products: list[int], start: datetime, totals: dict) -> None:
    """Insert a round of customers with their orders, order lines and events, numbering on from `totals`."""
    customers = [build_customer(demo, start) for demo in round_]
    signed_up = [customer.created_at for customer in customers]
    Customer.objects.bulk_create(customers, batch_size=INSERT_BATCH)
    # bulk_create stamps created_at with the wall clock: put back the sign-up time.
    for customer, created_at in zip(customers, signed_up, strict=True):
        customer.created_at = created_at
    Customer.objects.bulk_update(customers, ["created_at"], batch_size=INSERT_BATCH)

    orders, baskets = [], []
    for customer, demo in zip(customers, round_, strict=True):
        for purchase in demo.timeline.purchases:
            totals["orders"] += 1
            total = sum((line.unit_price * line.quantity for line in purchase.lines), Decimal("0.00"))
            orders.append(
                Order(
                    external_id=f"O{totals['orders']:07d}", customer_id=customer.pk,
                    placed_at=start + timedelta(seconds=purchase.at), total=total, status=purchase.status,
                )
            )
            baskets.append(purchase.lines)
            if purchase.status == OrderStatus.COMPLETED:
                totals["revenue"] += total
    Order.objects.bulk_create(orders, batch_size=INSERT_BATCH)
    lines = [
        OrderLine(order=order, product_id=products[line.product], quantity=line.quantity, unit_price=line.unit_price)
        for order, basket in zip(orders, baskets, strict=True)
        for line in basket
    ]
    OrderLine.objects.bulk_create(lines, batch_size=INSERT_BATCH)
    totals["order_lines"] += len(lines)

    placed = iter(orders)
    events = []
    for customer, demo in zip(customers, round_, strict=True):
        customer_orders = [next(placed) for _ in demo.timeline.purchases]
        for at, name, properties in customer_events(demo.timeline, customer_orders):
            totals["events"] += 1
            events.append(
                Event(
                    external_id=f"E{totals['events']:08d}", customer_id=customer.pk, name=name,
                    occurred_at=start + timedelta(seconds=at), properties=properties,
                )
            )
    Event.objects.bulk_create(events, batch_size=INSERT_BATCH)


def build_customer(demo: DemoCustomer, start: datetime) -> Customer:
    """Return the unsaved customer row, with the address hashed as Customer.save would."""
    person, profile = demo.person, demo.profile
    signed_up = start + timedelta(seconds=demo.timeline.signed_up_at)
    return Customer(
        external_id=person.external_id, email=person.email, email_hash=email_hash(person.email),
        first_name=person.first_name, last_name=person.last_name, locale=person.locale,
        timezone=person.timezone, country=person.country, city=person.city,
        birth_date=person.birth_date, gender=person.gender, attributes=demo.attributes,
        consent_state=profile.consent, consent_source="demo",
        consent_at=signed_up if profile.consent != "unknown" else None,
        signed_up_at=signed_up, first_seen_at=signed_up, created_at=signed_up,
    )


def customer_events(timeline: Timeline, orders: list[Order]) -> list[tuple[int, str, dict]]:
    """Return the customer's events in time order, with an order_placed event for each order."""
    placed = [
        (purchase.at, "order_placed", {"order_id": order.external_id, "total": str(order.total), "items": len(purchase.lines)})
        for purchase, order in zip(timeline.purchases, orders, strict=True)
    ]
    return sorted([*timeline.interactions, *placed], key=lambda event: event[0])
