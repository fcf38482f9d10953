"""Activating and rolling back versions: a worse model is refused unless forced, and rollback restores old scores."""

from datetime import UTC, datetime

import numpy as np
import pytest

from marketing.models import Customer, Segment, SegmentRule
from marketing.segments.refresh import refresh_segment
from ml.models import ModelStatus, ModelVersion, Score
from ml.registry import ActivationRefused, activate_version, roll_back, scorer_for
from ml.runs import start_scoring_run
from tests.ml.conftest import AS_OF

NOW = datetime(2024, 7, 2, tzinfo=UTC)


def statuses() -> list[tuple[int, str]]:
    return list(ModelVersion.objects.order_by("version").values_list("version", "status"))


def scores_of(version: ModelVersion) -> dict[int, tuple]:
    return {
        customer: (probability, decile, reasons)
        for customer, probability, decile, reasons in Score.objects.filter(model_version=version)
        .order_by("customer_id")
        .values_list("customer_id", "probability", "decile", "reasons")
    }


def members(segment: Segment) -> set[int]:
    return set(Customer.objects.filter(memberships__segment=segment).values_list("pk", flat=True))


def test_a_version_that_does_not_beat_its_baselines_is_refused_and_nothing_changes(
    trained_version, make_version, worse_booster
):
    worse = make_version(worse_booster, version=2, beats_baselines=False)

    with pytest.raises(ActivationRefused) as raised:
        activate_version(worse)

    assert str(raised.value) == (
        "purchase_propensity v2 (candidate) does not beat every baseline on the validation snapshot (ROC AUC 0.8 vs "
        "recency rank 0.7, logistic regression 0.75; log loss 0.4 vs recency rank 0.5, logistic regression 0.45); "
        "activate it with force to override"
    )
    assert statuses() == [(1, ModelStatus.ACTIVE), (2, ModelStatus.CANDIDATE)]
    worse.refresh_from_db()
    assert (worse.status, worse.activated_at) == (ModelStatus.CANDIDATE, None)


def test_force_activates_a_version_that_does_not_beat_its_baselines_and_retires_the_active_one(
    trained_version, make_version, worse_booster
):
    worse = make_version(worse_booster, version=2, beats_baselines=False)

    activated = activate_version(worse, force=True)

    assert activated == worse
    assert statuses() == [(1, ModelStatus.RETIRED), (2, ModelStatus.ACTIVE)]
    worse.refresh_from_db()
    assert worse.activated_at is not None


def test_activating_the_active_version_changes_nothing(trained_version):
    activated_at = trained_version.activated_at

    activate_version(ModelVersion.objects.get(pk=trained_version.pk))

    trained_version.refresh_from_db()
    assert (trained_version.status, trained_version.activated_at) == (ModelStatus.ACTIVE, activated_at)


def test_rolling_back_a_worse_model_restores_the_old_version_and_its_scores(
    make_version, booster, worse_booster, shoppers, django_capture_on_commit_callbacks
):
    # Given v1 active and scored, and a segment of its likeliest customers
    v1 = make_version(booster, version=1, status=ModelStatus.ACTIVE)
    with django_capture_on_commit_callbacks(execute=True):
        start_scoring_run(AS_OF)
    v1_scores = scores_of(v1)
    threshold = float(np.median([probability for probability, _, _ in v1_scores.values()]))
    likeliest = Segment.objects.create(name="Likely buyers")
    config = {"task": "purchase_propensity", "measure": "probability", "op": "at_least", "value": threshold}
    SegmentRule.objects.create(segment=likeliest, type="score", config=config)
    refresh_segment(likeliest.pk, NOW)
    v1_members = members(likeliest)
    # and a worse v2 promoted by force and scored
    v2 = make_version(worse_booster, version=2, beats_baselines=False)
    activate_version(v2, force=True)
    with django_capture_on_commit_callbacks(execute=True):
        start_scoring_run(AS_OF)
    v2_scores = scores_of(v2)
    refresh_segment(likeliest.pk, NOW)
    v2_members = members(likeliest)

    # When it is rolled back
    restored = roll_back()
    refresh_segment(likeliest.pk, NOW)

    # Then v1 is active again, its scores untouched, and the segment reads them again
    assert restored.pk == v1.pk
    assert statuses() == [(1, ModelStatus.ACTIVE), (2, ModelStatus.RETIRED)]
    assert v1_members == {customer for customer, (p, _, _) in v1_scores.items() if p >= threshold}
    assert v2_members == {customer for customer, (p, _, _) in v2_scores.items() if p >= threshold}
    assert v2_members != v1_members
    assert members(likeliest) == v1_members
    assert scores_of(v1) == v1_scores
    assert sorted(Score.objects.values_list("customer_id", "model_version_id")) == sorted(
        (shopper.pk, version.pk) for shopper in shoppers for version in (v1, v2)
    )


def test_rolling_back_twice_returns_to_the_later_version(trained_version, make_version, worse_booster):
    later = make_version(worse_booster, version=2)
    activate_version(later)
    roll_back()

    restored = roll_back()

    assert restored.pk == later.pk
    assert statuses() == [(1, ModelStatus.RETIRED), (2, ModelStatus.ACTIVE)]


def test_there_is_nothing_to_roll_back_to_without_an_earlier_active_version(
    trained_version, make_version, worse_booster
):
    make_version(worse_booster, version=2)  # a candidate that was never active

    with pytest.raises(ActivationRefused) as raised:
        roll_back()

    assert str(raised.value) == "no earlier active version of purchase_propensity to roll back to"
    assert statuses() == [(1, ModelStatus.ACTIVE), (2, ModelStatus.CANDIDATE)]


def test_a_version_is_loaded_once_per_process(trained_version):
    first = scorer_for(trained_version)

    again = scorer_for(ModelVersion.objects.get(pk=trained_version.pk))

    assert again is first
    assert first.feature_names == trained_version.feature_names
