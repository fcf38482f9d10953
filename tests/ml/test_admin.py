"""The ML admin: a version judged against its baselines, activate and roll back actions, scores on the customer page."""

from datetime import datetime

import numpy as np
import pandas as pd
import pytest
from django.contrib.messages import get_messages
from django.urls import reverse
from pytest_django.asserts import assertContains

from ml.card import model_card
from ml.evaluation import evaluate
from ml.fairness import fairness_report
from ml.features import FEATURE_NAMES
from ml.models import ChunkStatus, ModelStatus, ModelVersion, RunStatus, Score, ScoringChunk, ScoringRun
from ml.registry import activate_version
from tests.factories import CustomerFactory
from tests.ml.conftest import AS_OF

pytestmark = pytest.mark.django_db


def judged_metrics() -> dict:
    """Return the metrics training stores: the model and the three baselines evaluated on one validation snapshot."""
    rng = np.random.default_rng(4)
    labels = rng.uniform(size=400) < 0.3
    signal = labels + rng.normal(0, 1, 400)
    probability = {
        "model": 1 / (1 + np.exp(-(2 * signal - 2))),
        "recency": 1 / (1 + np.exp(-(signal + rng.normal(0, 1, 400) - 1))),
        "logistic": 1 / (1 + np.exp(-(signal + rng.normal(0, 0.7, 400) - 1))),
        "bgnbd": 1 / (1 + np.exp(-(signal + rng.normal(0, 0.9, 400) - 1))),
    }
    metrics = {name: evaluate(labels.astype(int), p) for name, p in probability.items()}
    return metrics | {
        "calibration_note": "calibration error 0.0200 on the validation snapshot",
        "snapshots": [
            {"cutoff": "2024-01-03T00:00:00+00:00", "customers": 380, "positives": 110, "role": "training"},
            {"cutoff": "2024-04-02T00:00:00+00:00", "customers": 400, "positives": 120, "role": "validation"},
        ],
        "importance": [["days_since_last_order", 812.5], ["orders_90d", 301.25], ["tenure_days", 12.0]],
    }


def judged_fairness() -> dict:
    """Return a report in which half of the women who bought were scored low, and every man who bought high."""
    frame = pd.DataFrame(
        {
            "label": [1, 1, 0, 0] * 10 + [1, 1, 0, 0] * 10,
            "probability": [0.9, 0.1, 0.1, 0.1] * 10 + [0.9, 0.9, 0.1, 0.1] * 10,
            "gender": ["F"] * 40 + ["M"] * 40,
            "age_band": [""] * 80,
            "country": ["DE"] * 80,
        }
    )
    return fairness_report(frame, threshold=0.5, top_share=0.5, min_group_size=30)


REFIT = ["2024-01-03T00:00:00+00:00", "2024-02-01T00:00:00+00:00", "2024-04-02T00:00:00+00:00"]


@pytest.fixture
def judged_version(make_version, booster) -> ModelVersion:
    version = make_version(booster, version=1, status=ModelStatus.ACTIVE)
    version.metrics = judged_metrics()
    version.fairness = judged_fairness()
    version.params = {
        "calibration": None,
        "best_iteration": 30,
        "sample_stride": 1,
        "lightgbm": {"num_leaves": 7},
        "bgnbd": {"r": 0.25, "alpha": 31.0, "a": 0.8, "b": 2.4},
        "refit_cutoffs": REFIT,
    }
    version.card = model_card(
        {
            "version": 1, "horizon_days": 90, "as_of": AS_OF, "validation_cutoff": AS_OF, "feature_names": FEATURE_NAMES,
            "metrics": version.metrics, "fairness": version.fairness, "beats_baselines": True, "best_iteration": 30,
            "importance": [("days_since_last_order", 812.5), ("orders_90d", 301.25)],
            "refit_cutoffs": [datetime.fromisoformat(cutoff) for cutoff in REFIT], "bgnbd": version.params["bgnbd"],
        }
    )  # fmt: skip
    version.save()
    return version


def messages_of(response) -> list[tuple[str, str]]:
    return [(message.level_tag, message.message) for message in get_messages(response.wsgi_request)]


