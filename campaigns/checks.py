"""Deployment checks for e-mail: links recipients click must reach Kairos over HTTPS."""

from urllib.parse import urlsplit

from django.conf import settings
from django.core.checks import Tags, Warning, register


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
