"""Product recommendations: item-to-item similarity from co-purchases and co-views, blended with recent popularity.

Pure: interactions come in as arrays (customer, product, age in days, kind) and picks go out as arrays.
Every customer's interactions are weighted by kind (a purchase counts more than a view or a click on a
product in an e-mail) and decay with age, so recent behaviour weighs most. Items are similar when the
same customers touched both: the cosine of their columns, shrunk when few customers share them, keeping
each item's strongest neighbours only. A customer's picks are the sum of the neighbours of what they
touched, scaled to their own best pick, plus `popularity_weight` times recent popularity: a new
customer, with nothing to sum, gets the popular picks. What they bought recently and what is out of
stock never appear. Everything is sparse-matrix arithmetic (scipy): no loop runs over pairs or customers.

Top-N without a dense customers x products matrix: a product that is neither a neighbour of the
customer's history nor among the `popular_candidates` most popular products can only score its own
popularity, which is below every one of those candidates, so scoring only that union is exact as long
as fewer than `popular_candidates - n` of them are excluded.
"""

import base64
import io
import math
from dataclasses import dataclass, field, replace

import numpy as np
import scipy.sparse as sp

PURCHASE, VIEW, CLICK = 0, 1, 2
EVALUATION_K = 10
EXCLUDED_PENALTY = 1e6
# Similarity rows are finished in dense blocks of about this many cells (float32: 4 bytes each).
SIMILARITY_BLOCK_CELLS = 10_000_000


@dataclass(frozen=True)
class Interactions:
    """One row per interaction: who, which product (as a column of the catalogue), how old, what kind."""

    customers: np.ndarray  # int64 customer ids
    products: np.ndarray  # int64 column in the catalogue
    age_days: np.ndarray  # float64 days before the moment the model is trained or applied as of
    kinds: np.ndarray  # int8: PURCHASE, VIEW or CLICK

    def __post_init__(self) -> None:
        sizes = {len(self.customers), len(self.products), len(self.age_days), len(self.kinds)}
        if len(sizes) != 1:
            raise ValueError(f"interaction arrays differ in length: {sorted(sizes)}")

    def where(self, mask: np.ndarray) -> "Interactions":
        return Interactions(self.customers[mask], self.products[mask], self.age_days[mask], self.kinds[mask])

    def older_by(self, days: float) -> "Interactions":
        """Return the interactions seen from `days` later: the same rows, each that much older."""
        return Interactions(self.customers, self.products, self.age_days + days, self.kinds)

    @classmethod
    def empty(cls) -> "Interactions":
        return cls(np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0), np.empty(0, np.int8))


@dataclass(frozen=True)
class Params:
    half_life_days: float = 90.0  # of a customer's interactions, in the similarity and in their own history
    popularity_half_life_days: float = 14.0
    view_weight: float = 0.3
    click_weight: float = 0.5
    popularity_weight: float = 0.3  # recent popularity's share next to the customer's best personal pick
    neighbours: int = 20
    shrinkage: float = 5.0  # customers two items need in common before their cosine counts in full
    popular_candidates: int = 40  # exact while fewer than 40 - n of them are excluded for a customer
    exclude_bought_days: float = 30.0

    def as_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass(frozen=True)
class Picks:
    """Each customer's products, best first: `products[i]` are catalogue columns, -1 where fewer exist."""

    customers: np.ndarray
    products: np.ndarray  # (customers, n) int64
    scores: np.ndarray  # (customers, n) float32


