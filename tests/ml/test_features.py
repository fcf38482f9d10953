"""Feature functions on hand-made aggregates: exact days, gaps, trends and the defaults for "never"."""

import math

import numpy as np
import pandas as pd
import pytest

from ml.features import (
    ENGAGEMENT_EVENTS,
    FEATURE_NAMES,
    NEVER_DAYS,
    NO_EVENT_DAYS,
    FeatureMismatch,
    aggregate_columns,
    build_features,
    check_feature_names,
    season_index,
)

DAY_S = 86_400.0
AS_OF_T = 1_719_792_000.0  # 2024-07-01 00:00 UTC


def aggregates(*rows: dict) -> pd.DataFrame:
    """Return an aggregates frame of the given rows; every column a row leaves out is NULL."""
    columns = ["customer_id", *aggregate_columns()]
    return pd.DataFrame([{column: row.get(column) for column in columns} for row in rows], columns=columns)


REGULAR = {
    "customer_id": 1,
    "first_seen_t": AS_OF_T - 400 * DAY_S,
    "orders_all": 4,
    "revenue_all": 200.0,
    "first_order_t": AS_OF_T - 70 * DAY_S,
    "last_order_t": AS_OF_T - 10 * DAY_S,
    "returned_orders": 1,
    "orders_7d": 0,
    "revenue_7d": 0.0,
    "orders_30d": 1,
    "revenue_30d": 50.0,
    "orders_90d": 4,
    "revenue_90d": 200.0,
    "orders_365d": 4,
    "revenue_365d": 200.0,
    "revenue_prev_90d": 20.0,
    # Gaps of 10, 20 and 30 days between the four orders.
    "gap_n": 3,
    "gap_sum_d": 60.0,
    "gap_sq_sum_d": 1_400.0,
    "items_all": 10,
    "categories": 2,
    "top_category_share": 0.75,
    "product_viewed_7d": 3,
    "product_viewed_30d": 5,
    "product_viewed_90d": 8,
    "last_product_viewed_t": AS_OF_T - 1.5 * DAY_S,
}
NEWCOMER = {"customer_id": 2, "first_seen_t": AS_OF_T - 12 * DAY_S}


@pytest.fixture
def features() -> pd.DataFrame:
    return build_features(aggregates(REGULAR, NEWCOMER), AS_OF_T)


def test_the_frame_has_the_model_columns_in_order_indexed_by_customer(features):
    assert list(features.columns) == list(FEATURE_NAMES)
    assert features.index.tolist() == [1, 2]
    assert features.index.name == "customer_id"
    assert (features.dtypes == np.float64).all()


def test_days_since_first_and_last_order_and_tenure_are_exact(features):
    regular = features.loc[1]

    assert regular["tenure_days"] == 400.0
    assert regular["days_since_first_order"] == 70.0
    assert regular["days_since_last_order"] == 10.0
    assert regular["days_since_product_viewed"] == 1.5


def test_mean_and_spread_of_days_between_orders(features):
    regular = features.loc[1]

    assert regular["mean_days_between_orders"] == 20.0
    assert regular["std_days_between_orders"] == 10.0


def test_equal_gaps_have_no_spread_and_a_single_gap_has_none_either():
    equal = REGULAR | {"customer_id": 3, "gap_n": 3, "gap_sum_d": 0.3, "gap_sq_sum_d": 0.03}
    single = REGULAR | {"customer_id": 4, "gap_n": 1, "gap_sum_d": 12.0, "gap_sq_sum_d": 144.0}

    frame = build_features(aggregates(equal, single), AS_OF_T)

    assert frame.loc[3, "mean_days_between_orders"] == pytest.approx(0.1, abs=1e-15)
    assert frame.loc[3, "std_days_between_orders"] == pytest.approx(0.0, abs=1e-7)
    assert frame.loc[4, "mean_days_between_orders"] == 12.0
    assert frame.loc[4, "std_days_between_orders"] == 0.0


def test_spend_trend_returned_share_and_basket_features(features):
    regular = features.loc[1]

    assert regular["spend_trend"] == math.log1p(200.0) - math.log1p(20.0)
    assert regular["returned_share"] == 1 / 5
    assert regular["avg_order_value"] == 50.0
    assert regular["items_per_order"] == 2.5
    assert regular["categories_bought"] == 2.0
    assert regular["top_category_share"] == 0.75
    assert regular[["orders_total", "revenue_total", "orders_30d", "revenue_30d", "orders_90d"]].tolist() == [
        4.0, 200.0, 1.0, 50.0, 4.0,
    ]  # fmt: skip


