"""Reasons on demand: computed the first time a customer's page or the API asks, then read back from the score."""

import json

import pytest

from marketing.models import ApiKey
from ml.explanations import reasons_for
from ml.models import Score, ScoringRun
from ml.queries import read_aggregates
from ml.reasons import worded
from ml.registry import scorer_for
from tests.ml.conftest import AS_OF

pytestmark = pytest.mark.django_db


@pytest.fixture
def scored(trained_version, make_shopper) -> Score:
    """A regular customer scored in bulk by the active version: probability and decile, no reasons yet."""
    customer = make_shopper(orders=(2, 20, 45, 80), events={"product_viewed": (1, 3)}, external_id="R-1")
    return Score.objects.create(
        customer=customer, model_version=trained_version, probability=0.42, decile=2, reasons=None, scored_at=AS_OF
    )


@pytest.fixture
def raw_key() -> str:
    return ApiKey.issue("shop backend")[1]


def get(client, external_id: str, key: str | None = None, method: str = "GET"):
    headers = {"HTTP_AUTHORIZATION": f"Bearer {key}"} if key else {}
    return client.generic(method, f"/api/v1/customers/{external_id}/propensity", **headers)


def test_the_first_request_explains_the_score_as_of_its_moment_and_keeps_the_reasons(scored):
    scorer = scorer_for(scored.model_version)
    features = scorer.features(read_aggregates(AS_OF, scored.customer_id, scored.customer_id), AS_OF.timestamp(), 1.0)
    expected = worded(json.loads(scorer.score(features).reasons[0]), 90)

    reasons = reasons_for(scored)

    assert reasons == expected
    assert len(reasons) == 3 and all(reason["text"].endswith(("raises the score", "lowers the score")) for reason in reasons)
    assert Score.objects.get(pk=scored.pk).reasons == expected


def test_the_next_request_reads_the_stored_reasons_without_explaining_again(scored, monkeypatch):
    first = reasons_for(scored)
    monkeypatch.setattr("ml.explanations.scorer_for", lambda version: pytest.fail("explained twice"))

    again = reasons_for(Score.objects.get(pk=scored.pk))

    assert again == first


def test_reasons_written_in_bulk_for_top_deciles_are_worded_when_shown(scored):
    Score.objects.filter(pk=scored.pk).update(reasons=[{"feature": "orders_90d", "value": 3.0, "effect": 0.5}])

    assert reasons_for(Score.objects.get(pk=scored.pk)) == [
        {"feature": "orders_90d", "value": 3.0, "effect": 0.5, "text": "3 orders in the last 90 days raises the score"}
    ]


def test_the_api_returns_the_active_score_with_its_reasons(client, scored, raw_key):
    response = get(client, "R-1", raw_key)

    assert response.status_code == 200
    body = response.json()
    assert {key: body[key] for key in ("customer_id", "task", "model_version", "horizon_days", "probability", "decile")} == {
        "customer_id": "R-1", "task": "purchase_propensity", "model_version": 1, "horizon_days": 90,
        "probability": 0.42, "decile": 2,
    }  # fmt: skip
    assert body["scored_at"] == AS_OF.isoformat()
    assert body["reasons"] == Score.objects.get(pk=scored.pk).reasons
    assert [reason["feature"] for reason in body["reasons"]] == [reason["feature"] for reason in reasons_for(scored)]


@pytest.mark.parametrize(
    ("external_id", "key", "method", "status", "error"),
    [
        ("R-1", None, "GET", 401, "missing API key; send Authorization: Bearer <key> or X-Api-Key: <key>"),
        ("R-1", "kairos_00000000_" + "x" * 43, "GET", 401, "invalid API key"),
        ("NOPE", "valid", "GET", 404, "no customer with id 'NOPE'"),
        ("R-1", "valid", "POST", 405, "use GET"),
    ],
)
def test_the_api_refuses_what_it_cannot_answer_by_name(client, scored, raw_key, external_id, key, method, status, error):
    response = get(client, external_id, raw_key if key == "valid" else key, method)

    assert (response.status_code, response.json()) == (status, {"error": error})
    assert Score.objects.get(pk=scored.pk).reasons is None


def test_a_customer_not_scored_by_the_active_model_is_a_404(client, trained_version, make_shopper, raw_key):
    make_shopper(orders=(3,), external_id="NEW-1")

    response = get(client, "NEW-1", raw_key)

    assert (response.status_code, response.json()) == (
        404,
        {"error": "customer 'NEW-1' is not scored by the active model yet"},
    )


def test_the_openapi_document_describes_the_endpoint(client):
    document = client.get("/api/v1/openapi.json").json()

    operation = document["paths"]["/api/v1/customers/{external_id}/propensity"]["get"]
    assert operation["operationId"] == "getCustomerPropensity"
    assert set(operation["responses"]) == {"200", "401", "404", "405"}


def test_the_season_index_is_the_one_its_scoring_run_used(scored, monkeypatch):
    ScoringRun.objects.create(
        model_version=scored.model_version, as_of=AS_OF, chunk_customers=10, season_index=1.37, status="done"
    )
    monkeypatch.setattr("ml.explanations.read_season_index", lambda *args: pytest.fail("read the orders again"))
    seen = []
    real = scorer_for(scored.model_version).features
    monkeypatch.setattr(
        scorer_for(scored.model_version), "features", lambda aggregates, t, season: seen.append(season) or real(aggregates, t, season)
    )

    reasons_for(scored)

    assert seen == [1.37]
