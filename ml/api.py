"""The propensity API: a customer's score, decile and reasons, for the shop's own systems.

`GET /api/v1/customers/<external_id>/propensity` with the same API keys as the events API.
"""

from typing import Any

from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt

from marketing.api import authenticate
from marketing.models import Customer
from ml.explanations import reasons_for
from ml.models import PURCHASE_PROPENSITY, ModelStatus, Score

PATH = "/api/v1/customers/{external_id}/propensity"


@csrf_exempt
def customer_propensity(request: HttpRequest, external_id: str) -> JsonResponse:
    """Return the active model's score of the customer with its reasons in plain words."""
    if request.method not in ("GET", "HEAD"):
        response = JsonResponse({"error": "use GET"}, status=405)
        response["Allow"] = "GET, HEAD"
        return response
    api_key = authenticate(request, timezone.now())
    if isinstance(api_key, JsonResponse):
        return api_key
    customer = Customer.objects.filter(external_id=external_id).only("pk").first()
    if customer is None:
        return JsonResponse({"error": f"no customer with id {external_id!r}"}, status=404)
    score = (
        Score.objects.filter(
            customer=customer, model_version__task=PURCHASE_PROPENSITY, model_version__status=ModelStatus.ACTIVE
        )
        .select_related("model_version")
        .first()
    )
    if score is None:
        return JsonResponse({"error": f"customer {external_id!r} is not scored by the active model yet"}, status=404)
    return JsonResponse(
        {
            "customer_id": external_id,
            "task": PURCHASE_PROPENSITY,
            "model_version": score.model_version.version,
            "horizon_days": score.model_version.horizon_days,
            "probability": round(score.probability, 6),
            "decile": score.decile,
            "scored_at": score.scored_at.isoformat(),
            "reasons": reasons_for(score),
        }
    )


def openapi_operations() -> dict[str, Any]:
    """Return this endpoint's part of the OpenAPI document."""
    reason = {
        "type": "object",
        "properties": {
            "feature": {"type": "string"},
            "value": {"type": "number"},
            "effect": {"type": "number", "description": "SHAP contribution on the log-odds scale."},
            "text": {"type": "string", "example": "last order 8 days ago raises the score"},
        },
    }
    error = {"$ref": "#/components/schemas/Error"}
    return {
        "get": {
            "operationId": "getCustomerPropensity",
            "summary": "A customer's purchase propensity under the active model, with its top reasons",
            "parameters": [
                {"name": "external_id", "in": "path", "required": True, "schema": {"type": "string"}},
            ],
            "responses": {
                "200": {
                    "description": "The score; reasons are computed on the first request and kept.",
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "properties": {
                                    "customer_id": {"type": "string"},
                                    "task": {"type": "string"},
                                    "model_version": {"type": "integer"},
                                    "horizon_days": {"type": "integer"},
                                    "probability": {"type": "number", "minimum": 0, "maximum": 1},
                                    "decile": {"type": "integer", "minimum": 1, "maximum": 10},
                                    "scored_at": {"type": "string", "format": "date-time"},
                                    "reasons": {"type": "array", "items": reason},
                                },
                            }
                        }
                    },
                },
                "401": {"description": "No key, a wrong key or a revoked key.", "content": {"application/json": {"schema": error}}},
                "404": {"description": "No such customer, or not scored yet.", "content": {"application/json": {"schema": error}}},
                "405": {"description": "Only GET and HEAD are accepted.", "content": {"application/json": {"schema": error}}},
            },
        }
    }
