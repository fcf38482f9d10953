"""Jinja constructs of a template source, found by Jinja's own lexer.

The compiler rewrites template sources (layouts written in, CSS inlined) and must see exactly
what Jinja sees: a regular expression over the source cannot tell a `{#` inside a string
literal or a `raw` block from a comment, and a template that lint accepted could then compile to
something else. Every construct here comes from the lexer that parses and renders templates.
"""

import ast
from dataclasses import dataclass

from jinja2 import TemplateSyntaxError

from campaigns.rendering import RenderError, environment

_BEGIN = {"variable_begin": "variable", "block_begin": "block", "comment_begin": "comment", "raw_begin": "raw"}
_END = {"variable_end", "block_end", "comment_end", "raw_end"}


@dataclass(frozen=True)
class Construct:
    """One `{{ … }}`, `{% … %}`, `{# … #}` or `{% raw %}…{% endraw %}`, with where it sits in the source."""

    kind: str
    start: int
    end: int
    text: str
    tokens: tuple[tuple[str, str], ...]  # (type, value), whitespace left out

    @property
    def keyword(self) -> str:
        """Return a statement's first word (`block`, `extends`, `include`, …), or ''."""
        if self.kind != "block" or not self.tokens or self.tokens[0][0] != "name":
            return ""
        return self.tokens[0][1]

    def names(self) -> list[str]:
        return [value for kind, value in self.tokens if kind == "name"]

    def first_string(self) -> str | None:
        """Return the value of the first string literal in the construct, or None."""
        for kind, value in self.tokens:
            if kind == "string":
                return ast.literal_eval(value)
        return None


def normalize_newlines(source: str) -> str:
    """Return the source with Jinja's own newline normalisation, so positions match its lexer's."""
    return source.replace("\r\n", "\n").replace("\r", "\n")


def constructs(source: str) -> list[Construct]:
    """Return every Jinja construct of a (newline-normalised) source, in order."""
    found: list[Construct] = []
    cursor = 0
    opened: tuple[str, int] | None = None
    tokens: list[tuple[str, str]] = []
    try:
        for _, kind, value in environment().lexer.tokeniter(source, None):
            position = source.find(value, cursor) if value else cursor
            if position < 0 or source[cursor:position].strip():
                raise RenderError(f"the template source could not be followed at offset {cursor}")
            cursor = position + len(value)
            if kind in _BEGIN and opened is None:
                opened, tokens = (_BEGIN[kind], position), []
            elif kind in _END and opened is not None and (kind == "raw_end") == (opened[0] == "raw"):
                found.append(Construct(opened[0], opened[1], cursor, source[opened[1] : cursor], tuple(tokens)))
                opened = None
            elif opened is not None and kind not in {"whitespace", "data"}:
                tokens.append((kind, value))
    except TemplateSyntaxError as error:
        raise RenderError(error.message or str(error), error.lineno) from None
    return found


def without_comments(source: str) -> str:
    """Return the source with its `{# … #}` comments removed (never text that only looks like one)."""
    return substitute(source, lambda construct: "" if construct.kind == "comment" else None)


def substitute(source: str, replace) -> str:
    """Return the source with each construct for which `replace(construct)` gives text replaced by that text."""
    out: list[str] = []
    position = 0
    for construct in constructs(source):
        replacement = replace(construct)
        if replacement is None:
            continue
        out.append(source[position : construct.start])
        out.append(replacement)
        position = construct.end
    out.append(source[position:])
    return "".join(out)
