"""The aggregates SQL: exact values for a hand-made history, and nothing from after the cutoff ever leaks in."""

from datetime import timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pandas as pd
import pytest

from marketing.models import Customer, Order, OrderStatus
from ml.features import build_features
from ml.queries import customer_id_ranges, read_aggregates, read_labels, read_season_index, sensitive_attributes
from tests.factories import CustomerFactory, EventFactory, OrderFactory, OrderLineFactory, ProductFactory
from tests.ml.conftest import AS_OF, JOINED

pytestmark = pytest.mark.django_db

DAY_S = 86_400.0
AS_OF_T = AS_OF.timestamp()
# SQLite turns moments into epoch seconds through julianday(), a double of about 2.46e6 days.
EPOCH_TOLERANCE_S = 1e-3


def days_before(days: float):
    return AS_OF - timedelta(days=days)


def order(customer, days: float, total: str, status: str = OrderStatus.COMPLETED, lines: tuple = ()):
    """Create an order `days` before the cutoff with (product, quantity, unit price) lines."""
    placed = OrderFactory(customer=customer, placed_at=days_before(days), total=Decimal(total), status=status)
    for product, quantity, unit_price in lines:
        OrderLineFactory(order=placed, product=product, quantity=quantity, unit_price=Decimal(unit_price))
    return placed


def joined(customer, moment=JOINED):
    Customer.objects.filter(pk=customer.pk).update(signed_up_at=moment, first_seen_at=moment)
    return customer


@pytest.fixture
def regular():
    """A customer with five kept orders, a cancelled and a refunded one, baskets in two categories, and events."""
    book = ProductFactory(category="books")
    mug = ProductFactory(category="kitchen")
    customer = joined(CustomerFactory())
    order(customer, 3, "50.00", lines=((book, 2, "10.00"), (mug, 1, "30.00")))
    order(customer, 20, "30.00", lines=((book, 1, "30.00"),))
    order(customer, 60, "20.00")
    order(customer, 120, "40.00")
    order(customer, 500, "10.00")
    order(customer, 5, "999.00", status=OrderStatus.CANCELLED, lines=((mug, 5, "100.00"),))
    order(customer, 10, "888.00", status=OrderStatus.REFUNDED)
    for name, days in [
        ("product_viewed", 1), ("product_viewed", 10), ("product_viewed", 40), ("cart_added", 2),
        ("email_clicked", 100), ("email_opened", 400), ("order_placed", 1),
    ]:  # fmt: skip
        EventFactory(customer=customer, name=name, occurred_at=days_before(days))
    return customer


NOT_SEEN = {
    f"{name}_{days}d": 0 for name in ("session_started", "checkout_started", "email_opened") for days in (7, 30, 90)
}
REGULAR_AGGREGATES = {
    "first_seen_t": JOINED.timestamp(),
    "orders_all": 5, "order_days_all": 5, "revenue_all": 150.0,
    "first_order_t": AS_OF_T - 500 * DAY_S, "last_order_t": AS_OF_T - 3 * DAY_S,
    "returned_orders": 2,
    "orders_7d": 1, "revenue_7d": 50.0,
    "orders_30d": 2, "revenue_30d": 80.0,
    "orders_90d": 3, "revenue_90d": 100.0,
    "orders_365d": 4, "revenue_365d": 140.0,
    "revenue_prev_90d": 40.0,
    # Gaps between kept orders: 380, 60, 40 and 17 days.
    "gap_n": 4, "gap_sum_d": 497.0, "gap_sq_sum_d": 380.0**2 + 60.0**2 + 40.0**2 + 17.0**2,
    # Books 2 × 10 + 1 × 30 = 50, kitchen 30: the cancelled order's five mugs do not count.
    "items_all": 4, "categories": 2, "top_category_share": 50 / 80,
    "product_viewed_7d": 1, "product_viewed_30d": 2, "product_viewed_90d": 3,
    "last_product_viewed_t": AS_OF_T - 1 * DAY_S,
    "cart_added_7d": 1, "cart_added_30d": 1, "cart_added_90d": 1, "last_cart_added_t": AS_OF_T - 2 * DAY_S,
    "email_clicked_7d": 0, "email_clicked_30d": 0, "email_clicked_90d": 0,
    "last_email_clicked_t": AS_OF_T - 100 * DAY_S,
    # Older than the 365-day look-back: not read at all.
    "last_email_opened_t": None,
    "last_session_started_t": None, "last_checkout_started_t": None,
    **NOT_SEEN,
}  # fmt: skip


def read_row(customer) -> dict:
    frame = read_aggregates(AS_OF, customer.pk, customer.pk)
    assert frame["customer_id"].tolist() == [customer.pk]
    return {
        key: float("nan") if value is None else value
        for key, value in frame.drop(columns="customer_id").iloc[0].items()
    }


def expected(values: dict) -> dict:
    return pytest.approx(
        {key: float("nan") if value is None else value for key, value in values.items()},
        abs=EPOCH_TOLERANCE_S,
        nan_ok=True,
    )