def test_the_version_page_shows_metrics_charts_card_and_fairness(admin_client, judged_version):
    response = admin_client.get(reverse("admin:ml_modelversion_change", args=[judged_version.pk]))

    page = response.content.decode()
    metrics = judged_version.metrics
    assert response.status_code == 200
    assert "<th>Model</th><th>Recency rank</th><th>Logistic regression</th><th>BG/NBD</th>" in page
    row = "".join(f"<td>{metrics[name]['roc_auc']:.4f}</td>" for name in ("model", "recency", "logistic", "bgnbd"))
    assert f"<tr><th>ROC AUC</th>{row}<td>higher is better</td></tr>" in page
    assert "calibration error 0.0200 on the validation snapshot" in page
    assert (
        "30 trees chosen on the validation snapshot, refit on 3 snapshots from 2024-01-03 to 2024-04-02 "
        "(every snapshot weighs the same)"
    ) in page
    assert "BG/NBD r=0.25, alpha=31, a=0.8, b=2.4" in page
    assert page.count('<svg xmlns="http://www.w3.org/2000/svg" width="360"') == 4  # ROC, gains, calibration, importance
    assert [title in page for title in ("ROC curve", "Cumulative gains", "Calibration", "Feature importance, top 3")] == [
        True, True, True, True,
    ]  # fmt: skip
    assert "Purchase propensity, version 1" in page
    assert (
        "<li>Gender &#x27;F&#x27;: of its customers who went on to buy, the threshold selection (at least 0.5) reaches "
        "50.0%, 0.50 of the rate for &#x27;M&#x27; (100.0%), while the two groups bought at 50.0% and 50.0%."
    ) in page
    assert "The model beats every baseline (recency rank, logistic regression, BG/NBD) on ROC AUC and log loss." in page
    assert "refit with them on every complete snapshot, 3 cutoffs from 2024-01-03 to 2024-04-02" in page
    assert "<td>training</td><td>2024-01-03</td><td>380</td><td>110</td>" in page


def test_a_version_without_metrics_or_fairness_still_opens(admin_client, trained_version):
    trained_version.metrics = {}
    trained_version.save()

    response = admin_client.get(reverse("admin:ml_modelversion_change", args=[trained_version.pk]))

    assert response.status_code == 200
    assert "No report: the customers record no gender, age or country." in response.content.decode()


def test_the_version_list_shows_the_model_and_best_baseline_auc(admin_client, judged_version):
    response = admin_client.get(reverse("admin:ml_modelversion_changelist"))

    metrics = judged_version.metrics
    columns = response.context["cl"].model_admin
    assert response.status_code == 200
    assert columns.model_auc(judged_version) == metrics["model"]["roc_auc"]
    assert columns.best_baseline_auc(judged_version) == max(
        metrics["recency"]["roc_auc"], metrics["logistic"]["roc_auc"]
    )


def test_the_activate_action_refuses_a_version_that_does_not_beat_its_baselines(
    admin_client, trained_version, make_version, worse_booster
):
    worse = make_version(worse_booster, version=2, beats_baselines=False)

    response = admin_client.post(
        reverse("admin:ml_modelversion_changelist"),
        {"action": "activate", "_selected_action": [worse.pk], "index": 0},
        follow=True,
    )

    assert response.status_code == 200
    assert messages_of(response) == [
        (
            "error",
            "purchase_propensity v2 (candidate) does not beat every baseline on the validation snapshot (ROC AUC 0.8 "
            "vs recency rank 0.7, logistic regression 0.75; log loss 0.4 vs recency rank 0.5, logistic regression 0.45); "
            "activate it with force to override",
        )
    ]
    assert list(ModelVersion.objects.order_by("version").values_list("status", flat=True)) == [
        ModelStatus.ACTIVE, ModelStatus.CANDIDATE,
    ]  # fmt: skip


def test_the_activate_action_activates_a_version_that_beats_its_baselines(
    admin_client, trained_version, make_version, booster
):
    better = make_version(booster, version=2)

    response = admin_client.post(
        reverse("admin:ml_modelversion_changelist"),
        {"action": "activate", "_selected_action": [better.pk], "index": 0},
        follow=True,
    )

    assert messages_of(response) == [
        ("info", "purchase_propensity v2 (active) is active; segments and campaigns read its scores now.")
    ]
    assert list(ModelVersion.objects.order_by("version").values_list("status", flat=True)) == [
        ModelStatus.RETIRED, ModelStatus.ACTIVE,
    ]  # fmt: skip


def test_the_activate_action_takes_exactly_one_version(admin_client, trained_version, make_version, booster):
    second = make_version(booster, version=2)

    response = admin_client.post(
        reverse("admin:ml_modelversion_changelist"),
        {"action": "activate", "_selected_action": [trained_version.pk, second.pk], "index": 0},
        follow=True,
    )

    assert messages_of(response) == [("error", "Select exactly one version to activate.")]
    assert second.__class__.objects.get(pk=second.pk).status == ModelStatus.CANDIDATE


def test_the_roll_back_action_reactivates_the_previous_version(
    admin_client, trained_version, make_version, worse_booster
):
    worse = activate_version(make_version(worse_booster, version=2, beats_baselines=False), force=True)

    response = admin_client.post(
        reverse("admin:ml_modelversion_changelist"),
        {"action": "roll_back_task", "_selected_action": [worse.pk], "index": 0},
        follow=True,
    )

    assert messages_of(response) == [
        ("info", "Rolled back: purchase_propensity v1 (active) is active again, with its stored scores.")
    ]
    assert list(ModelVersion.objects.order_by("version").values_list("status", flat=True)) == [
        ModelStatus.ACTIVE, ModelStatus.RETIRED,
    ]  # fmt: skip


