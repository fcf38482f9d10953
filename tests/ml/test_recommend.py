"""The recommender's arithmetic on small hand-made histories: neighbours, blending, exclusions, judging."""

import numpy as np
import pytest
import scipy.sparse as sp

from ml.recommend import (
    CLICK,
    PURCHASE,
    VIEW,
    Interactions,
    Params,
    Picks,
    RecommendationMinimums,
    Recommender,
    fit_recommender,
    judge,
    knn_picks,
    popularity_picks,
    unmet,
)

PRODUCTS = np.arange(100, 106, dtype=np.int64)  # six products, columns 0..5
PLAIN = Params(shrinkage=0.0, popularity_weight=0.01, popular_candidates=6, exclude_bought_days=30)


def interactions(*rows: tuple[int, int, float, int]) -> Interactions:
    """Build interactions from (customer, column, age in days, kind) rows."""
    customers, products, ages, kinds = zip(*rows, strict=True)
    return Interactions(
        np.array(customers, dtype=np.int64),
        np.array(products, dtype=np.int64),
        np.array(ages, dtype=np.float64),
        np.array(kinds, dtype=np.int8),
    )


def test_a_product_bought_with_the_customers_purchase_comes_first():
    # given: three customers bought 0 with 1; one bought 0 with 2; customer 9 bought 0 long ago
    history = interactions(
        (1, 0, 40, PURCHASE), (1, 1, 40, PURCHASE),
        (2, 0, 50, PURCHASE), (2, 1, 50, PURCHASE),
        (3, 0, 60, PURCHASE), (3, 1, 60, PURCHASE),
        (4, 0, 70, PURCHASE), (4, 2, 70, PURCHASE),
        (9, 0, 45, PURCHASE),
    )  # fmt: skip
    model = fit_recommender(history, PRODUCTS, PLAIN)

    # when
    picks = model.recommend(np.array([9]), history, 3)

    # then: 1 (three co-buyers) before 2 (one); 0 itself was bought, but not within 30 days, so it may come back
    assert picks.products[0].tolist()[:2] == [1, 2]


def test_views_make_products_neighbours_too():
    # given: products 3 and 4 are only ever viewed together
    history = interactions(
        (1, 3, 5, VIEW), (1, 4, 5, VIEW), (2, 3, 6, VIEW), (2, 4, 6, VIEW), (7, 3, 1, VIEW),
        (5, 0, 3, PURCHASE), (6, 0, 3, PURCHASE),
    )  # fmt: skip
    model = fit_recommender(history, PRODUCTS, PLAIN)

    # when
    picks = model.recommend(np.array([7]), history, 2)

    # then
    assert picks.products[0, 0] == 4


def test_recent_co_purchases_outweigh_old_ones():
    # given: 0 went with 1 two years ago (twice), with 2 last week (twice)
    history = interactions(
        (1, 0, 700, PURCHASE), (1, 1, 700, PURCHASE), (2, 0, 710, PURCHASE), (2, 1, 710, PURCHASE),
        (3, 0, 7, PURCHASE), (3, 2, 7, PURCHASE), (4, 0, 8, PURCHASE), (4, 2, 8, PURCHASE),
        (9, 0, 60, PURCHASE),
    )  # fmt: skip
    model = fit_recommender(history, PRODUCTS, Params(half_life_days=60, shrinkage=0.0, popularity_weight=0.0))

    # when
    picks = model.recommend(np.array([9]), history, 2)

    # then
    assert picks.products[0, 0] == 2


def test_a_customer_without_history_gets_the_popular_products_in_order():
    # given: 5 bought by three customers, 3 by two, 1 by one
    history = interactions(
        (1, 5, 1, PURCHASE), (2, 5, 2, PURCHASE), (3, 5, 3, PURCHASE), (1, 3, 1, PURCHASE), (2, 3, 2, PURCHASE),
        (4, 1, 2, PURCHASE),
    )  # fmt: skip
    model = fit_recommender(history, PRODUCTS, PLAIN)

    # when
    picks = model.recommend(np.array([42]), history, 3)

    # then
    assert picks.products[0].tolist() == [5, 3, 1]


