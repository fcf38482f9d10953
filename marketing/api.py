"""The HTTP API for shops: `POST /api/v1/events`, `POST /api/v1/messages` and the OpenAPI document at `/api/v1/openapi.json`.

Views only authenticate, read and parse the request, then call `marketing.ingest.store_events` or
`marketing.inbound.store.store_messages`.
Requests carry an API key, never a cookie, so they are exempt from CSRF checks.
"""

import json
import logging
from datetime import datetime, timedelta
from typing import IO, Any

from django.conf import settings
from django.db.models import Q
from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt

from marketing import throttling
from marketing.inbound.store import MAX_BATCH_MESSAGES, store_messages
from marketing.ingest import MAX_BATCH_EVENTS, store_events
from marketing.models import ApiKey
from marketing.openapi import openapi_document
from marketing.privacy import CustomerNotFound, erase_customer, export_customer

logger = logging.getLogger("kairos.api")

BODY_READ_CHUNK_BYTES = 64 * 1024
# last_used_at is written at most once a minute per key, not on every request of a busy sender.
LAST_USED_RESOLUTION_S = 60


class BodyTooLarge(Exception):
    """The request body is larger than API_MAX_BODY_BYTES."""


class MalformedBody(ValueError):
    """The request body is not the JSON the endpoint takes; the message says why."""


def read_body(stream: IO[bytes], declared_length: int | None, limit: int) -> bytes:
    """Read the body, refusing it by its declared length before reading, and by its real length while reading."""
    if declared_length is not None and declared_length > limit:
        raise BodyTooLarge
    chunks: list[bytes] = []
    total = 0
    while True:
        # One byte beyond the limit is enough to know the body is too large.
        chunk = stream.read(min(BODY_READ_CHUNK_BYTES, limit + 1 - total))
        if not chunk:
            return b"".join(chunks)
        total += len(chunk)
        if total > limit:
            raise BodyTooLarge
        chunks.append(chunk)


def parse_body(body: bytes, field: str = "events") -> list[Any]:
    """Return the list of items from a `{"events": [...]}` body (or another field's), or raise MalformedBody."""
    if not body.strip():
        raise MalformedBody(f'the body is empty; send a JSON object such as {{"{field}": [...]}}')
    try:
        payload = json.loads(body.decode("utf-8"), parse_constant=_refuse_constant)
    except UnicodeDecodeError as error:
        raise MalformedBody(f"the body is not UTF-8 (byte {error.start})") from None
    except json.JSONDecodeError as error:
        raise MalformedBody(f"malformed JSON: {error.msg} at line {error.lineno}, column {error.colno}") from None
    except RecursionError:
        raise MalformedBody("malformed JSON: nested too deeply") from None
    except ValueError as error:  # NaN, Infinity, or an integer too long to read
        raise MalformedBody(f"malformed JSON: {error}") from None
    if not isinstance(payload, dict):
        raise MalformedBody(f'the body must be a JSON object such as {{"{field}": [...]}}')
    unknown = sorted(set(payload) - {field})
    if unknown:
        raise MalformedBody(f'unknown top-level field {unknown[0]!r}; the body has one field, "{field}"')
    items = payload.get(field)
    if not isinstance(items, list):
        raise MalformedBody(f'"{field}" must be an array of {field[:-1]} objects')
    return items


def presented_key(request: HttpRequest) -> str:
    """Return the key from `Authorization: Bearer <key>`, else from `X-Api-Key`, else ""."""
    scheme, _, credentials = request.headers.get("Authorization", "").strip().partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    return request.headers.get("X-Api-Key", "").strip()


def record_key_use(api_key: ApiKey, now: datetime) -> None:
    """Set the key's last_used_at, skipping the write when it was set within the last minute."""
    cutoff = now - timedelta(seconds=LAST_USED_RESOLUTION_S)
    if api_key.last_used_at is not None and api_key.last_used_at >= cutoff:
        return  # as read with the key: no statement at all on most requests
    stale = Q(last_used_at__isnull=True) | Q(last_used_at__lt=cutoff)
    ApiKey.objects.filter(stale, pk=api_key.pk).update(last_used_at=now)


def authenticate(request: HttpRequest, now: datetime) -> ApiKey | JsonResponse:
    """Return the request's active API key, or the 401 response that refuses it."""
    throttled = throttling.check_address(request)
    if throttled is not None:
        return _throttled(throttled)
    raw_key = presented_key(request)
    if not raw_key:
        throttling.record_failed_key(request)
        return _unauthorized("missing API key; send Authorization: Bearer <key> or X-Api-Key: <key>")
    api_key = ApiKey.find(raw_key)
    if api_key is None:
        throttling.record_failed_key(request)
        return _unauthorized("invalid API key")
    if api_key.is_revoked:
        throttling.record_failed_key(request)
        return _unauthorized("this API key was revoked; create a new one in the admin")
    throttled = throttling.check_key(api_key.pk)
    if throttled is not None:
        return _throttled(throttled)
    record_key_use(api_key, now)
    return api_key


