"""Copy templates for generated content: chosen per locale, rendered in the sandbox, tidied."""

import re
from collections.abc import Collection
from dataclasses import dataclass, field

from campaigns.rendering import RenderError, render_file

_SPACES = re.compile(r"\s+")
_BLANK_LINES = re.compile(r"\n{3,}")


@dataclass(frozen=True)
class Rendered:
    """What one template produced, or why it could not produce anything."""

    text: str
    template_name: str
    problem: str = ""


@dataclass(frozen=True)
class PieceOutput:
    """The generated content of one piece: its body, structured data, and the reason it is refused, if it is."""

    body: str
    data: dict = field(default_factory=dict)
    template_name: str = ""
    problem: str = ""


def locale_candidates(stem: str, locale: str) -> list[str]:
    """Return the template names to try, most specific first: `x_product.de-AT.txt`, `x_product.de.txt`, `x_product.txt`."""
    names = []
    if locale:
        names.append(f"{stem}.{locale}.txt")
        language = locale.split("-", 1)[0]
        if language != locale:
            names.append(f"{stem}.{language}.txt")
    names.append(f"{stem}.txt")
    return names


def choose_template(stem: str, locale: str, available: Collection[str]) -> str:
    """Return the most specific template for the locale; the plain one when none exists, so rendering names it."""
    candidates = locale_candidates(stem, locale)
    return next((name for name in candidates if name in available), candidates[-1])


def render_text(stem: str, locale: str, context: dict, available: Collection[str]) -> Rendered:
    """Render the locale's template for a piece of copy, turning a template error into a problem to report."""
    name = choose_template(stem, locale, available)
    try:
        text = render_file(name, context | {"locale": locale})
    except RenderError as error:
        return Rendered("", name, f"{name}: {error}")
    return Rendered(text, name)


def one_line(text: str) -> str:
    """Collapse all whitespace to single spaces: titles and descriptions are one line however the template wraps."""
    return _SPACES.sub(" ", text).strip()


def tidy_post(text: str) -> str:
    """Strip trailing spaces and keep at most one blank line in a row, which template tags leave behind."""
    lines = "\n".join(line.rstrip() for line in text.strip().splitlines())
    return _BLANK_LINES.sub("\n\n", lines)