def test_recent_purchases_and_products_out_of_stock_never_appear():
    # given: customer 1 bought 0 yesterday; everyone buys 0, 1, 2 together; 1 is out of stock
    rows = [(customer, column, 10, PURCHASE) for customer in range(2, 6) for column in (0, 1, 2)]
    history = interactions(*rows, (1, 0, 1, PURCHASE))
    model = fit_recommender(history, PRODUCTS, PLAIN)
    in_stock = np.array([True, False, True, True, True, True])

    # when
    picks = model.recommend(np.array([1]), history, 6, in_stock)

    # then
    chosen = [column for column in picks.products[0].tolist() if column >= 0]
    assert 0 not in chosen
    assert 1 not in chosen
    assert chosen[0] == 2
    assert sorted(chosen) == [2, 3, 4, 5]


def test_clicks_count_less_than_purchases_and_more_than_nothing():
    history = interactions((1, 0, 1, CLICK), (1, 1, 1, PURCHASE))
    model = fit_recommender(history, PRODUCTS, Params(click_weight=0.5, half_life_days=1e9))

    matrix = model.history(history, np.array([1])).toarray()

    assert matrix[0, :2].tolist() == pytest.approx([0.5, 1.0])


def test_the_model_survives_its_text_form():
    history = interactions((1, 0, 1, PURCHASE), (1, 1, 1, PURCHASE), (2, 0, 3, PURCHASE), (2, 1, 3, PURCHASE))
    model = fit_recommender(history, PRODUCTS, PLAIN)

    loaded = Recommender.from_text(model.to_text(), PLAIN)

    assert loaded.product_ids.tolist() == PRODUCTS.tolist()
    assert loaded.similarity.toarray() == pytest.approx(model.similarity.toarray(), abs=1e-6)
    assert loaded.popularity == pytest.approx(model.popularity, abs=1e-6)


def test_judging_counts_hits_by_rank():
    # given: customer A bought columns 1 and 4; B bought column 2; C bought nothing (not judged)
    picks = Picks(
        np.array([1, 2, 3]),
        np.array([[1, 0, 4], [0, 3, 5], [1, 2, 3]]),
        np.zeros((3, 3), dtype=np.float32),
    )
    truth = sp.csr_matrix(np.array([[0, 1, 0, 0, 1, 0], [0, 0, 1, 0, 0, 0], [0, 0, 0, 0, 0, 0]]))

    # when
    figures = judge(picks, truth, catalogue_size=6, k=3)

    # then: A hits at ranks 1 and 3, B not at all
    ideal_a = 1 + 1 / np.log2(3)
    assert figures.customers == 2
    assert figures.recall == pytest.approx((2 / 2 + 0) / 2)
    assert figures.ndcg == pytest.approx(((1 + 1 / np.log2(4)) / ideal_a + 0) / 2)
    assert figures.coverage == pytest.approx(5 / 6)  # columns 0, 1, 3, 4, 5 shown to A and B


def test_the_popularity_baseline_shows_last_months_bestsellers_to_everyone():
    history = interactions((1, 2, 5, PURCHASE), (2, 2, 6, PURCHASE), (3, 4, 7, PURCHASE), (4, 1, 90, PURCHASE))

    picks = popularity_picks(history, np.array([7, 8]), len(PRODUCTS), 2, PLAIN)

    assert picks.products.tolist() == [[2, 4], [2, 4]]


def test_item_knn_uses_purchases_only():
    # given: 0 and 1 are co-viewed a lot, 0 and 2 co-bought once
    history = interactions(
        (1, 0, 5, VIEW), (1, 1, 5, VIEW), (2, 0, 5, VIEW), (2, 1, 5, VIEW),
        (3, 0, 40, PURCHASE), (3, 2, 40, PURCHASE), (9, 0, 50, PURCHASE),
    )  # fmt: skip

    picks = knn_picks(history, np.array([9]), len(PRODUCTS), 1, PLAIN)

    assert picks.products[0, 0] == 2


def test_a_store_without_enough_history_is_told_what_it_lacks():
    reasons = unmet(buyers=3, order_lines=10, products=4, minimums=RecommendationMinimums(50, 200, 10))

    assert reasons == [
        "4 products in the catalogue; at least 10 needed",
        "3 customers with orders before the cutoff; at least 50 needed",
        "10 order lines before the cutoff; at least 200 needed",
    ]