def features_of_everyone() -> pd.DataFrame:
    frames = [read_aggregates(AS_OF, first, last) for first, last in customer_id_ranges(AS_OF, 3)]
    return build_features(pd.concat(frames, ignore_index=True), AS_OF_T)


def test_aggregates_of_a_hand_made_history_are_exact(regular):
    assert read_row(regular) == expected(REGULAR_AGGREGATES)


def test_a_customer_with_only_cancelled_and_refunded_orders_has_no_orders(db):
    customer = joined(CustomerFactory())
    order(customer, 4, "25.00", status=OrderStatus.CANCELLED)
    order(customer, 40, "35.00", status=OrderStatus.REFUNDED)

    row = read_row(customer)
    features = build_features(read_aggregates(AS_OF, customer.pk, customer.pk), AS_OF_T).iloc[0]

    assert {key: row[key] for key in ("orders_all", "revenue_all", "returned_orders", "orders_30d")} == {
        "orders_all": 0, "revenue_all": 0.0, "returned_orders": 2, "orders_30d": 0,
    }  # fmt: skip
    assert pd.isna(row["first_order_t"]) and pd.isna(row["last_order_t"]) and pd.isna(row["gap_n"])
    assert features[["orders_total", "revenue_total", "returned_share", "days_since_last_order"]].tolist() == [
        0.0, 0.0, 1.0, 3650.0,
    ]  # fmt: skip


def test_a_pending_order_counts_as_an_order(db):
    customer = joined(CustomerFactory())
    order(customer, 4, "25.00", status=OrderStatus.PENDING)

    assert read_row(customer)["orders_all"] == 1


def test_window_starts_are_inclusive(db):
    customer = joined(CustomerFactory())
    order(customer, 30, "10.00")
    order(customer, 90, "20.00")
    EventFactory(customer=customer, name="product_viewed", occurred_at=days_before(7))
    EventFactory(customer=customer, name="product_viewed", occurred_at=days_before(365))

    row = read_row(customer)

    assert (row["orders_all"], row["orders_7d"], row["orders_30d"], row["orders_90d"], row["revenue_90d"]) == (
        2,
        0,
        1,
        2,
        30.0,
    )
    assert (row["product_viewed_7d"], row["product_viewed_30d"], row["product_viewed_90d"]) == (1, 1, 1)
    assert row["last_product_viewed_t"] == pytest.approx(AS_OF_T - 7 * DAY_S, abs=EPOCH_TOLERANCE_S)


@pytest.mark.parametrize("zone", ["UTC", "Europe/Berlin"])
def test_nothing_at_or_after_the_cutoff_is_read_whatever_zone_names_it(zone):
    cutoff = AS_OF.astimezone(ZoneInfo(zone))
    customer = joined(CustomerFactory())
    order(customer, 10, "10.00")
    for moment in (AS_OF, AS_OF + timedelta(hours=1)):
        OrderFactory(customer=customer, placed_at=moment, total=Decimal("99.00"))
        EventFactory(customer=customer, name="product_viewed", occurred_at=moment)
    late = joined(CustomerFactory(), AS_OF)

    frame = read_aggregates(cutoff, customer.pk, late.pk)

    assert frame["customer_id"].tolist() == [customer.pk]
    assert frame.loc[0, ["orders_all", "revenue_all"]].tolist() == [1, 10.0]
    assert frame.loc[0, "last_order_t"] == pytest.approx(AS_OF_T - 10 * DAY_S, abs=EPOCH_TOLERANCE_S)
    assert pd.isna(frame.loc[0, "product_viewed_7d"])


def test_a_customer_without_orders_or_events_gets_nulls_not_zeros(db):
    customer = joined(CustomerFactory())

    row = read_row(customer)

    assert row["first_seen_t"] == pytest.approx(JOINED.timestamp(), abs=EPOCH_TOLERANCE_S)
    assert sorted(key for key, value in row.items() if not pd.isna(value)) == ["first_seen_t"]


def test_features_ignore_everything_after_the_cutoff(regular, shoppers):
    # Given the features of everyone as of the cutoff
    before = features_of_everyone()
    pen = ProductFactory(category="stationery")
    # When orders (with lines in a new category) and events are added at and after the cutoff
    for customer in [regular, *shoppers]:
        # A row exactly at the cutoff is the subject of the test after the next.
        for moment in (AS_OF + timedelta(seconds=1), AS_OF + timedelta(hours=1), AS_OF + timedelta(days=10)):
            placed = OrderFactory(customer=customer, placed_at=moment, total=Decimal("500.00"))
            OrderLineFactory(order=placed, product=pen, quantity=9)
            for name in ("session_started", "product_viewed", "cart_added", "checkout_started", "email_opened"):
                EventFactory(customer=customer, name=name, occurred_at=moment)
        OrderFactory(customer=customer, placed_at=AS_OF + timedelta(days=1), status=OrderStatus.CANCELLED)
    # and customers whose first sign of life comes after the cutoff: a sign-up, and a first visit
    late = joined(CustomerFactory(), AS_OF + timedelta(seconds=1))
    newest = CustomerFactory()
    EventFactory(customer=newest, name="product_viewed", occurred_at=AS_OF + timedelta(days=2))
    after = features_of_everyone()

    # Then nothing changed and the late customers are absent
    pd.testing.assert_frame_equal(after, before)
    assert after.index.tolist() == [regular.pk, *(shopper.pk for shopper in shoppers)]
    assert read_aggregates(AS_OF, late.pk, newest.pk).empty