@dataclass(frozen=True)
class Recommender:
    """A fitted model: catalogue columns map to `product_ids`; `similarity` is product x product."""

    product_ids: np.ndarray
    similarity: sp.csr_matrix
    popularity: np.ndarray  # scaled so the most popular product is 1.0
    params: Params = field(default_factory=Params)

    def history(self, interactions: Interactions, customers: np.ndarray) -> sp.csr_matrix:
        """Return the customers' weighted histories, one row per entry of `customers`."""
        return weighted_matrix(interactions, customers, len(self.product_ids), self.params, self.params.half_life_days)

    def recommend(
        self,
        customers: np.ndarray,
        interactions: Interactions,
        n: int,
        in_stock: np.ndarray | None = None,
    ) -> Picks:
        """Return the top `n` of each customer, leaving out their recent purchases and what is out of stock."""
        history = self.history(interactions, customers)
        personal = history @ self.similarity
        return top_n(
            customers,
            personal,
            self.popularity,
            self.params.popularity_weight,
            recent_purchases(interactions, customers, len(self.product_ids), self.params.exclude_bought_days),
            in_stock,
            n,
            self.params.popular_candidates,
        )

    def to_text(self) -> str:
        """Return the model as text for `ModelVersion.artifact`: a base64 NumPy archive."""
        buffer = io.BytesIO()
        matrix = self.similarity.tocsr()
        np.savez_compressed(
            buffer,
            product_ids=self.product_ids,
            indptr=matrix.indptr,
            indices=matrix.indices,
            data=matrix.data.astype(np.float32),
            popularity=self.popularity.astype(np.float32),
        )
        return base64.b64encode(buffer.getvalue()).decode("ascii")

    @classmethod
    def from_text(cls, text: str, params: Params) -> "Recommender":
        arrays = np.load(io.BytesIO(base64.b64decode(text)))
        size = len(arrays["product_ids"])
        similarity = sp.csr_matrix((arrays["data"], arrays["indices"], arrays["indptr"]), shape=(size, size))
        return cls(arrays["product_ids"], similarity, arrays["popularity"].astype(np.float64), params)


def weighted_matrix(
    interactions: Interactions, customers: np.ndarray, products: int, params: Params, half_life_days: float | None
) -> sp.csr_matrix:
    """Return a customers x products matrix of kind weights decayed by age (no decay when the half-life is None)."""
    rows = np.searchsorted(customers, interactions.customers)
    known = rows < len(customers)
    known[known] = customers[rows[known]] == interactions.customers[known]
    kind_weight = np.array([1.0, params.view_weight, params.click_weight])[interactions.kinds[known]]
    decay = 1.0 if half_life_days is None else np.exp2(-interactions.age_days[known] / half_life_days)
    matrix = sp.csr_matrix(
        (kind_weight * decay, (rows[known], interactions.products[known])), shape=(len(customers), products)
    )
    matrix.sum_duplicates()
    return matrix


def recent_purchases(interactions: Interactions, customers: np.ndarray, products: int, days: float) -> sp.csr_matrix:
    """Return a 0/1 customers x products matrix of what each customer bought within `days`."""
    recent = interactions.where((interactions.kinds == PURCHASE) & (interactions.age_days <= days))
    rows = np.searchsorted(customers, recent.customers)
    known = (rows < len(customers)) & (customers[np.minimum(rows, len(customers) - 1)] == recent.customers)
    marks = sp.csr_matrix(
        (np.ones(int(known.sum())), (rows[known], recent.products[known])), shape=(len(customers), products)
    )
    marks.data[:] = 1.0
    return marks


