"""Turn a template version into the sources every recipient renders: layouts resolved, CSS inlined once.

Inlining CSS costs milliseconds per document, so it happens when a version is saved, on the
template source, never per recipient. Jinja constructs are swapped for inert placeholders that an
HTML parser keeps in place (alphanumeric words for expressions, comments for statements), the
document is inlined, and the constructs are put back. The plain-text part is derived the same way.
Every construct is found by Jinja's own lexer (campaigns.template_tokens), never by a regular
expression over template source, so the compiler sees exactly the tokens lint and rendering see.
"""

import re
from dataclasses import dataclass
from html.parser import HTMLParser

import css_inline

from campaigns.rendering import RenderError, environment, load_file
from campaigns.template_tokens import Construct, constructs, normalize_newlines, substitute, without_comments

_BODY_TAG = re.compile(r"<body\b[^>]*>", re.I)
_SUPER_CALL_TOKENS = (("name", "super"), ("operator", "("), ("operator", ")"))
_FINAL_LINE_BREAK = re.compile(r"(?:\r\n|\r|\n)\Z")
_PLACEHOLDER = re.compile(r"(?:<!--|&lt;!--)?kairosjinja(\d+)x(?:-->|--&gt;)?")
MAX_LAYOUT_DEPTH = 5


class CompileError(RenderError):
    """A template that cannot be compiled: its layout is missing, or its structure cannot be kept."""


@dataclass
class _Block:
    name: str
    parts: list  # str or _Block


def _parse_blocks(source: str) -> list:
    """Split a source into text and (nested) named blocks."""
    root: list = []
    stack: list[_Block] = []
    position = 0
    for match in (construct for construct in constructs(source) if construct.keyword in {"block", "endblock"}):
        target = stack[-1].parts if stack else root
        target.append(source[position : match.start])
        position = match.end
        if match.keyword == "block":
            names = match.names()
            block = _Block(names[1] if len(names) > 1 else "", [])
            target.append(block)
            stack.append(block)
        else:
            if not stack:
                raise CompileError(
                    "{% endblock %} without a matching {% block %}", source.count("\n", 0, match.start) + 1
                )
            stack.pop()
    if stack:
        raise CompileError(f"block {stack[-1].name!r} is never closed")
    (stack[-1].parts if stack else root).append(source[position:])
    return root


def _collect(parts: list, into: dict[str, _Block]) -> dict[str, _Block]:
    for part in parts:
        if isinstance(part, _Block):
            into.setdefault(part.name, part)
            _collect(part.parts, into)
    return into


def _emit(parts: list, overrides: dict[str, _Block], parent_text: str = "", *, keep_tags: bool = False) -> str:
    """Write the parts out, replacing each block by its override and super() by the block it overrides.

    With `keep_tags`, each block stays wrapped in its tags, so a layout resolved this way can still be extended.
    """
    out = []
    for part in parts:
        if isinstance(part, str):
            out.append(_replace_super(part, parent_text) if parent_text else part)
            continue
        own = _emit(part.parts, overrides, keep_tags=keep_tags)
        override = overrides.get(part.name)
        if override is not None and override is not part:
            body = _emit(override.parts, overrides, parent_text=own, keep_tags=keep_tags)
        else:
            body = own
        out.append(f"{{% block {part.name} %}}{body}{{% endblock %}}" if keep_tags else body)
    return "".join(out)


def _replace_super(text: str, parent_text: str) -> str:
    return substitute(
        text, lambda construct: parent_text if construct.kind == "variable" and construct.tokens == _SUPER_CALL_TOKENS else None
    )


def _extends_of(source: str) -> Construct | None:
    return next((construct for construct in constructs(source) if construct.keyword == "extends"), None)


def _included(construct: Construct) -> str | None:
    """Return the file an `{% include "…" %}` of a literal name brings in, resolved; None for anything else."""
    if construct.keyword != "include" or construct.first_string() is None:
        return None
    return _resolve_extends(_file_source(construct.first_string()))


def flatten(source: str) -> str:
    """Resolve layouts into one source with the same output: extends, includes and macro imports.

    Inlining needs the whole document: a child's blocks are written into its layout, an include
    is replaced by the included file, and `{% from "…" import … %}` by that file's macros, placed
    at the start of the body so the layout's CSS reaches the elements they print.
    """
    flat = _resolve_extends(normalize_newlines(source))
    for _ in range(MAX_LAYOUT_DEPTH):
        resolved = substitute(flat, _included)
        resolved = substitute(resolved, _imported_code)
        if resolved == flat:
            return flat
        flat = resolved
    raise CompileError(f"layouts include or import each other more than {MAX_LAYOUT_DEPTH} deep")


