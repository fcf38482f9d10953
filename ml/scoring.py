"""Apply a trained model to a feature matrix: probabilities and deciles in bulk, reasons on demand.

Pure: a `Scorer` is built from a version's artifact, feature names and BG/NBD parameters, and
refuses any frame whose columns differ from the names in name or order. Bulk scoring only
predicts: about 175,000 rows a second. Reasons are LightGBM's exact SHAP contributions
(`pred_contrib`), which cost about fifty predictions per row, so they are computed when a
customer's page or the API asks, or in bulk for the few top deciles a campaign needs. For many
rows at once, each tree is explained once per distinct *direction pattern* among the customers
(SHAP values add up over trees, and within one tree a customer's contributions depend only on
which way they go at each of its few splits) and the results are scattered back: the same numbers
as one call on every row (a test compares them), several times faster.
"""

import json
from collections.abc import Sequence
from dataclasses import dataclass

import lightgbm as lgb
import numpy as np
import pandas as pd

from ml.bgnbd import BgNbd
from ml.features import build_features, check_feature_names

REASONS_PER_CUSTOMER = 3
DECILES = 10
# Below this many rows one pred_contrib call on every tree is cheaper than explaining patterns.
DIRECT_EXPLANATION_ROWS = 500


@dataclass(frozen=True)
class ScoredCustomers:
    customer_ids: np.ndarray
    probability: np.ndarray
    reasons: list[str]  # one JSON list per customer: [{"feature", "value", "effect"}, ...]
    patterns: int  # tree patterns explained: the cost of the reasons, in single-tree rows


class Scorer:
    """A loaded model: one per process and version, checked against the features before every use."""

    def __init__(
        self,
        artifact: str,
        feature_names: Sequence[str],
        calibration: Sequence[float] | None,
        threads: int = 1,
        buying: BgNbd | None = None,
        horizon_days: float = 90,
    ):
        self.boosters = load_boosters(artifact)
        self.feature_names = list(feature_names)
        for booster in self.boosters:
            check_feature_names(booster.feature_name(), self.feature_names)
        self.calibration = tuple(calibration) if calibration else None
        self.threads = threads
        self.buying = buying
        self.horizon_days = horizon_days
        self._trees = [_tree_splits(booster) for booster in self.boosters]

    def features(self, aggregates: pd.DataFrame, as_of_t: float, season: float) -> pd.DataFrame:
        """Return the model's features of the aggregates, the buying ones from the version's own BG/NBD."""
        return build_features(aggregates, as_of_t, self.buying, self.horizon_days, season)

    def check(self, features: pd.DataFrame) -> None:
        """Raise `FeatureMismatch` unless the frame's columns are the model's, in its order."""
        check_feature_names(features.columns, self.feature_names)

    def probability(self, features: pd.DataFrame) -> np.ndarray:
        """Return probabilities without explanations: what bulk scoring writes."""
        values = self._values(features)
        if not len(values):
            return np.empty(0)
        raw = np.mean([b.predict(values, raw_score=True, num_threads=self.threads) for b in self.boosters], axis=0)
        return self._calibrate(raw)

    def score(self, features: pd.DataFrame) -> ScoredCustomers:
        """Return probabilities and top reasons for every row of the frame."""
        values = self._values(features)
        if not len(values):
            return ScoredCustomers(np.empty(0, dtype=np.int64), np.empty(0), [], 0)
        # SHAP values are linear in the model: the ensemble's are the mean of its boosters'.
        contributions, patterns = np.zeros((values.shape[1] + 1, len(values))), 0
        for booster, trees in zip(self.boosters, self._trees, strict=True):
            if len(values) < DIRECT_EXPLANATION_ROWS:
                contributions += booster.predict(values, pred_contrib=True, num_threads=self.threads).T
                patterns += len(values) * len(trees)
            else:
                explained, explained_patterns = self._contributions(booster, trees, values)
                contributions += explained
                patterns += explained_patterns
        contributions /= len(self.boosters)
        raw = contributions.sum(axis=0)
        effects = contributions[:-1].T
        top = np.argsort(-np.abs(effects), axis=1, kind="stable")[:, :REASONS_PER_CUSTOMER]
        rows = np.arange(len(values))[:, None]
        reasons = _reasons_json(self.feature_names, top, effects[rows, top].round(4), values[rows, top].round(4))
        return ScoredCustomers(
            customer_ids=features.index.to_numpy(dtype=np.int64),
            probability=self._calibrate(raw),
            reasons=reasons,
            patterns=patterns,
        )

    def _values(self, features: pd.DataFrame) -> np.ndarray:
        self.check(features)
        values = features.to_numpy(dtype=np.float64)
        if len(values) and np.isnan(values).any():
            missing = [name for name, bad in zip(self.feature_names, np.isnan(values).any(axis=0), strict=True) if bad]
            raise ValueError(f"features hold no value (NaN) in {', '.join(missing)}")
        return values

    def _calibrate(self, raw: np.ndarray) -> np.ndarray:
        if self.calibration:
            slope, intercept = self.calibration
            raw = slope * raw + intercept
        return 1.0 / (1.0 + np.exp(-raw))

    def _contributions(self, booster: lgb.Booster, trees, values: np.ndarray) -> tuple[np.ndarray, int]:
        """Return one booster's SHAP contributions (features then bias, by customer) and the tree patterns explained."""
        by_feature = np.ascontiguousarray(values.T)
        total = np.zeros((values.shape[1] + 1, len(values)))
        patterns = 0
        for tree, (features, thresholds, used) in enumerate(trees):
            if not len(features):
                representatives, inverse = np.zeros(1, dtype=np.int64), np.zeros(len(values), dtype=np.int64)
            else:
                # LightGBM sends a value left when it is <= the threshold; never NaN here.
                directions = np.packbits(by_feature[features] <= thresholds[:, None], axis=0, bitorder="little")
                keys = _pattern_keys(directions)
                _, representatives, inverse = np.unique(keys, return_index=True, return_inverse=True)
                inverse = inverse.ravel()
            explained = booster.predict(
                values[representatives],
                pred_contrib=True,
                start_iteration=tree,
                num_iteration=1,
                num_threads=self.threads,
            )
            for column in used:
                total[column] += explained[inverse, column]
            total[-1] += explained[0, -1]
            patterns += len(representatives)
        return total, patterns