def test_a_customer_who_never_did_anything_reads_as_long_ago(features):
    newcomer = features.loc[2]

    assert newcomer["tenure_days"] == 12.0
    assert newcomer["days_since_first_order"] == NEVER_DAYS
    assert newcomer["days_since_last_order"] == NEVER_DAYS
    assert newcomer["mean_days_between_orders"] == NEVER_DAYS
    assert newcomer["std_days_between_orders"] == 0.0
    assert [newcomer[f"days_since_{name}"] for name in ENGAGEMENT_EVENTS] == [NO_EVENT_DAYS] * len(ENGAGEMENT_EVENTS)
    assert NO_EVENT_DAYS == 366.0
    counts = [name for name in FEATURE_NAMES if not name.startswith(("days_since", "mean_days", "tenure", "season"))]
    assert newcomer[counts].tolist() == [0.0] * len(counts)
    assert newcomer["season_index"] == 1.0  # no year of history to say how busy the coming months are


def test_days_are_capped_and_a_moment_after_the_cutoff_counts_as_zero():
    ancient = {"customer_id": 5, "first_seen_t": AS_OF_T - 20_000 * DAY_S, "last_product_viewed_t": AS_OF_T - 900 * DAY_S}
    future = {"customer_id": 6, "first_seen_t": AS_OF_T + DAY_S}

    frame = build_features(aggregates(ancient, future), AS_OF_T)

    assert frame.loc[5, "tenure_days"] == NEVER_DAYS
    assert frame.loc[5, "days_since_product_viewed"] == NO_EVENT_DAYS
    assert frame.loc[6, "tenure_days"] == 0.0


def test_aggregates_without_a_column_are_refused_by_name():
    frame = aggregates(REGULAR).drop(columns=["gap_n", "items_all"])

    with pytest.raises(ValueError, match=r"^aggregates lack the columns gap_n, items_all$"):
        build_features(frame, AS_OF_T)


def test_no_feature_is_a_sensitive_attribute():
    words = {word for name in FEATURE_NAMES for word in name.split("_")}

    assert words.isdisjoint({"gender", "sex", "birth", "age", "country", "nationality"})
    assert not [name for name in FEATURE_NAMES if any(part in name for part in ("gender", "birth", "country"))]


def test_feature_names_are_unique_and_counted():
    assert len(FEATURE_NAMES) == len(set(FEATURE_NAMES)) == 49
    assert FEATURE_NAMES[-3:] == ("bgnbd_p_alive", "bgnbd_p_order", "season_index")


def test_the_same_names_in_the_same_order_pass():
    check_feature_names(list(FEATURE_NAMES), FEATURE_NAMES)


def test_reordered_columns_are_refused_naming_the_first_position_that_differs():
    reordered = list(FEATURE_NAMES)
    reordered[2], reordered[3] = reordered[3], reordered[2]

    with pytest.raises(FeatureMismatch) as raised:
        check_feature_names(reordered, FEATURE_NAMES)

    assert str(raised.value) == "column 3 is 'orders_total' where the model expects 'days_since_last_order'"


def test_missing_columns_are_refused_by_name():
    missing = [name for name in FEATURE_NAMES if name not in ("orders_7d", "spend_trend")]

    with pytest.raises(FeatureMismatch) as raised:
        check_feature_names(missing, FEATURE_NAMES)

    assert str(raised.value) == "missing orders_7d, spend_trend"


def test_extra_columns_are_refused_by_name():
    with pytest.raises(FeatureMismatch) as raised:
        check_feature_names([*FEATURE_NAMES, "gender"], FEATURE_NAMES)

    assert str(raised.value) == "unexpected gender"


def test_a_renamed_column_is_both_missing_and_unexpected():
    renamed = ["tenure" if name == "tenure_days" else name for name in FEATURE_NAMES]

    with pytest.raises(FeatureMismatch) as raised:
        check_feature_names(renamed, FEATURE_NAMES)

    assert str(raised.value) == "missing tenure_days; unexpected tenure"


def test_a_duplicated_column_in_place_of_another_is_refused():
    duplicated = list(FEATURE_NAMES)
    duplicated[1] = duplicated[0]

    with pytest.raises(FeatureMismatch) as raised:
        check_feature_names(duplicated, FEATURE_NAMES)

    assert str(raised.value) == "missing days_since_first_order"


@pytest.mark.parametrize(
    ("window", "year", "expected"),
    [(150, 365, 1.666667), (90, 365, 1.0), (0, 365, 0.0), (10, 0, 1.0)],
)
def test_the_season_index_compares_the_horizon_a_year_ago_with_that_years_average(window, year, expected):
    assert season_index(window, year, horizon_days=90) == expected