def _imported_code(construct: Construct) -> str | None:
    """Return the macros a `{% from "…" import … %}` brings in, under the names it gives them; None for anything else."""
    if construct.keyword != "from" or construct.first_string() is None:
        return None
    aliases = "".join(f"{{% set {alias} = {name} %}}" for name, alias in _import_aliases(construct.names()))
    return _top_level_code(_resolve_extends(_file_source(construct.first_string()))) + aliases


def _import_aliases(names: list[str]) -> list[tuple[str, str]]:
    """Return the (name, alias) pairs of `import a as b, c` from the statement's name tokens."""
    imported = names[names.index("import") + 1 :] if "import" in names else []
    pairs, index = [], 0
    while index < len(imported) and imported[index] not in {"with", "without"}:
        if index + 2 < len(imported) and imported[index + 1] == "as":
            pairs.append((imported[index], imported[index + 2]))
            index += 3
        else:
            index += 1
    return pairs


def _file_source(name: str) -> str:
    try:
        template = load_file(name)  # refuses anything outside the layout folders
    except RenderError as error:
        raise CompileError(error.message, error.line) from None
    with open(template.filename, encoding="utf-8") as handle:
        source = normalize_newlines(handle.read())
    # Jinja drops a file's final line break when it renders the file on its own; an inlined include must too.
    return source if environment().keep_trailing_newline else _FINAL_LINE_BREAK.sub("", source, count=1)


def _resolve_extends(source: str, depth: int = 0) -> str:
    source = without_comments(source)
    extends = _extends_of(source)
    if extends is None:
        return _emit(_parse_blocks(source), {})
    if depth >= MAX_LAYOUT_DEPTH:
        raise CompileError(f"layouts extend each other more than {MAX_LAYOUT_DEPTH} deep")
    layout_source = flatten_layout(_file_source(_extended_name(extends)), depth + 1)
    child = _parse_blocks(source[extends.end :])
    overrides = _collect(child, {})
    preamble = _top_level_code("".join(part for part in child if isinstance(part, str)))
    document = _emit(_parse_blocks(layout_source), overrides)
    body = _BODY_TAG.search(document)
    if body is None:
        return preamble + document
    return document[: body.end()] + preamble + document[body.end() :]


def _top_level_code(source: str) -> str:
    """Keep what Jinja runs outside a child's blocks (imports, sets, macros) and drop what it never prints."""
    out: list[str] = []
    macro_depth = 0
    position = 0
    for match in constructs(source):
        if match.kind == "comment":
            continue
        if macro_depth:
            out.append(source[position : match.start])
        keyword = match.keyword
        if keyword == "macro":
            macro_depth += 1
        if match.kind in {"block", "raw"} or macro_depth:
            out.append(match.text)
        if keyword == "endmacro":
            macro_depth -= 1
        position = match.end
    return "".join(out)


def flatten_layout(source: str, depth: int) -> str:
    """Resolve a layout's own `extends`, keeping its block tags so a child can still fill them."""
    source = without_comments(source)
    extends = _extends_of(source)
    if extends is None:
        return source
    if depth >= MAX_LAYOUT_DEPTH:
        raise CompileError(f"layouts extend each other more than {MAX_LAYOUT_DEPTH} deep")
    parent_source = flatten_layout(_file_source(_extended_name(extends)), depth + 1)
    overrides = _collect(_parse_blocks(source[extends.end :]), {})
    return _emit(_parse_blocks(parent_source), overrides, keep_tags=True)


def _extended_name(extends: Construct) -> str:
    name = extends.first_string()
    if name is None:
        raise CompileError("{% extends %} must name a layout as a quoted string")
    return name


def _protect(source: str) -> tuple[str, list[str]]:
    """Replace Jinja constructs by placeholders an HTML parser leaves where they are."""
    found: list[str] = []
    out: list[str] = []
    in_tag = False
    position = 0
    for match in constructs(source):
        text = source[position : match.start]
        in_tag = _tag_state_after(text, in_tag)
        out.append(text)
        construct = match.text
        token = f"kairosjinja{len(found)}x"
        found.append(construct)
        # Statements may sit between table rows, where stray text would be moved out of the table;
        # comments stay put there. Expressions, and anything inside a tag, become plain words.
        out.append(token if in_tag or construct.startswith("{{") else f"<!--{token}-->")
        position = match.end
    out.append(source[position:])
    return "".join(out), found