def test_the_roll_back_action_says_when_there_is_nothing_to_roll_back_to(admin_client, trained_version):
    response = admin_client.post(
        reverse("admin:ml_modelversion_changelist"),
        {"action": "roll_back_task", "_selected_action": [trained_version.pk], "index": 0},
        follow=True,
    )

    assert messages_of(response) == [("error", "no earlier active version of purchase_propensity to roll back to")]
    assert ModelVersion.objects.get().status == ModelStatus.ACTIVE


def test_the_customer_page_shows_the_active_score_with_its_reasons(
    admin_client, trained_version, make_version, booster
):
    retired = make_version(booster, version=0, status=ModelStatus.RETIRED)
    customer = CustomerFactory()
    reasons = [
        {"feature": "days_since_last_order", "value": 3.0, "effect": 0.8123},
        {"feature": "orders_90d", "value": 0.0, "effect": -0.25},
    ]
    Score.objects.create(
        customer=customer, model_version=trained_version, probability=0.375, decile=2, reasons=reasons, scored_at=AS_OF
    )
    Score.objects.create(
        customer=customer, model_version=retired, probability=0.9, decile=1, reasons=[], scored_at=AS_OF
    )

    response = admin_client.get(reverse("admin:marketing_customer_change", args=[customer.pk]))

    page = response.content.decode()
    assert response.status_code == 200
    assert (
        "37.5 % likely to order within 90 days (decile 2, purchase_propensity v1 (active), as of 2024-07-01)"
        "<div>last order 3 days ago raises the score</div><div>0 orders in the last 90 days lowers the score</div>"
    ) in page
    assert "purchase propensity (every version that scored this customer)" in page.lower()


def test_the_customer_page_lists_every_versions_score_with_its_reasons(
    admin_client, trained_version, make_version, booster
):
    retired = make_version(booster, version=0, status=ModelStatus.RETIRED)
    customer = CustomerFactory()
    reasons = [{"feature": "days_since_last_order", "value": 3.0, "effect": 0.8123}]
    Score.objects.create(
        customer=customer, model_version=trained_version, probability=0.375, decile=2, reasons=reasons, scored_at=AS_OF
    )
    Score.objects.create(
        customer=customer, model_version=retired, probability=0.9, decile=1, reasons=[], scored_at=AS_OF
    )

    response = admin_client.get(reverse("admin:marketing_customer_change", args=[customer.pk]))

    inline = response.context["inline_admin_formsets"][-1]
    assert [form.original.model_version_id for form in inline] == [trained_version.pk, retired.pk]
    reasons_cell = '<td class="field-reason_list"><p><div>last order 3 days ago raises the score</div></p></td>'
    assertContains(response, reasons_cell, count=1, html=True)
    assertContains(response, '<td class="field-reason_list"><p>—</p></td>', count=1, html=True)


def test_the_customer_page_says_when_the_active_model_has_not_scored_them(admin_client, trained_version):
    customer = CustomerFactory()

    response = admin_client.get(reverse("admin:marketing_customer_change", args=[customer.pk]))

    assert response.status_code == 200
    assert "Not scored by the active model yet." in response.content.decode()


def test_the_scoring_run_list_shows_progress(admin_client, trained_version):
    run = ScoringRun.objects.create(
        model_version=trained_version,
        as_of=AS_OF,
        chunk_customers=10,
        chunks_total=3,
        chunks_done=1,
        customers_scored=10,
    )
    ScoringChunk.objects.bulk_create(
        [ScoringChunk(run=run, first_id=first, last_id=first + 9, status=ChunkStatus.PENDING) for first in (1, 11, 21)]
    )

    response = admin_client.get(reverse("admin:ml_scoringrun_changelist"))
    detail = admin_client.get(reverse("admin:ml_scoringrun_change", args=[run.pk]))

    assert response.status_code == detail.status_code == 200
    assert '<progress max="3" value="1"></progress> 1 / 3 chunks' in response.content.decode()
    assert '<progress max="3" value="1"></progress> 1 / 3 chunks' in detail.content.decode()
    assert run.progress == pytest.approx(1 / 3)
    assert run.status == RunStatus.RUNNING


def test_the_score_again_action_starts_a_new_run_once_the_request_commits(
    admin_client, trained_version, shoppers, django_capture_on_commit_callbacks
):
    earlier = ScoringRun.objects.create(
        model_version=trained_version, as_of=AS_OF, chunk_customers=10, status=RunStatus.DONE
    )

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = admin_client.post(
            reverse("admin:ml_scoringrun_changelist"),
            {"action": "score_again", "_selected_action": [earlier.pk], "index": 0},
            follow=True,
        )

    assert messages_of(response) == [("info", "A new scoring run was queued; it appears here when it starts.")]
    assert len(callbacks) == 2  # the run's start, then the chunks it sent on its own commit
    run = ScoringRun.objects.exclude(pk=earlier.pk).get()
    assert (run.status, run.customers_scored) == (RunStatus.DONE, len(shoppers))
    assert Score.objects.filter(model_version=trained_version).count() == len(shoppers)
