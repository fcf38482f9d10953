"""Purchase-propensity features of each customer as of a cutoff.

Pure: `ml/queries.py` reads one row of aggregates per customer (everything strictly before the
cutoff, in epoch seconds and plain numbers), `build_base_features` turns that frame into the
features read from the shop's history, and `add_buying_features` adds the BG/NBD model's view of
each customer, with the parameters fitted on the same snapshot (training) or stored with the
version (scoring). Nothing here knows about Django. The order of `FEATURE_NAMES` is the model's contract:
a trained model records it, and scoring refuses a frame whose columns differ in name or order.

Sensitive attributes (gender, age, country) are never features; the fairness report reads them
separately.
"""

from collections.abc import Sequence

import numpy as np
import pandas as pd

from ml.bgnbd import BgNbd, NotFitted, fit_bgnbd

SECONDS_PER_DAY = 86_400.0
ORDER_WINDOWS_DAYS = (7, 30, 90, 365)
EVENT_WINDOWS_DAYS = (7, 30, 90)
TREND_WINDOW_DAYS = 90  # spend in the last 90 days against the 90 before them
EVENT_LOOKBACK_DAYS = 365  # events older than this are not read at all
# "Days since" for something that never happened (or not within the look-back): longer than any
# observed gap, so trees and the logistic baseline both read it as "long ago".
NEVER_DAYS = 3650.0
NO_EVENT_DAYS = float(EVENT_LOOKBACK_DAYS + 1)
ENGAGEMENT_EVENTS = (
    "session_started",
    "product_viewed",
    "cart_added",
    "checkout_started",
    "email_opened",
    "email_clicked",
)


def aggregate_columns() -> list[str]:
    """Return the columns `ml.queries` must deliver, in order, besides `customer_id`."""
    columns = ["first_seen_t", "orders_all", "order_days_all", "revenue_all", "first_order_t", "last_order_t"]
    columns.append("returned_orders")
    for days in ORDER_WINDOWS_DAYS:
        columns += [f"orders_{days}d", f"revenue_{days}d"]
    columns += [
        "revenue_prev_90d",
        "gap_n",
        "gap_sum_d",
        "gap_sq_sum_d",
        "items_all",
        "categories",
        "top_category_share",
    ]
    for name in ENGAGEMENT_EVENTS:
        columns += [f"{name}_{days}d" for days in EVENT_WINDOWS_DAYS] + [f"last_{name}_t"]
    return columns


def _base_feature_names() -> tuple[str, ...]:
    names = ["tenure_days", "days_since_first_order", "days_since_last_order", "orders_total", "order_days_total"]
    names.append("revenue_total")
    for days in ORDER_WINDOWS_DAYS:
        names += [f"orders_{days}d", f"revenue_{days}d"]
    names += [
        "avg_order_value",
        "mean_days_between_orders",
        "std_days_between_orders",
        "spend_trend",
        "items_per_order",
        "categories_bought",
        "top_category_share",
        "returned_share",
    ]
    for name in ENGAGEMENT_EVENTS:
        names += [f"{name}_{days}d" for days in EVENT_WINDOWS_DAYS] + [f"days_since_{name}"]
    return tuple(names)


# Read from the database as of the cutoff.
BASE_FEATURE_NAMES = _base_feature_names()
# The BG/NBD model's view of each customer (ml.bgnbd), from the base features and the model's four
# parameters: the field's standard summary of a buying history, given to the trees as two numbers.
BUYING_FEATURE_NAMES = ("bgnbd_p_alive", "bgnbd_p_order")
# The same for every customer of a snapshot: how busy the shop was, a year earlier, in the horizon ahead.
# It lets the model learn each season's buying rate, and which customers the season moves.
SHOP_FEATURE_NAMES = ("season_index",)
FEATURE_NAMES = BASE_FEATURE_NAMES + BUYING_FEATURE_NAMES + SHOP_FEATURE_NAMES
SEASON_YEAR_DAYS = 365


