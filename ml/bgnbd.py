"""The BG/NBD model of repeat buying (Fader, Hardie & Lee, 2005): the field's standard baseline.

Pure. Each customer, from their first purchase on, buys at a rate λ drawn from a gamma
distribution (shape r, rate α) and, after each purchase, drops out for good with a probability p
drawn from a beta distribution (a, b). A customer's history is summed up by three numbers, in
days: `x` repeat purchase days after the first one, `t_x` the time from the first purchase to the
last, `T` the time from the first purchase to the cutoff. The four parameters are fitted by
maximum likelihood on the closed-form likelihood of the paper (its equation 6) with scipy's
L-BFGS-B, on log parameters so that they stay positive.

`probability_of_purchase` is what propensity is judged on: the chance of at least one purchase
within the next `days` after the cutoff. Alive after the last purchase, a customer cannot drop out
without buying again, so P = P(alive) · (1 − ((α + T) / (α + T + days)) ** (r + x)), the second
factor being a gamma-Poisson customer's chance of buying within the window.
"""

from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize
from scipy.special import betaln, expit, gammaln

# Start of the search, on log parameters: r = α = a = b = 1 is a shop where the average customer
# buys once a day until they drop out after the first purchase half of the time: far from any
# real shop, so the optimiser is not pulled towards an answer it was handed.
START = np.zeros(4)
LOG_BOUNDS = [(-12.0, 12.0)] * 4
MAX_ITERATIONS = 500


class NotFitted(ValueError):
    """The history cannot support the model (no repeat buying at all, or too few customers)."""


@dataclass(frozen=True)
class BgNbd:
    r: float
    alpha: float
    a: float
    b: float
    customers: int
    log_likelihood: float

    def as_dict(self) -> dict[str, float]:
        return {"r": self.r, "alpha": self.alpha, "a": self.a, "b": self.b}

    @classmethod
    def from_dict(cls, params: dict[str, float]) -> "BgNbd":
        """Return the model of stored parameters (as `as_dict` wrote them)."""
        return cls(r=params["r"], alpha=params["alpha"], a=params["a"], b=params["b"], customers=0, log_likelihood=float("nan"))

    def probability_alive(self, x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> np.ndarray:
        """Return each customer's chance of still being a customer at the cutoff."""
        x, t_x, T = _checked(x, t_x, T)
        # log of a / (b + x - 1) * ((α + T) / (α + t_x)) ** (r + x), only for customers who bought again
        odds = np.full(len(x), -np.inf)
        repeat = x > 0
        odds[repeat] = (
            np.log(self.a)
            - np.log(self.b + x[repeat] - 1)
            + (self.r + x[repeat]) * (np.log(self.alpha + T[repeat]) - np.log(self.alpha + t_x[repeat]))
        )
        return expit(-odds)

    def probability_of_purchase(self, x: np.ndarray, t_x: np.ndarray, T: np.ndarray, days: float) -> np.ndarray:
        """Return each customer's chance of at least one purchase within `days` after the cutoff."""
        x, t_x, T = _checked(x, t_x, T)
        none_while_alive = np.exp((self.r + x) * (np.log(self.alpha + T) - np.log(self.alpha + T + days)))
        return self.probability_alive(x, t_x, T) * (1.0 - none_while_alive)


def log_likelihood(params: np.ndarray, x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> np.ndarray:
    """Return each customer's log-likelihood under (r, α, a, b)."""
    r, alpha, a, b = params
    shared = gammaln(r + x) - gammaln(r) + r * np.log(alpha)
    stays = betaln(a, b + x) - betaln(a, b) + shared - (r + x) * np.log(alpha + T)
    total = stays.copy()
    repeat = x > 0
    drops = (
        betaln(a + 1, b + x[repeat] - 1) - betaln(a, b) + shared[repeat] - (r + x[repeat]) * np.log(alpha + t_x[repeat])
    )
    total[repeat] = np.logaddexp(stays[repeat], drops)
    return total


def fit_bgnbd(x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> BgNbd:
    """Fit the four parameters by maximum likelihood; raise NotFitted when the history cannot identify them."""
    x, t_x, T = _checked(x, t_x, T)
    if len(x) < 2 or not (x > 0).any() or (x > 0).all():
        raise NotFitted("BG/NBD needs customers who bought again and customers who did not")
    # Customers with the same history share a likelihood: fit on the distinct histories, weighted.
    histories, counts = np.unique(np.column_stack([x, t_x, T]), axis=0, return_counts=True)
    hx, ht, hT = histories.T

    def loss(log_params: np.ndarray) -> float:
        return -float(np.dot(counts, log_likelihood(np.exp(log_params), hx, ht, hT))) / len(x)

    result = minimize(loss, START, method="L-BFGS-B", bounds=LOG_BOUNDS, options={"maxiter": MAX_ITERATIONS})
    if not np.isfinite(result.fun):
        raise NotFitted(f"BG/NBD likelihood did not converge: {result.message}")
    r, alpha, a, b = (float(value) for value in np.exp(result.x))
    return BgNbd(r=r, alpha=alpha, a=a, b=b, customers=len(x), log_likelihood=-result.fun * len(x))


def _checked(x, t_x, T) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x, t_x, T = (np.asarray(values, dtype=float).ravel() for values in (x, t_x, T))
    if not len(x) == len(t_x) == len(T):
        raise ValueError(f"x, t_x and T must describe the same customers; got {len(x)}, {len(t_x)} and {len(T)} values")
    if (x < 0).any() or (t_x < 0).any() or (t_x > T).any():
        raise ValueError("histories need x >= 0 and 0 <= t_x <= T")
    return x, t_x, T