def _tag_state_after(text: str, in_tag: bool) -> bool:
    for index, char in enumerate(text):
        if char == "<" and index + 1 < len(text) and (text[index + 1].isalpha() or text[index + 1] in "/!"):
            in_tag = True
        elif char == ">":
            in_tag = False
    return in_tag


def _restore(document: str, constructs: list[str], *, droppable_expressions: bool = False) -> str:
    seen: set[int] = set()

    def put_back(match: re.Match) -> str:
        index = int(match.group(1))
        seen.add(index)
        return constructs[index]

    restored = _PLACEHOLDER.sub(put_back, document)
    missing = sorted(
        index
        for index in set(range(len(constructs))) - seen
        if not (droppable_expressions and constructs[index].startswith("{{"))
    )
    if missing:
        raise CompileError(
            f"template code {constructs[missing[0]]!r} sits where HTML cannot keep it (inside <style> or an "
            "attribute name?); move it into an element's text or an attribute value"
        )
    return restored


def inline_css(source: str) -> str:
    """Inline the CSS of a flattened HTML template source, keeping its Jinja code intact."""
    protected, constructs = _protect(source)
    inliner = css_inline.CSSInliner(keep_style_tags=True, load_remote_stylesheets=False)
    try:
        inlined = inliner.inline(protected)
    except (css_inline.InlineError, ValueError) as error:
        raise CompileError(f"CSS could not be inlined: {error}") from None
    return _restore(inlined, constructs)


_BLOCK_ELEMENTS = {
    "p",
    "div",
    "table",
    "tr",
    "ul",
    "ol",
    "section",
    "article",
    "header",
    "footer",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "blockquote",
    "hr",
    "center",
}
_SKIPPED_ELEMENTS = {"head", "style", "script", "title"}


class _TextWriter(HTMLParser):
    """Write an HTML document as readable plain text: links as 'text (url)', lists as dashes."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.skipping = 0
        self.links: list[tuple[str, int]] = []

    def handle_starttag(self, tag: str, attrs) -> None:
        attributes = dict(attrs)
        if tag in _SKIPPED_ELEMENTS:
            self.skipping += 1
        elif self.skipping:
            return
        elif tag in _BLOCK_ELEMENTS:
            self.out.append("\n\n")
        elif tag == "br":
            self.out.append("\n")
        elif tag == "li":
            self.out.append("\n- ")
        elif tag == "td":
            self.out.append(" ")
        elif tag == "img" and attributes.get("alt"):
            self.out.append(attributes["alt"])
        elif tag == "a":
            self.links.append((attributes.get("href") or "", len(self.out)))

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIPPED_ELEMENTS:
            self.skipping = max(0, self.skipping - 1)
        elif self.skipping:
            return
        elif tag in _BLOCK_ELEMENTS:
            self.out.append("\n\n")
        elif tag == "a" and self.links:
            href, start = self.links.pop()
            label = "".join(self.out[start:]).strip()
            if href and not href.startswith(("#", "mailto:")) and href != label:
                self.out.append(f" ({href})" if label else href)

    def handle_data(self, data: str) -> None:
        if not self.skipping:
            self.out.append(re.sub(r"\s+", " ", data))

    def handle_comment(self, data: str) -> None:
        # Placeholders of statements stay even inside skipped elements: an {% if %} must keep its {% endif %}.
        if re.fullmatch(r"kairosjinja\d+x", data):
            self.out.append(data)

    def text(self) -> str:
        lines = [line.strip() for line in "".join(self.out).splitlines()]
        return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip() + "\n"


def derive_text(html_source: str) -> str:
    """Derive a plain-text template from an HTML template source, keeping its Jinja code."""
    protected, constructs = _protect(html_source)
    writer = _TextWriter()
    writer.feed(protected)
    writer.close()
    # Expressions in attributes and in the head have no place in plain text; statements all stay.
    return _restore(writer.text(), constructs, droppable_expressions=True)


@dataclass(frozen=True)
class CompiledSources:
    html: str
    text: str


def compile_sources(html_source: str, text_source: str = "") -> CompiledSources:
    """Return the sources a version renders per recipient: flattened and inlined HTML, and its text part."""
    flat = flatten(html_source)
    inlined = inline_css(flat)
    text = flatten(text_source) if text_source.strip() else derive_text(flat)
    # Both must still be valid Jinja: a placeholder put back in the wrong place would show here.
    for source, name in ((inlined, "<compiled>.html"), (text, "<compiled>.txt")):
        try:
            environment().parse(source, name=name)
        except Exception as error:  # noqa: BLE001 - any parse failure is the same problem for the marketer
            raise CompileError(f"the compiled template is not valid: {error}") from None
    return CompiledSources(html=inlined, text=text)
