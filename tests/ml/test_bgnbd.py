"""BG/NBD: parameters recovered from purchases simulated with them, and its predictions against what happened."""

import numpy as np
import pytest

from ml.bgnbd import BgNbd, NotFitted, fit_bgnbd, log_likelihood

# The parameters Fader, Hardie & Lee (2005) estimated on CDNOW, in weeks; here in days (α × 7).
TRUE = {"r": 0.243, "alpha": 4.414 * 7, "a": 0.793, "b": 2.426}
CUSTOMERS = 20_000
HORIZON_DAYS = 90


def simulate(seed: int, customers: int = CUSTOMERS) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Return (x, t_x, T) of customers drawn from the BG/NBD story, and whether each buys within the next horizon.

    Each customer buys at a gamma-distributed rate from their first purchase on, and after each
    repeat purchase drops out for good with a beta-distributed probability; they are watched for
    27 to 39 weeks after their first purchase, like CDNOW's first-quarter cohort.
    """
    rng = np.random.default_rng(seed)
    rate = rng.gamma(TRUE["r"], 1 / TRUE["alpha"], customers)
    dropout = rng.beta(TRUE["a"], TRUE["b"], customers)
    T = rng.uniform(27 * 7, 39 * 7, customers)
    x, t_x, buys_next = np.zeros(customers), np.zeros(customers), np.zeros(customers, dtype=bool)
    for i in range(customers):
        moment = 0.0
        while True:
            moment += rng.exponential(1 / rate[i])
            if moment > T[i]:
                buys_next[i] = moment <= T[i] + HORIZON_DAYS
                break
            x[i], t_x[i] = x[i] + 1, moment
            if rng.random() < dropout[i]:
                break
    return x, t_x, T, buys_next


@pytest.fixture(scope="module")
def simulated():
    return simulate(seed=2005)


def test_the_parameters_are_recovered_from_purchases_simulated_with_them(simulated):
    x, t_x, T, _ = simulated

    fitted = fit_bgnbd(x, t_x, T)

    # Over 20 seeds at 20,000 customers the largest errors were 3.4% (r), 7% (α), 15% (a), 18% (b)
    # and 4.6% (a / (a + b), the mean dropout): the bounds leave room for sampling noise only.
    assert fitted.r == pytest.approx(TRUE["r"], rel=0.10)
    assert fitted.alpha == pytest.approx(TRUE["alpha"], rel=0.12)
    assert fitted.a == pytest.approx(TRUE["a"], rel=0.30)
    assert fitted.b == pytest.approx(TRUE["b"], rel=0.30)
    assert fitted.a / (fitted.a + fitted.b) == pytest.approx(TRUE["a"] / (TRUE["a"] + TRUE["b"]), rel=0.08)
    assert fitted.customers == CUSTOMERS


def test_the_fit_is_the_maximum_of_the_likelihood(simulated):
    x, t_x, T, _ = simulated
    fitted = fit_bgnbd(x, t_x, T)
    best = log_likelihood(np.array([fitted.r, fitted.alpha, fitted.a, fitted.b]), x, t_x, T).sum()

    for factor in (0.9, 1.1):
        for index in range(4):
            moved = np.array([fitted.r, fitted.alpha, fitted.a, fitted.b])
            moved[index] *= factor
            assert log_likelihood(moved, x, t_x, T).sum() < best
    assert fitted.log_likelihood == pytest.approx(best, rel=1e-9)


def test_the_chance_of_an_order_within_the_horizon_matches_what_the_simulated_customers_did(simulated):
    x, t_x, T, buys_next = simulated

    predicted = fit_bgnbd(x, t_x, T).probability_of_purchase(x, t_x, T, HORIZON_DAYS)

    assert predicted.mean() == pytest.approx(buys_next.mean(), abs=0.01)
    # Ranked by the prediction, the top tenth buys far more often than the rest.
    top = np.argsort(-predicted)[: CUSTOMERS // 10]
    assert buys_next[top].mean() > 3 * buys_next.mean()


def test_a_customer_who_stopped_buying_long_ago_is_less_likely_alive_than_one_who_just_bought():
    model = BgNbd(r=0.243, alpha=30.9, a=0.793, b=2.426, customers=0, log_likelihood=0.0)

    alive = model.probability_alive(np.array([5, 5, 0]), np.array([200, 20, 0]), np.array([210, 210, 210]))

    assert alive[0] > alive[1]  # five repeat purchases, the last ten days ago against 190 days ago
    assert alive[2] == 1.0  # without a repeat purchase there was never a chance to drop out
    assert model.probability_of_purchase(np.array([0]), np.array([0]), np.array([0]), 0)[0] == 0.0


def test_stored_parameters_give_the_same_model_back():
    model = BgNbd(r=0.25, alpha=31.0, a=0.8, b=2.4, customers=10, log_likelihood=-5.0)

    again = BgNbd.from_dict(model.as_dict())

    assert again.as_dict() == model.as_dict()


@pytest.mark.parametrize(
    ("x", "t_x", "T", "message"),
    [
        ([0, 0, 0], [0, 0, 0], [10, 20, 30], "BG/NBD needs customers who bought again and customers who did not"),
        ([1, 2], [5, 10], [20, 30], "BG/NBD needs customers who bought again and customers who did not"),
    ],
)
def test_histories_that_cannot_identify_the_model_are_refused(x, t_x, T, message):
    with pytest.raises(NotFitted, match=message):
        fit_bgnbd(np.array(x), np.array(t_x), np.array(T))


def test_impossible_histories_are_refused_by_name():
    with pytest.raises(ValueError, match="histories need x >= 0 and 0 <= t_x <= T"):
        fit_bgnbd(np.array([1, 0]), np.array([40, 0]), np.array([30, 10]))
    with pytest.raises(ValueError, match="must describe the same customers; got 2, 1 and 2 values"):
        fit_bgnbd(np.array([1, 0]), np.array([4]), np.array([30, 10]))
