"""Fixtures of the ML tests: small LightGBM models trained in-process, their versions, and a few shoppers.

The boosters learn on a random frame whose columns are exactly `FEATURE_NAMES`, with a label driven
by recency and recent orders, so that their reasons name those features. They take a fraction of a
second, so no test needs the demo store.
"""

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
from django.utils import timezone

from marketing.models import Customer, OrderStatus
from ml import registry
from ml.features import FEATURE_NAMES
from ml.models import ModelStatus, ModelVersion
from tests.factories import CustomerFactory, EventFactory, OrderFactory, OrderLineFactory, ProductFactory

AS_OF = datetime(2024, 7, 1, tzinfo=UTC)
JOINED = datetime(2023, 1, 1, tzinfo=UTC)
TRAINING_ROWS = 3_000
BOOST_ROUNDS = 30
BOOSTER_PARAMS = {
    "objective": "binary",
    "num_leaves": 7,
    "min_data_in_leaf": 20,
    "learning_rate": 0.2,
    "verbose": -1,
    "seed": 7,
    "deterministic": True,
    "force_row_wise": True,
    "num_threads": 1,
}


def random_features(rows: int, seed: int) -> pd.DataFrame:
    """Return a frame of plausible feature values, columns exactly `FEATURE_NAMES`."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.gamma(2.0, 20.0, size=(rows, len(FEATURE_NAMES))), columns=list(FEATURE_NAMES))
    frame["days_since_last_order"] = rng.uniform(0, 400, rows).round()
    frame["orders_90d"] = rng.poisson(1.0, rows).astype(float)
    frame["orders_30d"] = np.minimum(frame["orders_90d"], rng.poisson(0.4, rows))
    return frame


def train_booster(invert: bool = False) -> lgb.Booster:
    """Train a small booster whose label falls with recency and rises with recent orders (or the opposite)."""
    frame = random_features(TRAINING_ROWS, seed=11)
    rng = np.random.default_rng(12)
    logit = 1.5 - frame["days_since_last_order"] / 60 + 0.9 * frame["orders_90d"]
    labels = (rng.uniform(size=len(frame)) < 1 / (1 + np.exp(logit if invert else -logit))).astype(int)
    data = lgb.Dataset(frame.to_numpy(), labels, feature_name=list(FEATURE_NAMES))
    return lgb.train(BOOSTER_PARAMS, data, num_boost_round=BOOST_ROUNDS)


@pytest.fixture(scope="session")
def booster() -> lgb.Booster:
    return train_booster()


@pytest.fixture(scope="session")
def worse_booster() -> lgb.Booster:
    """A booster that learned the opposite of the truth: a worse model to promote and roll back."""
    return train_booster(invert=True)


@pytest.fixture(autouse=True)
def fresh_scorers() -> Iterator[None]:
    """Forget loaded models: a rolled-back test database can hand the next test's version an old pk."""
    registry._scorers.clear()
    yield
    registry._scorers.clear()


@pytest.fixture
def make_version(db) -> Callable[..., ModelVersion]:
    """Return a function that stores a booster as a version (candidate unless told otherwise)."""

    def make(
        model: lgb.Booster,
        version: int,
        status: str = ModelStatus.CANDIDATE,
        beats_baselines: bool = True,
        feature_names: list[str] | None = None,
        activated_at: datetime | None = None,
    ) -> ModelVersion:
        return ModelVersion.objects.create(
            version=version,
            status=status,
            horizon_days=90,
            as_of=AS_OF,
            feature_names=list(FEATURE_NAMES) if feature_names is None else feature_names,
            params={"calibration": None},
            metrics={
                "model": {"roc_auc": 0.8, "log_loss": 0.4},
                "recency": {"roc_auc": 0.7, "log_loss": 0.5},
                "logistic": {"roc_auc": 0.75, "log_loss": 0.45},
            },
            beats_baselines=beats_baselines,
            artifact=model.model_to_string(),
            activated_at=activated_at or (timezone.now() if status == ModelStatus.ACTIVE else None),
        )

    return make


@pytest.fixture
def trained_version(make_version, booster) -> ModelVersion:
    """The active version 1, trained in-process on random features."""
    return make_version(booster, version=1, status=ModelStatus.ACTIVE)


@pytest.fixture
def make_shopper(db) -> Callable[..., Customer]:
    """Return a function that creates a customer who joined before `AS_OF` with completed orders and events.

    `orders` holds days before `AS_OF` (one order of 2 × 19.90 = 39.80 each); `events` maps an event
    name to days before `AS_OF`.
    """
    product = ProductFactory(category="books", price=Decimal("19.90"))

    def make(orders: tuple[float, ...] = (), events: dict[str, tuple[float, ...]] | None = None, **fields) -> Customer:
        customer = CustomerFactory(**fields)
        # The history must start before the cutoff: the customer signed up long ago.
        Customer.objects.filter(pk=customer.pk).update(signed_up_at=JOINED, first_seen_at=JOINED)
        customer.refresh_from_db()
        for days in orders:
            order = OrderFactory(
                customer=customer, placed_at=AS_OF - timedelta(days=days), status=OrderStatus.COMPLETED
            )
            OrderLineFactory(order=order, product=product)
        for name, moments in (events or {}).items():
            for days in moments:
                EventFactory(customer=customer, name=name, occurred_at=AS_OF - timedelta(days=days))
        return customer

    return make


SHOPPER_HISTORIES = (
    {"orders": (2, 20, 45, 80), "events": {"product_viewed": (1, 3), "cart_added": (1,)}},
    {"orders": (9, 60), "events": {"email_opened": (5,)}},
    {"orders": (35,), "events": {}},
    {"orders": (120, 200, 300), "events": {"session_started": (100,)}},
    {"orders": (380,), "events": {}},
    {"orders": (), "events": {"product_viewed": (30,)}},
    {"orders": (1, 4, 7, 15, 25, 50, 70), "events": {"checkout_started": (1,)}},
)


@pytest.fixture
def shoppers(make_shopper) -> list[Customer]:
    """Seven customers from very recent regulars to one who never ordered, in id order."""
    return [make_shopper(**history) for history in SHOPPER_HISTORIES]