def _throttled(throttled: throttling.Throttled) -> JsonResponse:
    reason = {
        "failed-keys": f"more than {throttled.limit} requests without a valid API key from this address in a minute",
        "address": f"more than {throttled.limit} requests from this address in a minute",
        "key": f"more than {throttled.limit} requests with this API key in a minute",
    }[throttled.what]
    response = _error(429, f"too many requests: {reason}; retry in {throttled.retry_after_s} s")
    response["Retry-After"] = str(throttled.retry_after_s)
    return response


def read_batch(request: HttpRequest, field: str, max_items: int) -> list[Any] | JsonResponse:
    """Return the items of a POSTed batch, or the 400/413 response that refuses the request."""
    limit = settings.API_MAX_BODY_BYTES
    try:
        body = read_body(request, _declared_length(request), limit)
    except BodyTooLarge:
        return _error(413, f"the body is larger than {limit:,} bytes; send fewer {field} per request")
    try:
        items = parse_body(body, field)
    except MalformedBody as error:
        return _error(400, str(error))
    if len(items) > max_items:
        return _error(413, f"a batch holds at most {max_items:,} {field}, this one has {len(items):,}; split it")
    return items


@csrf_exempt
def ingest_events(request: HttpRequest) -> JsonResponse:
    """Store a batch of events: 202 with a report on each event, or the reason the batch was refused."""
    if request.method != "POST":
        response = _error(405, "use POST")
        response["Allow"] = "POST"
        return response
    now = timezone.now()
    api_key = authenticate(request, now)
    if isinstance(api_key, JsonResponse):
        return api_key
    events = read_batch(request, "events", MAX_BATCH_EVENTS)
    if isinstance(events, JsonResponse):
        return events
    report = store_events(events, now)
    logger.info(
        "events from key %s: %d received, %d stored, %d duplicates, %d rejected",
        api_key.prefix,
        report.received,
        len(report.stored_ids),
        len(report.duplicate_indexes),
        report.rejected,
    )
    return JsonResponse(report.as_json(), status=202)


@csrf_exempt
def ingest_messages(request: HttpRequest) -> JsonResponse:
    """Store a batch of customer messages: 202 with a report on each message, or the reason the batch was refused."""
    if request.method != "POST":
        response = _error(405, "use POST")
        response["Allow"] = "POST"
        return response
    now = timezone.now()
    api_key = authenticate(request, now)
    if isinstance(api_key, JsonResponse):
        return api_key
    messages = read_batch(request, "messages", MAX_BATCH_MESSAGES)
    if isinstance(messages, JsonResponse):
        return messages
    report = store_messages(messages, now)
    logger.info(
        "messages from key %s: %d received, %d stored, %d duplicates, %d rejected",
        api_key.prefix,
        report.received,
        len(report.stored_ids),
        len(report.duplicate_indexes),
        report.rejected,
    )
    return JsonResponse(report.as_json(), status=202)


def openapi(request: HttpRequest) -> JsonResponse:
    """Serve the OpenAPI 3.1 document of this API."""
    if request.method not in ("GET", "HEAD"):
        response = _error(405, "use GET")
        response["Allow"] = "GET, HEAD"
        return response
    return JsonResponse(openapi_document())


def _declared_length(request: HttpRequest) -> int | None:
    try:
        return int(request.META.get("CONTENT_LENGTH") or "")
    except ValueError:
        return None


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON value")


def _privacy_request(request: HttpRequest, method: str) -> ApiKey | JsonResponse:
    if request.method != method:
        response = _error(405, f"use {method}")
        response["Allow"] = method
        return response
    return authenticate(request, timezone.now())


@csrf_exempt
def customer_data(request: HttpRequest, external_id: str) -> JsonResponse:
    """Return all of one customer's data (a privacy request), for the shop's own systems."""
    api_key = _privacy_request(request, "GET")
    if isinstance(api_key, JsonResponse):
        return api_key
    try:
        data = export_customer(external_id, requested_by=f"API key {api_key.name}")
    except CustomerNotFound as error:
        return _error(404, str(error))
    response = JsonResponse(data, json_dumps_params={"ensure_ascii": False})
    response["Cache-Control"] = "no-store"
    return response


@csrf_exempt
def erase_customer_data(request: HttpRequest, external_id: str) -> JsonResponse:
    """Erase one customer's personal data (a privacy request); answer with what was erased."""
    api_key = _privacy_request(request, "POST")
    if isinstance(api_key, JsonResponse):
        return api_key
    try:
        counts = erase_customer(external_id, requested_by=f"API key {api_key.name}")
    except CustomerNotFound as error:
        return _error(404, str(error))
    return JsonResponse({"erased": True, "counts": counts})


def _error(status: int, message: str) -> JsonResponse:
    return JsonResponse({"error": message}, status=status)


def _unauthorized(message: str) -> JsonResponse:
    response = _error(401, message)
    response["WWW-Authenticate"] = 'Bearer realm="kairos"'
    return response
