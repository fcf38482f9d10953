"""Compiling a template once at save time: layouts flattened with the same output, CSS inlined, Jinja kept, text derived."""

import re

import pytest

from campaigns.compiler import CompiledSources, CompileError, compile_sources, derive_text, flatten, inline_css
from campaigns.context import sample_context
from campaigns.rendering import compile_source, environment, render

LAYOUT = """<html><head><title>{% block title %}Layout title{% endblock %}</title>
<style>.note { color: #123456; }</style></head>
<body>
{% block outer %}<div class="outer">{% block inner %}inner default{% endblock %}</div>{% endblock %}
{% block footer %}<p class="note">{{ shop.name }}</p>{% endblock %}
</body></html>
"""
SUB_LAYOUT = """{% extends "emails/kairos_test_layout.html" %}
{% block title %}Sub {{ super() }}{% endblock %}
{% block footer %}<p class="note">Sub footer</p>{{ super() }}{% endblock %}
"""
PART = '<p class="note">Included for {{ customer.first_name }}</p>\n'
MACROS = """{% macro badge(text) %}<span class="note">{{ text }}</span>{% endmacro %}
{% macro price(product) %}{{ product.price }} {{ product.currency }}{% endmacro %}
"""
STYLE_CODE_PROBLEM = (
    "template code {!r} sits where HTML cannot keep it (inside <style> or an attribute name?); "
    "move it into an element's text or an attribute value"
)


@pytest.fixture(autouse=True)
def shop(settings):
    settings.SHOP_NAME = "Kairos Demo Shop"
    settings.SHOP_URL = "https://shop.example.com"
    settings.SHOP_POSTAL_ADDRESS = "1 Market Street, Springfield"
    settings.PUBLIC_BASE_URL = "https://kairos.example.com"


@pytest.fixture(autouse=True)
def test_layouts(tmp_path, monkeypatch):
    """Add layouts only these tests can load, beside the shipped ones."""
    for name, source in {
        "emails/kairos_test_layout.html": LAYOUT,
        "emails/kairos_test_sub_layout.html": SUB_LAYOUT,
        "emails/kairos_test_part.html": PART,
        "emails/kairos_test_macros.html": MACROS,
    }.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source)
    loader = environment().loader
    monkeypatch.setattr(loader, "searchpath", [str(tmp_path), *loader.searchpath])
    yield
    environment().cache.clear()


@pytest.fixture
def context() -> dict:
    context = sample_context()
    context["subject"] = "Sample subject"
    return context


CHILDREN = {
    "extends the base layout": (
        '{% extends "emails/base.html" %}{% block content %}<h1>Hi {{ customer.first_name }}</h1>{% endblock %}'
    ),
    "super in a block": (
        '{% extends "emails/kairos_test_layout.html" %}{% block title %}{{ super() }} - {{ campaign.name }}{% endblock %}'
    ),
    "imports macros in a child": (
        '{% extends "emails/base.html" %}{% from "emails/recommendations.html" import product_grid %}'
        "{% block content %}{{ product_grid(recommendations) }}{% endblock %}"
    ),
    "imports macros standalone": (
        '{% from "emails/kairos_test_macros.html" import badge, price %}'
        "<div>{% for product in recommendations %}{{ badge(product.name) }} {{ price(product) }}{% endfor %}</div>"
    ),
    "imports a macro under another name": (
        '{% from "emails/kairos_test_macros.html" import badge as label %}<div>{{ label(customer.city) }}</div>'
    ),
    "includes a part": '<div>{% include "emails/kairos_test_part.html" %}</div>',
    "includes a part inside a block": (
        '{% extends "emails/kairos_test_layout.html" %}'
        '{% block inner %}{% include "emails/kairos_test_part.html" %}{% endblock %}'
    ),
    "overrides a nested inner block": (
        '{% extends "emails/kairos_test_layout.html" %}{% block inner %}child inner {{ customer.city }}{% endblock %}'
    ),
    "overrides the outer block with its own inner": (
        '{% extends "emails/kairos_test_layout.html" %}'
        "{% block outer %}<section>{% block inner %}child own inner{% endblock %}</section>{% endblock %}"
    ),
    "overrides both, outer calling super": (
        '{% extends "emails/kairos_test_layout.html" %}'
        "{% block outer %}<section>{{ super() }}</section>{% endblock %}{% block inner %}replaced{% endblock %}"
    ),
    "extends a layout that extends another": (
        '{% extends "emails/kairos_test_sub_layout.html" %}{% block inner %}grandchild{% endblock %}'
    ),
    "defines a macro and a variable at the top level": (
        '{% extends "emails/base.html" %}{% macro hello(name) %}<b>{{ name }}</b>{% endmacro %}'
        '{% set greeting = "Hello" %}{% block content %}{{ greeting }} {{ hello(customer.first_name) }}{% endblock %}'
    ),
    "loops in a block": (
        '{% extends "emails/base.html" %}{% block content %}<ul>{% for product in recommendations %}'
        "<li>{{ loop.index }} {{ product.name }}</li>{% endfor %}</ul>{% endblock %}"
    ),
    "comments between blocks": (
        '{% extends "emails/kairos_test_layout.html" %}{# a note for colleagues #}'
        "{% block inner %}{# inside #}kept{% endblock %}"
    ),
}