ENSEMBLE_FORMAT = "kairos.propensity-ensemble/1"


def ensemble_artifact(boosters: Sequence[lgb.Booster]) -> str:
    """Return the text stored for a model of several boosters whose raw scores are averaged."""
    return json.dumps({"format": ENSEMBLE_FORMAT, "boosters": [booster.model_to_string() for booster in boosters]})


def load_boosters(artifact: str) -> list[lgb.Booster]:
    """Return the boosters of a stored artifact: an ensemble's JSON, or one LightGBM model as LightGBM writes it."""
    if not artifact.lstrip().startswith("{"):
        return [lgb.Booster(model_str=artifact)]
    data = json.loads(artifact)
    if data.get("format") != ENSEMBLE_FORMAT or not data.get("boosters"):
        raise ValueError(f"the artifact is not a {ENSEMBLE_FORMAT} artifact")
    return [lgb.Booster(model_str=text) for text in data["boosters"]]


def _pattern_keys(directions: np.ndarray) -> np.ndarray:
    """Return one sortable key per customer from their packed split directions (bytes by customer)."""
    if directions.shape[0] <= 8:
        # Up to 64 splits fit one integer, which sorts several times faster than raw bytes.
        padded = np.zeros((8, directions.shape[1]), dtype=np.uint8)
        padded[: directions.shape[0]] = directions
        return np.ascontiguousarray(padded.T).view("<u8").ravel()
    return np.ascontiguousarray(directions.T).view(np.dtype((np.void, directions.shape[0]))).ravel()


def _tree_splits(booster: lgb.Booster) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Return, per tree, the feature and threshold of each split and the features it uses."""
    trees = []
    for tree in booster.dump_model()["tree_info"]:
        features, thresholds, stack = [], [], [tree["tree_structure"]]
        while stack:
            node = stack.pop()
            if "split_feature" in node:
                if node.get("decision_type", "<=") != "<=":
                    raise ValueError("only numerical splits are supported")
                features.append(node["split_feature"])
                thresholds.append(float(node["threshold"]))
                stack += [node["left_child"], node["right_child"]]
        trees.append((np.array(features, dtype=np.int64), np.array(thresholds), np.unique(features).astype(np.int64)))
    return trees


def _reasons_json(names: list[str], top: np.ndarray, effects: np.ndarray, values: np.ndarray) -> list[str]:
    """Return each customer's reasons as a JSON list; formatted directly, as json.dumps per row is the slow part."""
    quoted = [json.dumps(name) for name in names]
    return [
        "["
        + ", ".join(
            f'{{"feature": {quoted[i]}, "value": {value!r}, "effect": {effect!r}}}'
            for i, value, effect in zip(order.tolist(), value_row.tolist(), effect_row.tolist(), strict=True)
            if effect != 0
        )
        + "]"
        for order, value_row, effect_row in zip(top, values, effects, strict=True)
    ]


def decile_cut_points(probability: np.ndarray) -> list[float]:
    """Return the nine probabilities that split a population into deciles, lowest first."""
    if not len(probability):
        return []
    return [float(q) for q in np.quantile(probability, np.arange(1, DECILES) / DECILES)]


def assign_deciles(probability: np.ndarray, cut_points: Sequence[float]) -> np.ndarray:
    """Return 1 for the most likely tenth through 10 for the least, by the given cut points."""
    if not cut_points:
        return np.ones(len(probability), dtype=np.int16)
    return (DECILES - np.searchsorted(np.asarray(cut_points), probability, side="right")).astype(np.int16)
