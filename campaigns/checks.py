"""Deployment checks for e-mail: links recipients click must reach Kairos over HTTPS; ESP webhooks need credentials."""

from urllib.parse import urlsplit

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register


@register(Tags.security, deploy=True)
def check_public_base_url(app_configs, **kwargs) -> list[Warning]:
    """Warn when unsubscribe and tracking links would not be HTTPS, which Gmail and Yahoo require for one-click unsubscribe."""
    parts = urlsplit(settings.PUBLIC_BASE_URL)
    if parts.scheme == "https" and parts.netloc:
        return []
    return [
        Warning(
            f"PUBLIC_BASE_URL={settings.PUBLIC_BASE_URL!r} is not an https:// address.",
            hint="Set PUBLIC_BASE_URL to where recipients reach Kairos, e.g. https://mail.shop.example; "
            "List-Unsubscribe needs an HTTPS URL.",
            id="campaigns.W001",
        )
    ]


@register(Tags.security)
def check_esp_name(app_configs, **kwargs) -> list[Error]:
    """Refuse an ESP_NAME anymail has no webhooks for, rather than mounting none without a word."""
    from campaigns.esp import known_esps

    if not settings.ESP_NAME or settings.ESP_NAME in known_esps():
        return []
    return [
        Error(
            f"ESP_NAME={settings.ESP_NAME!r} is not an ESP Kairos can take webhooks from.",
            hint=f"Use one of {', '.join(sorted(known_esps()))}, or leave ESP_NAME blank to mount no webhooks.",
            id="campaigns.E002",
        )
    ]


@register(Tags.security, deploy=True)
def check_esp_webhook_secret(app_configs, **kwargs) -> list[Error]:
    """Refuse a deployment whose ESP webhooks have no credentials to check."""
    from campaigns.esp import webhook_secrets

    if not settings.ESP_NAME or webhook_secrets():
        return []
    return [
        Error(
            f"ESP_NAME={settings.ESP_NAME!r} but ANYMAIL_WEBHOOK_SECRET is not set: every webhook is refused.",
            hint="Set ANYMAIL_WEBHOOK_SECRET to a random user:password and give the same credentials to the ESP "
            "in its webhook URL (https://user:password@mail.shop.example/anymail/<esp>/tracking/).",
            id="campaigns.E001",
        )
    ]


@register()
def check_default_from_email(app_configs, **kwargs) -> list[Error]:
    """Refuse a DEFAULT_FROM_EMAIL that every send would fail on: two addresses, or one that cannot be encoded."""
    from campaigns.versions import address_problem

    problem = address_problem(settings.DEFAULT_FROM_EMAIL)
    if problem is None:
        return []
    return [
        Error(
            f"DEFAULT_FROM_EMAIL: {problem}", hint="Set one sender, e.g. Shop <news@shop.example>.", id="campaigns.E003"
        )
    ]