@pytest.mark.parametrize("child", CHILDREN.values(), ids=CHILDREN.keys())
def test_the_flattened_source_renders_exactly_like_the_child(child, context):
    # given
    native = render(compile_source(child, "x.html"), context)

    # when
    flattened = render(compile_source(flatten(child), "y.html"), context)

    # then
    assert flattened == native
    assert "{%" not in flattened


@pytest.mark.parametrize("child", CHILDREN.values(), ids=CHILDREN.keys())
def test_the_flattened_source_names_no_layout(child):
    # when
    flat = flatten(child)

    # then
    assert re.findall(r"\{%[-+]?\s*(extends|include|import|from)\b", flat) == []


def test_flattening_an_unknown_layout_is_refused():
    # when
    with pytest.raises(CompileError) as raised:
        flatten('{% extends "admin/base_site.html" %}{% block content %}x{% endblock %}')

    # then
    assert raised.value.message == (
        "no template 'admin/base_site.html' under templates/emails/, templates/seo/, templates/social/, templates/pages/"
    )


def test_inlining_moves_css_into_style_attributes():
    # given
    flat = flatten(
        '{% extends "emails/base.html" %}{% block content %}<h1>Hi {{ customer.first_name }}</h1>'
        '<a class="button" href="{{ links.shop }}">Shop</a>{% endblock %}'
    )

    # when
    inlined = inline_css(flat)

    # then
    assert re.findall(r"<h1[^>]*>", inlined) == [
        '<h1 style="font-size: 22px;line-height: 28px;margin: 0 0 16px 0;color: #111827;">'
    ]
    assert re.findall(r'<a class="button"[^>]*>', inlined) == [
        '<a class="button" href="{{ links.shop }}" style="display: inline-block;background: #2563eb;color: #ffffff;'
        'text-decoration: none;padding: 12px 20px;border-radius: 4px;font-weight: bold;">'
    ]


@pytest.mark.parametrize("child", CHILDREN.values(), ids=CHILDREN.keys())
def test_inlining_keeps_every_jinja_construct(child):
    # given
    flat = flatten(child)

    # when
    inlined = inline_css(flat)

    # then
    for opening in ("{{", "{%", "{#"):
        assert inlined.count(opening) == flat.count(opening)
    assert re.findall(r"\{\{.*?\}\}|\{%.*?%\}", inlined, re.S) == re.findall(r"\{\{.*?\}\}|\{%.*?%\}", flat, re.S)


def test_statements_between_table_rows_stay_inside_the_table():
    # given
    source = (
        "<html><head><style>td { color: red; }</style></head><body><table><tr><td>Head</td></tr>"
        "{% for product in recommendations %}<tr><td>{{ product.name }}</td></tr>{% endfor %}</table></body></html>"
    )

    # when
    inlined = inline_css(source)

    # then
    assert inlined == (
        '<html><head><style>td { color: red; }</style></head><body><table><tbody><tr><td style="color: red;">Head</td></tr>'
        '{% for product in recommendations %}<tr><td style="color: red;">{{ product.name }}</td></tr>{% endfor %}'
        "</tbody></table></body></html>"
    )


def test_the_compiled_recommendation_grid_renders_one_row_per_product(context):
    # given
    compiled = compile_sources(
        '{% extends "emails/base.html" %}{% from "emails/recommendations.html" import product_grid %}'
        "{% block content %}{{ product_grid(recommendations) }}{% endblock %}"
    )

    # when
    rendered = render(compile_source(compiled.html, "<compiled>.html"), context)

    # then
    assert rendered.count("<tr>") == 4
    assert rendered.count('<td class="product" style="padding: 8px;vertical-align: top;width: 50%;">') == 8


