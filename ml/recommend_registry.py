"""Train, judge, register and activate recommender versions; load a version's model once per process.

The Django shell around `ml.recommend`. Training reads a year of interactions before a split 30 days
before `as_of`, tunes on the 30 days before the split, and judges the model and both baselines on what
customers bought in the 30 days after it. The stored model is then refit on the year before `as_of`
with the chosen configuration. A version is activated only if it beats both baselines on recall@10,
unless forced.
"""

import threading
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
from django.conf import settings
from django.db import transaction

from ml.models import PRODUCT_RECOMMENDATIONS, ModelVersion
from ml.recommend import (
    BASELINES,
    LABELS,
    PURCHASE,
    Params,
    RecommendationMinimums,
    Recommender,
    evaluate,
    evaluation_table,
    fit_recommender,
    unmet,
)
from ml.recommend_queries import read_catalogue, read_interactions
from ml.registry import ActivationRefused, activate_version
from ml.training import NotEnoughData


@dataclass(frozen=True)
class RecommenderOptions:
    as_of: datetime
    activate: bool = False
    force: bool = False


def recommendation_minimums() -> RecommendationMinimums:
    return RecommendationMinimums(
        buyers=settings.ML_RECOMMEND_MIN_BUYERS,
        order_lines=settings.ML_RECOMMEND_MIN_ORDER_LINES,
        products=settings.ML_RECOMMEND_MIN_PRODUCTS,
    )


def train_recommender(options: RecommenderOptions) -> ModelVersion:
    """Judge a recommender against its baselines, refit it on the latest history and store it as a new version."""
    as_of = options.as_of
    window = settings.ML_RECOMMEND_EVALUATION_DAYS
    history_days = settings.ML_RECOMMEND_HISTORY_DAYS
    split = as_of - timedelta(days=window)
    catalogue = read_catalogue()
    # One read serves the data gates, the judged window, the history before it and the refit: ages are as of `as_of`.
    everything = read_interactions(catalogue, as_of, split - timedelta(days=history_days))
    bought_before = everything.where((everything.kinds == PURCHASE) & (everything.age_days > window))
    buyers, lines = len(np.unique(bought_before.customers)), len(bought_before.customers)
    reasons = unmet(buyers, lines, len(catalogue.product_ids), recommendation_minimums())
    future = everything.where((everything.age_days <= window) & (everything.kinds == PURCHASE))
    judged = len(np.unique(future.customers))
    if judged < settings.ML_RECOMMEND_MIN_JUDGED_BUYERS:
        reasons.append(
            f"{judged} customers bought in the {window} days before {as_of:%Y-%m-%d}, the judged window; "
            f"at least {settings.ML_RECOMMEND_MIN_JUDGED_BUYERS} needed"
        )
    if reasons:
        raise NotEnoughData(reasons)
    history = everything.where(everything.age_days > window).older_by(-window)
    base = Params(exclude_bought_days=float(settings.ML_RECOMMEND_EXCLUDE_BOUGHT_DAYS))
    evaluation = evaluate(
        history,
        future,
        catalogue.product_ids,
        float(window),
        base,
        settings.ML_RECOMMEND_EVALUATION_CUSTOMERS,
        settings.ML_RECOMMEND_TUNING_CUSTOMERS,
    )
    model = fit_recommender(
        everything.where(everything.age_days <= history_days), catalogue.product_ids, evaluation.params
    )
    del everything, history
    metrics = {
        **evaluation.figures,
        "split": split.isoformat(),
        "window_days": window,
        "products": len(catalogue.product_ids),
        "tuning": evaluation.tuning,
    }
    version = register(options, model, metrics, evaluation.beats_baselines, split, history_days)
    if options.activate:
        activate_recommender(version, force=options.force)
    return version


def register(
    options: RecommenderOptions, model: Recommender, metrics: dict, beats: bool, split: datetime, history_days: int
) -> ModelVersion:
    with transaction.atomic():
        taken = (
            ModelVersion.objects.select_for_update()
            .filter(task=PRODUCT_RECOMMENDATIONS)
            .values_list("version", flat=True)
        )
        number = max(taken, default=0) + 1
        return ModelVersion.objects.create(
            task=PRODUCT_RECOMMENDATIONS,
            version=number,
            horizon_days=metrics["window_days"],
            as_of=options.as_of,
            training_from=options.as_of - timedelta(days=history_days),
            training_to=split,
            feature_names=["purchase", "view", "click"],
            params=model.params.as_dict(),
            metrics=metrics,
            beats_baselines=beats,
            artifact=model.to_text(),
            card=recommender_card(number, options.as_of, model.params, metrics, beats),
        )


def recommender_card(number: int, as_of: datetime, params: Params, metrics: dict, beats: bool) -> str:
    """Return the version's card: what it learned from, how it was judged and what it scored."""
    lines = [
        f"Product recommender v{number}",
        f"Learned from a year of purchases, product views and e-mail clicks before {as_of:%Y-%m-%d %H:%M} UTC.",
        f"Judged on what customers bought in the {metrics['window_days']} days after {metrics['split'][:10]}, "
        "trained only on what came before; the configuration was chosen on the 30 days before that.",
        f"Interactions halve in weight every {params.half_life_days:g} days; views count {params.view_weight:g} "
        f"and clicks {params.click_weight:g} of a purchase; recent popularity weighs {params.popularity_weight:g} "
        f"of a customer's best personal pick; {params.neighbours} neighbours per product.",
        "",
        *evaluation_table(metrics),
        "",
        "Beats both baselines on recall@10." if beats else "Does NOT beat both baselines on recall@10.",
    ]
    return "\n".join(lines)


def versus(metrics: dict) -> str:
    """Return "recall@10 0.34 vs recent popularity 0.26, item-kNN 0.30"."""
    return f"recall@10 {metrics['model']['recall_at_10']} vs " + ", ".join(
        f"{LABELS[name]} {metrics[name]['recall_at_10']}" for name in BASELINES
    )


def activate_recommender(version: ModelVersion, force: bool = False) -> ModelVersion:
    """Make the version the one e-mails read picks from; refuse one that loses to a baseline unless forced."""
    if not force and not version.beats_baselines:
        raise ActivationRefused(
            f"{version} does not beat both baselines ({versus(version.metrics)}); activate it with force to override"
        )
    return activate_version(version, force=True)


_models: dict[tuple[int, int], Recommender] = {}
_models_lock = threading.Lock()


def recommender_for(version: ModelVersion) -> Recommender:
    """Return the version's model, loaded once per process."""
    key = (version.pk, len(version.artifact))
    with _models_lock:
        if key not in _models:
            known = set(Params.__dataclass_fields__)
            params = Params(**{name: value for name, value in version.params.items() if name in known})
            _models[key] = Recommender.from_text(version.artifact, params)
        return _models[key]
