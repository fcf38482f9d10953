"""The SQL that feeds `ml.recommend`: the catalogue, and who bought, viewed or clicked which product when.

Purchases are order lines of orders kept (not cancelled or refunded); views are `product_viewed` events
naming a product's SKU; clicks are `email_clicked` events on a product's URL, so a click on a recommended
product in an e-mail feeds the next training. Every read takes an upper bound: nothing at or after it is
seen, and ages are measured from it.
"""

import io
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd
from django.conf import settings
from django.db import connection, connections

from marketing.models import Event, Order, OrderLine, Product
from ml.queries import RETURNED_STATUSES, _epoch, _stored
from ml.recommend import CLICK, PURCHASE, VIEW, Interactions

VIEWED, CLICKED = "product_viewed", "email_clicked"
FETCH_ROWS = 200_000


@dataclass(frozen=True)
class Catalogue:
    product_ids: np.ndarray  # ascending: a product's column is its position here
    in_stock: np.ndarray  # bool per column
    categories: list[str]

    def columns(self, product_ids: np.ndarray) -> np.ndarray:
        return np.searchsorted(self.product_ids, product_ids)


def read_catalogue() -> Catalogue:
    """Return every product's id, stock and category, by ascending id."""
    rows = list(Product.objects.order_by("pk").values_list("pk", "in_stock", "category"))
    return Catalogue(
        np.array([row[0] for row in rows], dtype=np.int64),
        np.array([bool(row[1]) for row in rows], dtype=bool),
        [row[2] or "" for row in rows],
    )


def _json_text(column: str, key: str) -> str:
    if connection.vendor == "postgresql":
        return f"{column}->>'{key}'"
    return f"json_extract({column}, '$.{key}')"


def _seconds(column: str) -> str:
    """Return whole epoch seconds of a timestamp column: shorter text to send than fractions."""
    if connection.vendor == "postgresql":
        return f"FLOOR({_epoch(column)})"
    return f"CAST({_epoch(column)} AS INTEGER)"


def _customer_bounds(column: str, first_id: int | None, last_id: int | None) -> tuple[str, list]:
    if first_id is None:
        return "", []
    return f" AND {column} BETWEEN %s AND %s", [first_id, last_id]


def read_interactions(
    catalogue: Catalogue,
    before: datetime,
    since: datetime,
    first_id: int | None = None,
    last_id: int | None = None,
    kinds: tuple[int, ...] = (PURCHASE, VIEW, CLICK),
) -> Interactions:
    """Return the interactions in [since, before), aged in days as of `before`, of customers in the id range."""
    orders, lines, products, events = (
        Order._meta.db_table,
        OrderLine._meta.db_table,
        Product._meta.db_table,
        Event._meta.db_table,
    )
    returned = ", ".join(f"'{status}'" for status in RETURNED_STATUSES)
    window = [_stored(since), _stored(before)]
    parts: list[str] = []
    params: list[list] = []
    if PURCHASE in kinds:
        bounds, bound_params = _customer_bounds("o.customer_id", first_id, last_id)
        parts.append(
            f"SELECT o.customer_id, l.product_id, {_seconds('o.placed_at')}, {PURCHASE} FROM {orders} o "
            f"JOIN {lines} l ON l.order_id = o.id WHERE o.placed_at >= %s AND o.placed_at < %s "
            f"AND o.status NOT IN ({returned}){bounds}"
        )
        params.append(window + bound_params)
    if VIEW in kinds:
        bounds, bound_params = _customer_bounds("e.customer_id", first_id, last_id)
        parts.append(
            f"SELECT e.customer_id, p.id, {_seconds('e.occurred_at')}, {VIEW} FROM {events} e "
            f"JOIN {products} p ON p.sku = {_json_text('e.properties', 'sku')} "
            f"WHERE e.name = %s AND e.occurred_at >= %s AND e.occurred_at < %s{bounds}"
        )
        params.append([VIEWED, *window, *bound_params])
    if CLICK in kinds:
        bounds, bound_params = _customer_bounds("e.customer_id", first_id, last_id)
        parts.append(
            f"SELECT e.customer_id, p.id, {_seconds('e.occurred_at')}, {CLICK} FROM {events} e "
            f"JOIN {products} p ON p.url = {_json_text('e.properties', 'url')} AND p.url <> '' "
            f"WHERE e.name = %s AND e.occurred_at >= %s AND e.occurred_at < %s{bounds}"
        )
        params.append([CLICKED, *window, *bound_params])
    data = _fetch_parts(parts, params)
    if not len(data):
        return Interactions.empty()
    order = np.argsort(data[:, 0], kind="stable")
    data = data[order]
    columns = catalogue.columns(data[:, 1].astype(np.int64))
    known = (columns < len(catalogue.product_ids)) & (
        catalogue.product_ids[np.minimum(columns, len(catalogue.product_ids) - 1)] == data[:, 1].astype(np.int64)
    )
    return Interactions(
        data[known, 0].astype(np.int64),
        columns[known].astype(np.int64),
        (before.timestamp() - data[known, 2]) / 86_400.0,
        data[known, 3].astype(np.int8),
    )


def _fetch_parts(parts: list[str], params: list[list]) -> np.ndarray:
    """Run each part's query and stack the rows; on PostgreSQL, parts run at once on their own connections."""
    threads = min(settings.ML_READ_THREADS, len(parts))
    if connection.vendor == "postgresql" and threads > 1 and not connection.in_atomic_block:
        with ThreadPoolExecutor(threads) as pool:
            blocks = list(pool.map(_fetch_closing, parts, params))
    else:
        blocks = [_fetch_numbers(query, values) for query, values in zip(parts, params, strict=True)]
    return np.concatenate(blocks) if blocks else np.empty((0, 4))


def _fetch_closing(query: str, params: list) -> np.ndarray:
    try:
        return _fetch_numbers(query, params)
    finally:
        connections.close_all()  # this thread's connections only


def _fetch_numbers(query: str, params: list) -> np.ndarray:
    """Return the query's rows as a float64 array of four columns.

    PostgreSQL joins them into one CSV text server-side, parsed in C here: several times faster than a
    Python tuple per row. Elsewhere rows become arrays a block at a time, never all tuples at once.
    """
    if connection.vendor == "postgresql":
        joined = (
            "SELECT string_agg(concat_ws(',', r.c0, r.c1, r.c2, r.c3), E'\\n') "
            f"FROM ({query}) AS r (c0, c1, c2, c3)"
        )
        with connection.cursor() as cursor:
            cursor.execute(joined, params)
            text = cursor.fetchone()[0]
        if not text:
            return np.empty((0, 4))
        return pd.read_csv(io.StringIO(text), header=None, dtype=np.float64, engine="c").to_numpy()
    blocks = []
    with connection.cursor() as cursor:
        cursor.execute(query, params)
        while rows := cursor.fetchmany(FETCH_ROWS):
            blocks.append(np.array(rows, dtype=np.float64))
    return np.concatenate(blocks) if blocks else np.empty((0, 4))