def test_derived_text_writes_links_lists_and_paragraphs_and_drops_the_head():
    # given
    source = (
        "<html><head><title>{{ subject }}</title><style>p { color: red; }</style></head><body>"
        '<h1>Hello {{ customer.first_name }}</h1><p>See <a href="https://shop.example.com/sale">the sale</a> now.</p>'
        "<ul><li>One</li><li>{{ customer.city }}</li></ul>"
        '{% if links.unsubscribe %}<p><a href="{{ links.unsubscribe }}">Unsubscribe</a></p>{% endif %}</body></html>'
    )

    # when
    text = derive_text(source)

    # then
    assert text == (
        "Hello {{ customer.first_name }}\n\nSee the sale (https://shop.example.com/sale) now.\n\n"
        "- One\n- {{ customer.city }}\n\n{% if links.unsubscribe %}\n\nUnsubscribe ({{ links.unsubscribe }})\n\n{% endif %}\n"
    )


def test_derived_text_renders_as_plain_text(context):
    # given
    context["customer"]["first_name"] = "<b>Ann & Bo</b>"
    compiled = compile_sources(
        '{% extends "emails/base.html" %}{% block content %}<h1>Hi {{ customer.first_name }}</h1>{% endblock %}'
    )

    # when
    text = render(compile_source(compiled.text, "<compiled>.txt"), context)

    # then
    assert text == (
        "Hi <b>Ann & Bo</b>\n\nKairos Demo Shop · 1 Market Street, Springfield\n\n"
        "You receive this e-mail because you subscribed to news from Kairos Demo Shop. "
        "Unsubscribe (https://kairos.example.com/u/sample/) at any time."
    )


def test_a_written_text_part_is_kept():
    # given
    html = "<html><body><p>Hi {{ customer.first_name }}</p></body></html>"
    written = "Hi {{ customer.first_name }}, written by hand."

    # when
    compiled = compile_sources(html, written)

    # then
    assert compiled == CompiledSources(
        html="<html><head></head><body><p>Hi {{ customer.first_name }}</p></body></html>", text=written
    )


def test_a_written_text_part_is_flattened_too(context):
    # given
    written = 'Hi {{ customer.first_name }}\n{% include "emails/kairos_test_part.html" %}'

    # when
    compiled = compile_sources("<p>Hi</p>", written)

    # then
    assert compiled.text == 'Hi {{ customer.first_name }}\n<p class="note">Included for {{ customer.first_name }}</p>'


@pytest.mark.parametrize(
    ("style", "construct"),
    [
        ("{% if customer.city %}p { color: red; }{% endif %}", "{% if customer.city %}"),
        ("p {% if customer.city %}{ color: red; }{% endif %}", "{% if customer.city %}"),
        ("p { color: red; {% for i in range(2) %}margin: 0;{% endfor %} }", "{% for i in range(2) %}"),
    ],
)
def test_statements_inside_style_are_refused_naming_the_code(style, construct):
    # given
    source = f"<html><head><style>{style}</style></head><body><p>Hi</p></body></html>"

    # when
    with pytest.raises(CompileError) as raised:
        compile_sources(source)

    # then
    assert raised.value.message == STYLE_CODE_PROBLEM.format(construct)


# Each hides a `{#` or `#}` where Jinja sees no comment: in a string literal, in a raw block. A
# compiler that found comments by regular expression joined them into one and left live code
# behind; here lint and compile see the same tokens, so what lint accepted compiles to itself.
HIDDEN_COMMENTS = [
    '{{ "{#" }}{% raw %}#}" }}{% autoescape false %}{{ customer.first_name }}{% endautoescape %}{{ "{% endraw %}" }}',
    "{{ '{#' }}<p>{{ customer.first_name }}</p>{{ '#}' }}{% raw %}{% autoescape false %}{% endraw %}",
    '{% raw %}{#{% endraw %}{{ customer.first_name }}{% raw %}#}{% endraw %}',
    '{% set a = "{#" %}{{ customer.first_name }}{% set b = "#}" %}',
]


@pytest.mark.parametrize("source", HIDDEN_COMMENTS)
def test_text_that_only_looks_like_a_comment_compiles_to_what_lint_saw(source):
    from campaigns.lint import lint_template

    html = f"<html><body>{source}</body></html>"
    context = sample_context()
    context["customer"]["first_name"] = "<script>alert(1)</script>"
    assert lint_template(html, html=True) == []

    compiled = compile_sources(html)
    direct = render(compile_source(html, "<direct>.html"), context)
    rendered = render(compile_source(compiled.html, "<compiled>.html"), context)

    assert "<script>" not in rendered
    assert re.sub(r"\s+|<head></head>", "", rendered) == re.sub(r"\s+", "", direct)


def test_a_real_comment_is_still_dropped():
    compiled = compile_sources('<html><body><p>a{# {{ customer.email }} "x" #}b</p></body></html>')

    assert "customer.email" not in compiled.html
    assert "<p>ab</p>" in compiled.html
