"""The one ESP whose webhooks Kairos listens to, and the credentials every one of its webhooks must present.

Anymail mounts a tracking and an inbound endpoint for every ESP it knows and, without
`ANYMAIL_WEBHOOK_SECRET`, accepts whatever is posted to them. Kairos mounts only the endpoints of
`ESP_NAME` and refuses every request while no secret is set, so a forged bounce or unsubscribe
can never suppress anyone.
"""

import functools
import re

from anymail import urls as anymail_urls
from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseForbidden, HttpResponseNotFound
from django.urls import URLPattern

_WEBHOOK_NAME = re.compile(r"^(?P<esp>[a-z_]+?)(?:_inbound|_tracking)?_webhook$")


def esp_of(pattern: URLPattern) -> str:
    """Return the ESP an anymail URL pattern belongs to, from its name (`postmark_tracking_webhook`)."""
    match = _WEBHOOK_NAME.match(pattern.name or "")
    if match is None:
        raise ValueError(f"anymail URL pattern {pattern.name!r} does not name its ESP")
    return match.group("esp")


def known_esps() -> set[str]:
    """Return every ESP anymail has webhooks for."""
    return {esp_of(pattern) for pattern in anymail_urls.urlpatterns}


def webhook_secrets() -> list[str]:
    """Return the basic-auth `user:password` strings webhooks may present (blank entries dropped)."""
    secret = (getattr(settings, "ANYMAIL", None) or {}).get("WEBHOOK_SECRET") or []
    secrets = [secret] if isinstance(secret, str) else list(secret)
    return [item for item in secrets if item and ":" in item]


def guard_webhook(view, esp_name: str):
    """Wrap an anymail view so it answers only while its ESP is configured and a secret is set."""

    @functools.wraps(view)
    def guarded(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        # Checked per request as well as at mounting, so a changed setting can never reopen an endpoint.
        if esp_name != settings.ESP_NAME:
            return HttpResponseNotFound(f"No webhooks for {esp_name}: ESP_NAME is {settings.ESP_NAME or 'unset'}.")
        if not webhook_secrets():
            return HttpResponseForbidden("ESP webhooks are refused until ANYMAIL_WEBHOOK_SECRET is set.")
        return view(request, *args, **kwargs)

    guarded.csrf_exempt = True
    return guarded


def esp_urlpatterns(esp_name: str) -> list[URLPattern]:
    """Return anymail's webhook URL patterns for this ESP only, each guarded; none for a blank or unknown name.

    An unknown name is the system check campaigns.E002, which stops every command that starts Kairos.
    """
    patterns = []
    for pattern in anymail_urls.urlpatterns:
        if esp_of(pattern) == esp_name:
            patterns.append(
                URLPattern(
                    pattern.pattern, guard_webhook(pattern.callback, esp_name), pattern.default_args, pattern.name
                )
            )
    return patterns
