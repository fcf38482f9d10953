"""Fixtures and checks shared by the rendering tests."""

import pytest
from django.conf import settings as django_settings

from campaigns.context import sample_context
from campaigns.rendering import RenderError, render_string

# What would show that a template reached Python's internals or the project's configuration.
LEAK_MARKERS = (
    "<class",
    "<module",
    "<function",
    "<built-in",
    "<bound method",
    "site-packages",
    "__builtins__",
    "posix",
)
ALL_FOLDERS = "templates/emails/, templates/seo/, templates/social/, templates/pages/"


@pytest.fixture(autouse=True)
def shop(settings):
    settings.SHOP_NAME = "Kairos Demo Shop"
    settings.SHOP_URL = "https://shop.example.com"
    settings.PUBLIC_BASE_URL = "https://kairos.example.com"


@pytest.fixture
def context() -> dict:
    context = sample_context()
    context["subject"] = "Sample subject"
    return context


def assert_nothing_leaks(text: str) -> None:
    assert django_settings.SECRET_KEY not in text
    for marker in LEAK_MARKERS:
        assert marker not in text


def render_refused(source: str, context: dict, *, html: bool = True) -> RenderError:
    """Render a template that must be refused; return the error after checking it leaks nothing."""
    with pytest.raises(RenderError) as raised:
        render_string(source, context, html=html)
    assert_nothing_leaks(str(raised.value))
    return raised.value
