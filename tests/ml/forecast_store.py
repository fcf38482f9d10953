"""A shop whose weekly sales per category are given exactly, for the forecast tests.

`write_weekly_sales({"books": [3, 0, 5, ...]}, first_monday)` writes, for each category and week,
that many one-unit order lines, each in its own completed order placed on the Monday of the week
from noon UTC on, by customers of the category (one customer per category unless told otherwise),
on one product per category at `PRICE`. Rows are bulk-written, so a few years of weeks take well
under a second.
"""

from datetime import date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from marketing.models import Customer, Order, OrderLine, OrderStatus, Product

PRICE = Decimal("10.00")
UTC = ZoneInfo("UTC")


def write_weekly_sales(
    sales: dict[str, list[int]],
    first_monday: date,
    buyers: dict[str, list[Customer]] | None = None,
    price: Decimal = PRICE,
) -> dict[str, Product]:
    """Write the weekly unit sales of each category; return its product."""
    products = {}
    for category in sales:
        products[category] = Product.objects.create(
            sku=f"SKU-{category}"[:64], name=f"A {category} product", category=category, price=price
        )
    orders, lines = [], []
    counter = Order.objects.count()
    for category, weekly in sales.items():
        people = (buyers or {}).get(category) or [
            Customer.objects.create(external_id=f"buyer-{category}", email=f"buyer-{len(products)}-{counter}@example.com")
        ]
        for week, units in enumerate(weekly):
            placed = datetime.combine(first_monday + timedelta(weeks=week), time(12), tzinfo=UTC)
            for unit in range(units):
                counter += 1
                order = Order(
                    external_id=f"O-{counter:07d}",
                    customer=people[unit % len(people)],
                    placed_at=placed + timedelta(minutes=unit),
                    total=price,
                    status=OrderStatus.COMPLETED,
                )
                orders.append(order)
                lines.append((order, products[category]))
    Order.objects.bulk_create(orders, batch_size=2_000)
    OrderLine.objects.bulk_create(
        [OrderLine(order=order, product=product, quantity=1, unit_price=price) for order, product in lines],
        batch_size=2_000,
    )
    return products