def item_similarity(matrix: sp.csr_matrix, neighbours: int, shrinkage: float) -> sp.csr_matrix:
    """Return the shrunk cosine similarity of the matrix's columns, each row keeping its `neighbours` largest.

    The cosine is multiplied by co / (co + shrinkage), co being the two columns' dot product (about the number
    of customers they share, weighted), so two items one customer happened to touch together stay apart.
    Rows are finished in dense blocks, where a partition finds each row's largest without sorting them all.
    """
    matrix = matrix.tocsr().astype(np.float32)
    products = matrix.shape[1]
    norms = np.sqrt(np.asarray(matrix.multiply(matrix).sum(axis=0)).ravel())
    norms[norms == 0] = 1.0
    transposed = matrix.T.tocsr()
    block = max(1, SIMILARITY_BLOCK_CELLS // max(products, 1))
    keep = min(neighbours, max(products - 1, 0))
    rows, columns, values = [], [], []
    for start in range(0, products, block):
        stop = min(start + block, products)
        co = (transposed[start:stop] @ matrix).toarray()
        co[np.arange(stop - start), np.arange(start, stop)] = 0.0
        cosine = co / (norms[start:stop, None] * norms[None, :])
        if shrinkage > 0:
            cosine *= co / (co + shrinkage)
        if keep == 0:
            continue
        top = np.argpartition(-cosine, keep - 1, axis=1)[:, :keep]
        picked = np.take_along_axis(cosine, top, axis=1)
        kept = picked > 0
        rows.append(np.nonzero(kept)[0] + start)
        columns.append(top[kept])
        values.append(picked[kept])
    if not rows:
        return sp.csr_matrix((products, products), dtype=np.float32)
    return sp.csr_matrix(
        (np.concatenate(values), (np.concatenate(rows), np.concatenate(columns))), shape=(products, products)
    )


def keep_largest_per_row(matrix: sp.csr_matrix, k: int) -> sp.csr_matrix:
    """Return the matrix (non-negative entries) with only the `k` largest entries of each row."""
    matrix = matrix.tocsr()
    counts = np.diff(matrix.indptr)
    if not len(matrix.data) or counts.max() <= k:
        return matrix
    rows = np.repeat(np.arange(matrix.shape[0]), counts)
    order = _by_row_then_descending(rows, matrix.data)
    rank = np.arange(len(order)) - matrix.indptr[rows[order]]
    kept = order[rank < k]
    return sp.csr_matrix((matrix.data[kept], (rows[kept], matrix.indices[kept])), shape=matrix.shape)


def _by_row_then_descending(rows: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Return the order that sorts by row, then by value from largest.

    Values are sorted once, then rows with a stable sort, which NumPy does by radix for 16-bit keys: together
    several times faster than a lexsort of both.
    """
    by_value = np.argsort(-values.astype(np.float32))
    keys = rows[by_value]
    if len(keys) and keys.max() < np.iinfo(np.int16).max:
        keys = keys.astype(np.int16)
    return by_value[np.argsort(keys, kind="stable")]


def popularity(interactions: Interactions, products: int, half_life_days: float) -> np.ndarray:
    """Return each product's decayed count of purchases, scaled so the most popular is 1.0."""
    bought = interactions.where(interactions.kinds == PURCHASE)
    counts = np.bincount(
        bought.products, weights=np.exp2(-bought.age_days / half_life_days), minlength=products
    ).astype(np.float64)
    top = counts.max() if len(counts) else 0.0
    return counts / top if top > 0 else counts


def top_n(
    customers: np.ndarray,
    personal: sp.csr_matrix,
    popular: np.ndarray,
    popularity_weight: float,
    excluded: sp.csr_matrix,
    in_stock: np.ndarray | None,
    n: int,
    popular_candidates: int,
) -> Picks:
    """Blend personal scores (scaled per customer to a best of 1) with popularity and return each top `n`."""
    count, products = personal.shape
    personal = personal.tocsr()
    personal.sum_duplicates()
    if len(personal.data):
        rows = np.repeat(np.arange(count), np.diff(personal.indptr))
        best = np.zeros(count)
        np.maximum.at(best, rows, personal.data)
        personal.data = personal.data / best[rows]
    allowed = np.ones(products, dtype=bool) if in_stock is None else in_stock.astype(bool)
    ranked_popular = np.argsort(-popular, kind="stable")
    ranked_popular = ranked_popular[allowed[ranked_popular]][:popular_candidates]
    popular_block = sp.csr_matrix(
        (
            np.tile(popular[ranked_popular] * popularity_weight + 1e-9, count),
            np.tile(ranked_popular, count),
            np.arange(count + 1) * len(ranked_popular),
        ),
        shape=(count, products),
    )
    # Subtracting a large number marks what was bought recently without looking any entry up.
    blended = (personal + popular_block - excluded * EXCLUDED_PENALTY).tocsr()
    blended.sum_duplicates()
    rows = np.repeat(np.arange(count), np.diff(blended.indptr))
    keep = allowed[blended.indices] & (blended.data > 0)
    rows, columns, scores = rows[keep], blended.indices[keep], blended.data[keep]
    order = _by_row_then_descending(rows, scores)
    rows, columns, scores = rows[order], columns[order], scores[order]
    starts = np.searchsorted(rows, np.arange(count))
    rank = np.arange(len(rows)) - starts[rows]
    wanted = rank < n
    picked = np.full((count, n), -1, dtype=np.int64)
    picked_scores = np.zeros((count, n), dtype=np.float32)
    picked[rows[wanted], rank[wanted]] = columns[wanted]
    picked_scores[rows[wanted], rank[wanted]] = scores[wanted]
    return Picks(customers, picked, picked_scores)


def fit_recommender(interactions: Interactions, product_ids: np.ndarray, params: Params) -> Recommender:
    """Fit similarity and popularity on interactions aged as of the training moment."""
    customers = np.unique(interactions.customers)
    matrix = weighted_matrix(interactions, customers, len(product_ids), params, params.half_life_days)
    similarity = item_similarity(matrix, params.neighbours, params.shrinkage)
    return Recommender(
        product_ids, similarity, popularity(interactions, len(product_ids), params.popularity_half_life_days), params
    )


# Baselines, judged on the same customers with the same exclusions.


def popularity_picks(interactions: Interactions, customers: np.ndarray, products: int, n: int, params: Params) -> Picks:
    """Recent popularity: the products bought by the most customers in the last 30 days, for everyone."""
    recent = interactions.where((interactions.kinds == PURCHASE) & (interactions.age_days <= 30))
    counts = np.bincount(recent.products, minlength=products).astype(np.float64)
    if counts.max(initial=0) > 0:
        counts /= counts.max()
    empty = sp.csr_matrix((len(customers), products))
    excluded = recent_purchases(interactions, customers, products, params.exclude_bought_days)
    return top_n(customers, empty, counts, 1.0, excluded, None, n, n + 50)


def knn_picks(interactions: Interactions, customers: np.ndarray, products: int, n: int, params: Params) -> Picks:
    """Plain item-kNN: the cosine of co-purchases over all history, no decay, no views, no popularity.

    A customer with no purchases gets nothing from it, so every product ties at zero; the ties are broken by
    all-time popularity, as any working item-kNN must do to return anything.
    """
    plain = Params(neighbours=params.neighbours, shrinkage=0.0, view_weight=0.0, click_weight=0.0)
    bought = interactions.where(interactions.kinds == PURCHASE)
    buyers = np.unique(bought.customers)
    matrix = weighted_matrix(bought, buyers, products, plain, None)
    matrix.data[:] = 1.0
    similarity = item_similarity(matrix, params.neighbours, 0.0)
    history = weighted_matrix(bought, customers, products, plain, None)
    history.data[:] = 1.0
    counts = np.bincount(bought.products, minlength=products).astype(np.float64)
    if counts.max(initial=0) > 0:
        counts /= counts.max()
    excluded = recent_purchases(interactions, customers, products, params.exclude_bought_days)
    return top_n(customers, history @ similarity, counts, 1e-3, excluded, None, n, n + 50)


# Evaluation.


@dataclass(frozen=True)
class Judgement:
    recall: float
    ndcg: float
    coverage: float
    customers: int

    def as_dict(self) -> dict:
        return {
            "recall_at_10": round(self.recall, 4),
            "ndcg_at_10": round(self.ndcg, 4),
            "coverage": round(self.coverage, 4),
            "customers": self.customers,
        }


def judge(picks: Picks, truth: sp.csr_matrix, catalogue_size: int, k: int = EVALUATION_K) -> Judgement:
    """Return mean recall@k and NDCG@k over customers with something in `truth`, and catalogue coverage.

    `truth` is customers x products, one row per entry of `picks.customers`, non-zero where they bought.
    """
    truth = truth.tocsr()
    wanted = np.diff(truth.indptr) > 0
    top = picks.products[:, :k]
    valid = top >= 0
    rows = np.repeat(np.arange(len(top)), k).reshape(len(top), k)
    hits = np.zeros(top.shape, dtype=bool)
    hits[valid] = np.asarray(truth[rows[valid], top[valid]]).ravel() > 0
    relevant = np.diff(truth.indptr).astype(np.float64)
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    dcg = (hits * discounts).sum(axis=1)
    ideal = np.cumsum(discounts)[np.minimum(relevant, k).astype(int) - 1]
    judged = wanted.sum()
    if not judged:
        return Judgement(0.0, 0.0, 0.0, 0)
    recall = hits.sum(axis=1)[wanted] / relevant[wanted]
    ndcg = dcg[wanted] / ideal[wanted]
    shown = np.unique(top[wanted & valid.any(axis=1)][valid[wanted & valid.any(axis=1)]])
    return Judgement(float(recall.mean()), float(ndcg.mean()), len(shown) / max(catalogue_size, 1), int(judged))


def truth_matrix(future: Interactions, customers: np.ndarray, products: int) -> sp.csr_matrix:
    """Return what each customer bought in the judged window, 0/1."""
    bought = future.where(future.kinds == PURCHASE)
    rows = np.searchsorted(customers, bought.customers)
    known = (rows < len(customers)) & (customers[np.minimum(rows, len(customers) - 1)] == bought.customers)
    marks = sp.csr_matrix(
        (np.ones(int(known.sum())), (rows[known], bought.products[known])), shape=(len(customers), products)
    )
    marks.data[:] = 1.0
    return marks


def tuning_grid(base: Params) -> list[Params]:
    """Return the configurations tried on the inner validation window, those sharing a similarity together."""
    return [
        replace(base, half_life_days=half_life, popularity_weight=weight, view_weight=views)
        for half_life in (90.0, 365.0)
        for views in (0.1, 0.3)
        for weight in (0.1, 0.3, 1.0)
    ]


def judged_sample(customers: np.ndarray, limit: int) -> np.ndarray:
    """Return at most `limit` of the (ascending) customers, evenly spread: the same ones on every run."""
    if len(customers) <= limit:
        return customers
    return customers[np.linspace(0, len(customers) - 1, limit).astype(np.int64)]


@dataclass(frozen=True)
class Evaluation:
    params: Params
    figures: dict[str, dict]  # model, popularity, item_knn -> Judgement.as_dict()
    tuning: list[dict]

    @property
    def beats_baselines(self) -> bool:
        model = self.figures["model"]["recall_at_10"]
        return all(model > self.figures[name]["recall_at_10"] for name in BASELINES)


BASELINES = ("popularity", "item_knn")
LABELS = {"model": "Kairos recommender", "popularity": "recent popularity", "item_knn": "item-kNN"}


def evaluate(
    history: Interactions,
    future: Interactions,
    product_ids: np.ndarray,
    window_days: float,
    base: Params,
    judged_limit: int = 20_000,
    tuning_limit: int = 200_000,
) -> Evaluation:
    """Tune on the last `window_days` of `history`, then judge model and baselines on `future` (ages as of the split).

    At most `judged_limit` customers are judged in each window, spread evenly over those who bought. Tuning
    learns from every k-th customer only, about `tuning_limit` of them: enough to choose a configuration.
    """
    products = len(product_ids)
    stride = max(1, math.ceil(len(np.unique(history.customers)) / tuning_limit))
    tuned = history.where(history.customers % stride == 0) if stride > 1 else history
    inner_past = tuned.where(tuned.age_days > window_days).older_by(-window_days)
    inner_future = tuned.where(tuned.age_days <= window_days)
    inner_customers = judged_sample(
        np.unique(inner_future.where(inner_future.kinds == PURCHASE).customers), judged_limit
    )
    inner_truth = truth_matrix(inner_future, inner_customers, products)
    tuning = []
    best, best_score = base, -math.inf
    fitted: dict[tuple[float, float], Recommender] = {}
    for params in tuning_grid(base):
        key = (params.half_life_days, params.view_weight)
        if key not in fitted:
            fitted[key] = fit_recommender(inner_past, product_ids, params)
        model = replace(fitted[key], params=params)  # the popularity weight needs no refit
        figure = judge(model.recommend(inner_customers, inner_past, EVALUATION_K), inner_truth, products)
        tuning.append({"params": params.as_dict(), **figure.as_dict()})
        if figure.recall + figure.ndcg > best_score:
            best, best_score = params, figure.recall + figure.ndcg
    customers = judged_sample(np.unique(future.where(future.kinds == PURCHASE).customers), judged_limit)
    truth = truth_matrix(future, customers, products)
    model = fit_recommender(history, product_ids, best)
    figures = {
        "model": judge(model.recommend(customers, history, EVALUATION_K), truth, products).as_dict(),
        "popularity": judge(
            popularity_picks(history, customers, products, EVALUATION_K, best), truth, products
        ).as_dict(),
        "item_knn": judge(knn_picks(history, customers, products, EVALUATION_K, best), truth, products).as_dict(),
    }
    return Evaluation(best, figures, tuning)


def evaluation_table(figures: dict[str, dict]) -> list[str]:
    """Return the evaluation as aligned text lines, the model first."""
    lines = [f"{'':<20} {'recall@10':>10} {'NDCG@10':>9} {'coverage':>9}"]
    for name in ("model", *BASELINES):
        figure = figures[name]
        lines.append(
            f"{LABELS[name]:<20} {figure['recall_at_10']:>10.4f} {figure['ndcg_at_10']:>9.4f} {figure['coverage']:>9.1%}"
        )
    return lines


@dataclass(frozen=True)
class RecommendationMinimums:
    buyers: int
    order_lines: int
    products: int


def unmet(buyers: int, order_lines: int, products: int, minimums: RecommendationMinimums) -> list[str]:
    """Return what the store lacks for a recommender, one sentence each; empty when it has enough."""
    reasons = []
    if products < minimums.products:
        reasons.append(f"{products} products in the catalogue; at least {minimums.products} needed")
    if buyers < minimums.buyers:
        reasons.append(f"{buyers} customers with orders before the cutoff; at least {minimums.buyers} needed")
    if order_lines < minimums.order_lines:
        reasons.append(f"{order_lines} order lines before the cutoff; at least {minimums.order_lines} needed")
    return reasons