def test_a_customer_imported_after_the_cutoff_exists_from_their_first_order(regular):
    # Given a buyer whose row is written now, by an order log imported after the cutoff
    imported = CustomerFactory(signed_up_at=None)
    first = order(imported, 50, "70.00")
    order(imported, 20, "30.00")

    row = read_aggregates(AS_OF, imported.pk, imported.pk).iloc[0]

    # Then they exist at the cutoff, known since that first order, not since the import
    assert Customer.objects.get(pk=imported.pk).first_seen_at == first.placed_at
    assert row["first_seen_t"] == pytest.approx(first.placed_at.timestamp(), abs=EPOCH_TOLERANCE_S)
    assert (row["orders_all"], row["revenue_all"]) == (2, 100.0)
    assert build_features(read_aggregates(AS_OF, imported.pk, imported.pk), AS_OF_T).loc[imported.pk, "tenure_days"] == pytest.approx(50)


def test_renaming_a_customer_changes_no_feature(regular):
    before = build_features(read_aggregates(AS_OF, regular.pk, regular.pk), AS_OF_T)

    Customer.objects.filter(pk=regular.pk).update(
        first_name="Renamed", last_name="Someone Else", email="renamed@example.org", external_id="C-RENAMED"
    )
    after = build_features(read_aggregates(AS_OF, regular.pk, regular.pk), AS_OF_T)

    pd.testing.assert_frame_equal(after, before)


def test_a_sample_keeps_every_stride_th_block_of_consecutive_customers(shoppers, monkeypatch):
    monkeypatch.setattr("ml.queries.SAMPLE_BLOCK_CUSTOMERS", 2)
    ids = [shopper.pk for shopper in shoppers]

    ranges = customer_id_ranges(AS_OF, 100, stride=2)

    assert ranges == [(ids[0], ids[1]), (ids[4], ids[5])]
    assert customer_id_ranges(AS_OF, 100, stride=3) == [(ids[0], ids[1]), (ids[6], ids[6])]


def test_customer_id_ranges_split_the_customers_created_before_the_moment(shoppers):
    CustomerFactory()  # created now, after the cutoff
    ids = [shopper.pk for shopper in shoppers]

    assert customer_id_ranges(AS_OF, 3) == [(ids[0], ids[2]), (ids[3], ids[5]), (ids[6], ids[6])]
    assert customer_id_ranges(AS_OF, 7) == [(ids[0], ids[6])]
    assert customer_id_ranges(AS_OF - timedelta(days=1000), 3) == []


def test_labels_are_kept_orders_within_the_horizon_after_the_cutoff(db):
    inside, on_edge, too_late, cancelled, before = (joined(CustomerFactory()) for _ in range(5))
    order(inside, -10, "10.00")
    order(on_edge, 0, "10.00")
    order(too_late, -90, "10.00")
    order(cancelled, -5, "10.00", status=OrderStatus.CANCELLED)
    order(before, 1, "10.00")

    bought = read_labels(AS_OF, 90, inside.pk, before.pk)

    assert bought == {inside.pk, on_edge.pk}


def test_sensitive_attributes_are_read_for_the_fairness_report_only(db):
    customer = CustomerFactory(gender="female", country="FR", birth_date="1990-05-17")

    frame = sensitive_attributes([customer.pk])

    assert frame.to_dict("index") == {
        customer.pk: {"gender": "female", "birth_date": pd.Timestamp("1990-05-17").date(), "country": "FR"}
    }


def test_the_season_index_reads_how_busy_the_horizon_was_a_year_earlier(regular):
    # regular's first kept order is 500 days back; add a busy stretch a year before the cutoff's horizon.
    before = read_season_index(AS_OF, 90)
    customer = CustomerFactory()
    for days in (360, 340, 320, 300, 290):
        order(customer, days, "10.00")
    order(customer, 100, "10.00", status=OrderStatus.CANCELLED)  # not a sale: left out

    after = read_season_index(AS_OF, 90)

    kept = Order.objects.exclude(status__in=["cancelled", "refunded"])
    window = kept.filter(placed_at__gte=days_before(365), placed_at__lt=days_before(275)).count()
    year = kept.filter(placed_at__gte=days_before(365), placed_at__lt=AS_OF).count()
    assert after == round(window / (year * 90 / 365), 6)
    assert after > before
    assert read_season_index(AS_OF - timedelta(days=200), 90) == 1.0  # less than a year of history by then
