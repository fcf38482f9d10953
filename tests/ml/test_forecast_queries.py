"""Weekly sales as the forecasts read them: weeks in the shop's zone, what is left out, and renamed categories."""

from datetime import UTC, date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from marketing.models import Order, OrderLine, OrderStatus, Product
from ml.forecast import ALL_SERIES
from ml.forecast_queries import CategoryNameClash, first_complete_week, forecast_start, read_weekly_sales
from tests.factories import CustomerFactory, OrderFactory, OrderLineFactory, ProductFactory

pytestmark = pytest.mark.django_db

BERLIN = ZoneInfo("Europe/Berlin")
AS_OF = datetime(2026, 3, 18, 9, 0, tzinfo=UTC)  # a Wednesday: the history ends with the week of 9 March


def sales(read) -> list[tuple]:
    return sorted(
        (series, week.isoformat(), units, revenue)
        for series, week, units, revenue in read.frame.itertuples(index=False)
    )


def order(at: datetime, lines: list[tuple[Product, int]], status=OrderStatus.COMPLETED, total=None) -> Order:
    placed = OrderFactory(
        placed_at=at,
        status=status,
        total=total if total is not None else sum((product.price * quantity for product, quantity in lines), Decimal(0)),
    )
    for product, quantity in lines:
        OrderLineFactory(order=placed, product=product, quantity=quantity)
    return placed


def test_weeks_are_mondays_in_the_shops_zone():
    books = ProductFactory(category="books", price=Decimal("10.00"))
    order(datetime(2026, 2, 23, 12, tzinfo=UTC), [(books, 1)])  # opens the week of 23 February
    order(datetime(2026, 3, 1, 22, 30, tzinfo=UTC), [(books, 2)])  # Sunday 23:30 in Berlin
    order(datetime(2026, 3, 1, 23, 30, tzinfo=UTC), [(books, 3)])  # Monday 00:30 in Berlin

    read = read_weekly_sales(AS_OF, BERLIN)

    assert sales(read) == [
        (ALL_SERIES, "2026-02-23", 3.0, 30.0),
        (ALL_SERIES, "2026-03-02", 3.0, 30.0),
        ("books", "2026-02-23", 3.0, 30.0),
        ("books", "2026-03-02", 3.0, 30.0),
    ]
    assert (read.first_week, read.end_week, read.weeks) == (date(2026, 2, 23), date(2026, 3, 16), 3)
    assert read.cutoff == datetime(2026, 3, 16, tzinfo=BERLIN)


def test_the_week_of_as_of_is_not_read_it_is_the_first_week_forecast():
    books = ProductFactory(category="books", price=Decimal("10.00"))
    order(datetime(2026, 3, 9, 8, tzinfo=UTC), [(books, 1)])
    order(datetime(2026, 3, 16, 8, tzinfo=UTC), [(books, 5)])  # Monday of the week of as_of

    read = read_weekly_sales(AS_OF, BERLIN)

    assert sales(read) == [(ALL_SERIES, "2026-03-09", 1.0, 10.0), ("books", "2026-03-09", 1.0, 10.0)]
    assert forecast_start(AS_OF, BERLIN) == (date(2026, 3, 16), datetime(2026, 3, 16, tzinfo=BERLIN))


def test_a_first_week_that_starts_mid_week_is_left_out():
    assert first_complete_week(date(2026, 3, 2)) == date(2026, 3, 2)
    assert first_complete_week(date(2026, 3, 5)) == date(2026, 3, 9)


def test_refunds_and_cancellations_are_left_out_and_counted():
    books = ProductFactory(category="books", price=Decimal("10.00"))
    order(datetime(2026, 3, 2, 9, tzinfo=UTC), [(books, 1)])
    order(datetime(2026, 3, 3, 9, tzinfo=UTC), [(books, 4)], status=OrderStatus.REFUNDED)
    order(datetime(2026, 3, 4, 9, tzinfo=UTC), [(books, 2)], status=OrderStatus.CANCELLED)
    order(datetime(2026, 3, 5, 9, tzinfo=UTC), [(books, 3)], status=OrderStatus.CANCELLED)
    order(datetime(2026, 3, 6, 9, tzinfo=UTC), [(books, 1)], status=OrderStatus.PENDING)

    read = read_weekly_sales(AS_OF, BERLIN)

    assert sales(read) == [(ALL_SERIES, "2026-03-02", 2.0, 20.0), ("books", "2026-03-02", 2.0, 20.0)]
    assert read.kept_orders == 2
    assert read.excluded == {
        "cancelled": {"orders": 2, "total": 50.0},
        "refunded": {"orders": 1, "total": 40.0},
    }


def test_orders_without_lines_count_towards_the_shops_revenue_but_not_units():
    books = ProductFactory(category="books", price=Decimal("10.00"))
    order(datetime(2026, 3, 2, 9, tzinfo=UTC), [(books, 2)], total=Decimal("24.50"))  # shipping on top
    order(datetime(2026, 3, 3, 9, tzinfo=UTC), [], total=Decimal("99.00"))
    order(datetime(2026, 3, 10, 9, tzinfo=UTC), [], total=Decimal("1.00"))

    read = read_weekly_sales(AS_OF, BERLIN)

    assert sales(read) == [
        (ALL_SERIES, "2026-03-02", 2.0, 123.5),
        (ALL_SERIES, "2026-03-09", 0.0, 1.0),
        ("books", "2026-03-02", 2.0, 20.0),
    ]
    assert (read.orders_without_lines, read.revenue_without_lines) == (2, 100.0)
    assert read.report()["orders_without_lines"] == 2


def test_a_category_renamed_in_the_catalogue_keeps_its_history():
    novel = ProductFactory(category="books", price=Decimal("10.00"))
    atlas = ProductFactory(category="books", price=Decimal("20.00"))
    order(datetime(2026, 3, 2, 9, tzinfo=UTC), [(novel, 1), (atlas, 1)])
    order(datetime(2026, 3, 9, 9, tzinfo=UTC), [(novel, 2)])

    Product.objects.filter(category="books").update(category="literature")
    read = read_weekly_sales(AS_OF, BERLIN)

    assert sales(read) == [
        (ALL_SERIES, "2026-03-02", 2.0, 30.0),
        (ALL_SERIES, "2026-03-09", 2.0, 20.0),
        ("literature", "2026-03-02", 2.0, 30.0),
        ("literature", "2026-03-09", 2.0, 20.0),
    ]
    assert OrderLine.objects.count() == 3


def test_a_category_named_like_the_whole_shop_is_refused():
    clash = ProductFactory(category=ALL_SERIES)
    order(datetime(2026, 3, 2, 9, tzinfo=UTC), [(clash, 1)])

    with pytest.raises(CategoryNameClash, match="a product category is named '__all__'"):
        read_weekly_sales(AS_OF, BERLIN)


def test_a_store_without_orders_reads_no_weeks():
    CustomerFactory()

    read = read_weekly_sales(AS_OF, BERLIN)

    assert (read.first_week, read.weeks, len(read.frame)) == (None, 0, 0)
