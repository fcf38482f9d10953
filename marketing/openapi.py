"""The OpenAPI 3.1 document of the shops' API, served at `/api/v1/openapi.json`, with the limits this deployment enforces."""

from collections.abc import Callable
from typing import Any

from django.conf import settings

from marketing.inbound.store import MAX_BATCH_MESSAGES, MAX_MESSAGE_CHARS
from marketing.ingest import MAX_BATCH_EVENTS, MAX_EVENT_NAME_CHARS, MAX_FUTURE_SKEW_S, MAX_PROPERTIES_BYTES

# Paths that other apps serve under /api/v1, added to the document from their `ready()`: marketing
# imports no other app. Each value returns the path's operations when the document is built.
_extra_paths: dict[str, Callable[[], dict[str, Any]]] = {}


def register_api_path(path: str, operations: Callable[[], dict[str, Any]]) -> None:
    """Add a path to the OpenAPI document; registering one twice is a mistake and raises."""
    if path in _extra_paths:
        raise ValueError(f"API path {path!r} is already registered")
    _extra_paths[path] = operations


def openapi_document() -> dict[str, Any]:
    """Return the OpenAPI 3.1 description of the API, with the limits this deployment enforces."""
    error = {"$ref": "#/components/schemas/Error"}

    def refusal(description: str, example: str) -> dict[str, Any]:
        return {
            "description": description,
            "content": {"application/json": {"schema": error, "example": {"error": example}}},
        }

    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Kairos API",
            "version": "1.0.0",
            "description": (
                "Send what customers do in the shop as events, and what they write as messages. Each event or "
                "message is validated on its own: good ones are stored, bad ones are reported by index, field and "
                "reason, in one 202 response. Sending the same item again (same `id`, or same content when it has "
                "none) stores it once."
            ),
        },
        "servers": [{"url": "/"}],
        "security": [{"bearerAuth": []}, {"apiKeyHeader": []}],
        "paths": {
            "/api/v1/events": {
                "post": {
                    "operationId": "ingestEvents",
                    "summary": f"Store a batch of up to {MAX_BATCH_EVENTS:,} events",
                    "requestBody": {
                        "required": True,
                        "description": f"At most {settings.API_MAX_BODY_BYTES:,} bytes of UTF-8 JSON.",
                        "content": {
                            "application/json": {
                                "schema": {"$ref": "#/components/schemas/EventBatch"},
                                "example": {
                                    "events": [
                                        {
                                            "id": "evt-000123",
                                            "customer_id": "C00042",
                                            "name": "cart_added",
                                            "occurred_at": "2024-12-31T18:30:00+01:00",
                                            "properties": {"sku": "P00007", "quantity": 2},
                                            "email": "ann@example.com",
                                        }
                                    ]
                                },
                            }
                        },
                    },
                    "responses": {
                        "202": {
                            "description": "The batch was read; the body says which events were stored, which were "
                            "duplicates and why the others were rejected.",
                            "content": {
                                "application/json": {
                                    "schema": {"$ref": "#/components/schemas/IngestReport"},
                                    "example": {
                                        "received": 3,
                                        "stored": 1,
                                        "duplicates": 1,
                                        "rejected": 1,
                                        "customers_created": 0,
                                        "duplicate_indexes": [1],
                                        "errors": [
                                            {
                                                "index": 2,
                                                "field": "occurred_at",
                                                "error": "'yesterday' is not an ISO 8601 date and time such as 2024-12-31T18:30:00+01:00",
                                            }
                                        ],
                                    },
                                }
                            },
                        },
                        "400": refusal(
                            'The body is not UTF-8 JSON of the shape {"events": [...]}; nothing was stored.',
                            "malformed JSON: Expecting value at line 1, column 1",
                        ),
                        "401": {
                            **refusal(
                                "The API key is missing, unknown or revoked; nothing was stored.", "invalid API key"
                            ),
                            "headers": {
                                "WWW-Authenticate": {
                                    "schema": {"type": "string"},
                                    "description": 'Bearer realm="kairos"',
                                }
                            },
                        },
                        "405": refusal("Only POST is accepted.", "use POST"),
                        "413": refusal(
                            f"The body is larger than {settings.API_MAX_BODY_BYTES:,} bytes, or holds more than "
                            f"{MAX_BATCH_EVENTS:,} events; nothing was stored. Split the batch.",
                            f"a batch holds at most {MAX_BATCH_EVENTS:,} events, this one has 1,001; split it",
                        ),
                    },
                }
            },
            "/api/v1/messages": {
                "post": {
                    "operationId": "ingestMessages",
                    "summary": f"Store a batch of up to {MAX_BATCH_MESSAGES:,} customer messages",
                    "description": (
                        "Messages customers sent the shop (chat, contact form, SMS, social, or e-mail your own system "
                        "received). Kairos cleans each one (HTML to text, quoted replies and signatures removed), matches "
                        "the customer by id or address, reads its intent and sentiment, stores it as a `message_received` "
                        "event and runs the campaigns that react to it. Each message is validated on its own."
                    ),
                    "requestBody": {
                        "required": True,
                        "description": f"At most {settings.API_MAX_BODY_BYTES:,} bytes of UTF-8 JSON.",
                        "content": {
                            "application/json": {
                                "schema": {"$ref": "#/components/schemas/MessageBatch"},
                                "example": {
                                    "messages": [
                                        {
                                            "id": "chat-88123",
                                            "customer_id": "C00042",
                                            "email": "ann@example.com",
                                            "channel": "chat",
                                            "subject": "My order",
                                            "body": "Hi, where is my order 10234? It was due on Monday.",
                                            "received_at": "2024-12-31T18:30:00+01:00",
                                        }
                                    ]
                                },
                            }
                        },
                    },
                    "responses": {
                        "202": {
                            "description": "The batch was read; the body says which messages were stored (with their "
                            "Kairos ids), which were duplicates and why the others were rejected.",
                            "content": {
                                "application/json": {
                                    "schema": {"$ref": "#/components/schemas/MessageReport"},
                                    "example": {
                                        "received": 2,
                                        "stored": 1,
                                        "duplicates": 0,
                                        "rejected": 1,
                                        "customers_matched": 1,
                                        "messages": [{"index": 0, "id": 17}],
                                        "duplicate_indexes": [],
                                        "errors": [{"index": 1, "field": "body", "error": "is blank: it has no text, only whitespace or markup"}],
                                    },
                                }
                            },
                        },
                        "400": refusal(
                            'The body is not UTF-8 JSON of the shape {"messages": [...]}; nothing was stored.',
                            "malformed JSON: Expecting value at line 1, column 1",
                        ),
                        "401": refusal("The API key is missing, unknown or revoked; nothing was stored.", "invalid API key"),
                        "405": refusal("Only POST is accepted.", "use POST"),
                        "413": refusal(
                            f"The body is larger than {settings.API_MAX_BODY_BYTES:,} bytes, or holds more than "
                            f"{MAX_BATCH_MESSAGES:,} messages; nothing was stored. Split the batch.",
                            f"a batch holds at most {MAX_BATCH_MESSAGES:,} messages, this one has 1,001; split it",
                        ),
                    },
                }
            },
            "/api/v1/openapi.json": {
                "get": {
                    "operationId": "getOpenApiDocument",
                    "summary": "This document",
                    "security": [],
                    "responses": {
                        "200": {
                            "description": "The OpenAPI 3.1 document.",
                            "content": {"application/json": {"schema": {"type": "object"}}},
                        },
                        "405": refusal("Only GET and HEAD are accepted.", "use GET"),
                    },
                }
            },
            **{path: operations() for path, operations in _extra_paths.items()},
        },
        "components": {
            "securitySchemes": {
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "`Authorization: Bearer kairos_1a2b3c4d_…`; keys are created in the admin and shown once.",
                },
                "apiKeyHeader": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "X-Api-Key",
                    "description": "The same key, in a header of its own.",
                },
            },
            "schemas": {
                "EventBatch": {
                    "type": "object",
                    "required": ["events"],
                    "additionalProperties": False,
                    "properties": {
                        "events": {
                            "type": "array",
                            "maxItems": MAX_BATCH_EVENTS,
                            "items": {"$ref": "#/components/schemas/Event"},
                        }
                    },
                },
                "Event": {
                    "type": "object",
                    "description": "An event with a field not listed here is rejected, naming that field.",
                    "required": ["customer_id", "name", "occurred_at"],
                    "additionalProperties": False,
                    "properties": {
                        "id": {
                            "type": ["string", "integer", "null"],
                            "maxLength": 255,
                            "description": "Idempotency key, stored as the event's id. Without one, an id is derived "
                            "from customer_id, name, occurred_at and properties, so a replayed batch adds nothing.",
                        },
                        "customer_id": {
                            "type": ["string", "integer"],
                            "minLength": 1,
                            "maxLength": 255,
                            "description": "The shop's customer id, kept as text. An unknown id creates the customer.",
                        },
                        "name": {
                            "type": "string",
                            "maxLength": MAX_EVENT_NAME_CHARS,
                            "pattern": "^[a-z][a-z0-9]*(_[a-z0-9]+)*$",
                            "description": "snake_case, ending in a past-tense verb (…ed, or an irregular form such as "
                            "sent or paid, optionally followed by in/out/up/…): cart_added, order_placed, logged_in.",
                        },
                        "occurred_at": {
                            "type": "string",
                            "format": "date-time",
                            "description": f"ISO 8601 with a UTC offset; at most {MAX_FUTURE_SKEW_S} s in the future.",
                        },
                        "properties": {
                            "type": ["object", "null"],
                            "description": f"Anything about the event; at most {MAX_PROPERTIES_BYTES:,} bytes of JSON.",
                        },
                        "email": {
                            "type": ["string", "null"],
                            "format": "email",
                            "description": "Gives a new customer an address, or fills a blank one; never replaces one.",
                        },
                    },
                },
                "IngestReport": {
                    "type": "object",
                    "description": "received = stored + duplicates + rejected.",
                    "required": [
                        "received",
                        "stored",
                        "duplicates",
                        "rejected",
                        "customers_created",
                        "duplicate_indexes",
                        "errors",
                    ],
                    "properties": {
                        "received": {"type": "integer", "minimum": 0},
                        "stored": {"type": "integer", "minimum": 0},
                        "duplicates": {
                            "type": "integer",
                            "minimum": 0,
                            "description": "Events already stored (or repeated in the batch); not errors.",
                        },
                        "rejected": {"type": "integer", "minimum": 0},
                        "customers_created": {"type": "integer", "minimum": 0},
                        "duplicate_indexes": {"type": "array", "items": {"type": "integer", "minimum": 0}},
                        "errors": {"type": "array", "items": {"$ref": "#/components/schemas/EventError"}},
                    },
                },
                "EventError": {
                    "type": "object",
                    "required": ["index", "field", "error"],
                    "properties": {
                        "index": {
                            "type": "integer",
                            "minimum": 0,
                            "description": "Position of the event (or message) in the batch, from 0.",
                        },
                        "field": {
                            "type": ["string", "null"],
                            "description": "The field at fault; null when the event is not a JSON object. "
                            "One event may have several errors.",
                        },
                        "error": {"type": "string"},
                    },
                },
                "MessageBatch": {
                    "type": "object",
                    "required": ["messages"],
                    "additionalProperties": False,
                    "properties": {
                        "messages": {
                            "type": "array",
                            "maxItems": MAX_BATCH_MESSAGES,
                            "items": {"$ref": "#/components/schemas/InboundMessage"},
                        }
                    },
                },
                "InboundMessage": {
                    "type": "object",
                    "description": "A message needs `body` or `html`; a field not listed here is rejected, naming it.",
                    "additionalProperties": False,
                    "properties": {
                        "id": {
                            "type": ["string", "integer", "null"],
                            "maxLength": 255,
                            "description": "Idempotency key. Without one, an id is derived from the sender, time, subject "
                            "and text, so a replayed batch adds nothing.",
                        },
                        "customer_id": {
                            "type": ["string", "integer", "null"],
                            "maxLength": 255,
                            "description": "The shop's customer id. Matched first; an unknown id creates no customer.",
                        },
                        "email": {
                            "type": ["string", "null"],
                            "format": "email",
                            "description": "The sender's address: matches the customer when the id does not, and "
                            "receives any reply.",
                        },
                        "name": {"type": ["string", "null"], "maxLength": 200},
                        "channel": {
                            "type": ["string", "null"],
                            "enum": ["email", "chat", "web_form", "sms", "social", "other", None],
                            "description": "Where the message was written; chat when absent.",
                        },
                        "subject": {"type": ["string", "null"], "maxLength": 255},
                        "body": {
                            "type": ["string", "null"],
                            "maxLength": MAX_MESSAGE_CHARS,
                            "description": "Plain text. Quoted replies and signatures are cut off; empty, blank or "
                            "binary text (NUL or control characters) is rejected.",
                        },
                        "html": {
                            "type": ["string", "null"],
                            "description": "An HTML body, reduced to its visible text when no plain body is given.",
                        },
                        "received_at": {
                            "type": ["string", "null"],
                            "format": "date-time",
                            "description": f"ISO 8601 with a UTC offset, at most {MAX_FUTURE_SKEW_S} s in the future; "
                            "now when absent.",
                        },
                        "headers": {
                            "type": ["object", "null"],
                            "additionalProperties": {"type": "string"},
                            "description": "Mail headers, if the message was an e-mail: Auto-Submitted, X-Autoreply, "
                            "Precedence and List-Id mark mail that is never answered automatically.",
                        },
                    },
                },
                "MessageReport": {
                    "type": "object",
                    "description": "received = stored + duplicates + rejected.",
                    "required": [
                        "received", "stored", "duplicates", "rejected", "customers_matched", "messages",
                        "duplicate_indexes", "errors",
                    ],
                    "properties": {
                        "received": {"type": "integer", "minimum": 0},
                        "stored": {"type": "integer", "minimum": 0},
                        "duplicates": {"type": "integer", "minimum": 0},
                        "rejected": {"type": "integer", "minimum": 0},
                        "customers_matched": {"type": "integer", "minimum": 0},
                        "messages": {
                            "type": "array",
                            "description": "The stored messages: their position in the batch and their Kairos id.",
                            "items": {
                                "type": "object",
                                "required": ["index", "id"],
                                "properties": {"index": {"type": "integer"}, "id": {"type": "integer"}},
                            },
                        },
                        "duplicate_indexes": {"type": "array", "items": {"type": "integer", "minimum": 0}},
                        "errors": {"type": "array", "items": {"$ref": "#/components/schemas/EventError"}},
                    },
                },
                "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}},
            },
        },
    }