def build_features(
    aggregates: pd.DataFrame,
    as_of_t: float,
    buying: BgNbd | None = None,
    horizon_days: float = 90,
    season: float = 1.0,
) -> pd.DataFrame:
    """Return the feature matrix (index `customer_id`, columns `FEATURE_NAMES`) for aggregates read as of `as_of_t`."""
    return add_buying_features(build_base_features(aggregates, as_of_t), buying, horizon_days, season)


def season_index(window_orders: int, year_orders: int, horizon_days: float) -> float:
    """Return the orders of one horizon against an average horizon of the same year; 1.0 without orders."""
    if year_orders <= 0:
        return 1.0
    return round(window_orders / (year_orders * horizon_days / SEASON_YEAR_DAYS), 6)


def buying_histories(base: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Return BG/NBD's (x, t_x, T) in days and which customers have bought, from base features.

    x counts repeat order days after the first, t_x the days from the first order to the last,
    T the days from the first order to the cutoff; customers without an order get zeros.
    """
    buyer = base["orders_total"].to_numpy() > 0
    # Whole days, the model's period: customers alike share one likelihood term when it is fitted.
    since_first = np.floor(base["days_since_first_order"].to_numpy())
    since_last = np.floor(base["days_since_last_order"].to_numpy())
    x = np.where(buyer, np.maximum(base["order_days_total"].to_numpy() - 1, 0), 0.0)
    T = np.where(buyer, since_first, 0.0)
    t_x = np.where(buyer, np.clip(since_first - since_last, 0.0, T), 0.0)
    return x, t_x, T, buyer


def fit_buying_model(base: pd.DataFrame) -> BgNbd | None:
    """Fit BG/NBD on the buyers of a base-feature frame, or return None when their histories cannot support it."""
    x, t_x, T, buyer = buying_histories(base)
    try:
        return fit_bgnbd(x[buyer], t_x[buyer], T[buyer])
    except NotFitted:
        return None


def add_buying_features(
    base: pd.DataFrame, buying: BgNbd | None, horizon_days: float, season: float = 1.0
) -> pd.DataFrame:
    """Return the frame with BG/NBD's P(alive) and P(an order within the horizon), and the season index.

    The BG/NBD columns are 0 for customers who never ordered, or when no model could be fitted.
    """
    frame = base[list(BASE_FEATURE_NAMES)].copy()
    alive = np.zeros(len(frame))
    order = np.zeros(len(frame))
    if buying is not None and len(frame):
        x, t_x, T, buyer = buying_histories(frame)
        alive[buyer] = buying.probability_alive(x[buyer], t_x[buyer], T[buyer])
        order[buyer] = buying.probability_of_purchase(x[buyer], t_x[buyer], T[buyer], horizon_days)
    frame["bgnbd_p_alive"] = alive
    frame["bgnbd_p_order"] = order
    frame["season_index"] = float(season)
    return frame


def build_base_features(aggregates: pd.DataFrame, as_of_t: float) -> pd.DataFrame:
    """Return the features read from the database (columns `BASE_FEATURE_NAMES`) for aggregates as of `as_of_t`."""
    missing = [column for column in ["customer_id", *aggregate_columns()] if column not in aggregates.columns]
    if missing:
        raise ValueError(f"aggregates lack the columns {', '.join(missing)}")
    frame = aggregates.set_index("customer_id")
    count = lambda column: frame[column].fillna(0).to_numpy(dtype=float)  # noqa: E731
    orders, revenue = count("orders_all"), count("revenue_all")
    gap_n, gap_sum, gap_sq = count("gap_n"), count("gap_sum_d"), count("gap_sq_sum_d")
    with np.errstate(divide="ignore", invalid="ignore"):
        mean_gap = np.where(gap_n > 0, gap_sum / gap_n, NEVER_DAYS)
        variance = np.where(gap_n > 1, (gap_sq - gap_n * mean_gap**2) / np.maximum(gap_n - 1, 1), 0.0)
        features = {
            "tenure_days": _days_since(frame["first_seen_t"], as_of_t, cap=NEVER_DAYS),
            "days_since_first_order": _days_since(frame["first_order_t"], as_of_t, cap=NEVER_DAYS),
            "days_since_last_order": _days_since(frame["last_order_t"], as_of_t, cap=NEVER_DAYS),
            "orders_total": orders,
            "order_days_total": count("order_days_all"),
            "revenue_total": revenue,
        }
        for days in ORDER_WINDOWS_DAYS:
            features[f"orders_{days}d"] = count(f"orders_{days}d")
            features[f"revenue_{days}d"] = count(f"revenue_{days}d")
        features |= {
            "avg_order_value": np.where(orders > 0, revenue / orders, 0.0),
            "mean_days_between_orders": mean_gap,
            # Rounding can leave a tiny negative variance for equal gaps.
            "std_days_between_orders": np.sqrt(np.clip(variance, 0.0, None)),
            "spend_trend": np.log1p(count("revenue_90d")) - np.log1p(count("revenue_prev_90d")),
            "items_per_order": np.where(orders > 0, count("items_all") / orders, 0.0),
            "categories_bought": count("categories"),
            "top_category_share": count("top_category_share"),
            "returned_share": np.where(
                orders + count("returned_orders") > 0,
                count("returned_orders") / (orders + count("returned_orders")),
                0.0,
            ),
        }
    for name in ENGAGEMENT_EVENTS:
        for days in EVENT_WINDOWS_DAYS:
            features[f"{name}_{days}d"] = count(f"{name}_{days}d")
        features[f"days_since_{name}"] = _days_since(frame[f"last_{name}_t"], as_of_t, cap=NO_EVENT_DAYS)
    return pd.DataFrame(features, index=frame.index, columns=list(BASE_FEATURE_NAMES)).astype(float)


def _days_since(moments: pd.Series, as_of_t: float, cap: float) -> np.ndarray:
    """Return whole-and-fractional days from each moment to the cutoff; never (NULL) reads as `cap`."""
    values = pd.to_numeric(moments, errors="coerce").to_numpy(dtype=float)
    days = (as_of_t - values) / SECONDS_PER_DAY
    return np.where(np.isnan(days), cap, np.clip(days, 0.0, cap))


def window_starts(as_of_t: float) -> dict[str, float]:
    """Return the epoch second each named window starts at, for the SQL that reads the aggregates."""
    starts = {f"{days}d": as_of_t - days * SECONDS_PER_DAY for days in {*ORDER_WINDOWS_DAYS, *EVENT_WINDOWS_DAYS}}
    starts["prev_90d"] = as_of_t - 2 * TREND_WINDOW_DAYS * SECONDS_PER_DAY
    starts["lookback"] = as_of_t - EVENT_LOOKBACK_DAYS * SECONDS_PER_DAY
    return starts


def check_feature_names(actual: Sequence[str], expected: Sequence[str]) -> None:
    """Raise `FeatureMismatch` unless `actual` names exactly the `expected` features, in the same order."""
    actual, expected = list(actual), list(expected)
    if actual == expected:
        return
    missing = [name for name in expected if name not in actual]
    extra = [name for name in actual if name not in expected]
    problems = []
    if missing:
        problems.append(f"missing {', '.join(missing)}")
    if extra:
        problems.append(f"unexpected {', '.join(extra)}")
    if not problems:
        position = next(i for i, (a, e) in enumerate(zip(actual, expected, strict=True)) if a != e)
        problems.append(f"column {position + 1} is {actual[position]!r} where the model expects {expected[position]!r}")
    raise FeatureMismatch("; ".join(problems))


class FeatureMismatch(ValueError):
    """The features offered to a model are not the ones, in the order, it was trained on."""
