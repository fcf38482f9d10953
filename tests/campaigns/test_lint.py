"""Checks at save time: every problem a marketer must fix, with its line, before a template can be saved."""

import pytest

from campaigns.lint import Problem, lint_template
from campaigns.rendering import layout_names
from campaigns.versions import VariantProblems, address_problem, lint_variant

BASE_CHILD = (
    '{% extends "emails/base.html" %}\n{% block content %}\n<p>Hi {{ customer.first_name }}</p>\n{% endblock %}'
)
UNSUBSCRIBE_MISSING = (
    'every marketing e-mail must show the unsubscribe link: extend "emails/base.html" or print {{ links.unsubscribe }}'
)
CONTEXT_NAMES = "campaign, category_recommendations, customer, links, message, order, recommendations, shop, subject, trigger"


def refused_layout(verb: str, shown: str) -> str:
    return f"templates may {verb} only the registered layouts ({', '.join(layout_names())}); {shown} is not one"


@pytest.fixture(autouse=True)
def shop(settings):
    settings.SHOP_NAME = "Kairos Demo Shop"
    settings.SHOP_URL = "https://shop.example.com"


@pytest.mark.parametrize(
    ("source", "problem"),
    [
        (
            "<p>Hi</p>\n<p>{% if %}</p>",
            Problem("syntax error: Expected an expression, got 'end of statement block'", 2),
        ),
        (
            "<p>Hi</p>\n\n{% for p in recommendations %}",
            Problem(
                "syntax error: Unexpected end of template. Jinja was looking for the following tags: 'endfor' or 'else'. The innermost block that needs to be closed is 'for'.",
                3,
            ),
        ),
        ("<p>{{ customer.first_name </p>", Problem("syntax error: unexpected '/'", 1)),
    ],
)
def test_a_syntax_error_is_refused_with_its_line(source, problem):
    # when
    problems = lint_template(source, html=True)

    # then
    assert problems == [problem]


def test_an_unknown_variable_is_refused_with_its_line():
    # given
    source = (
        "<p>Hi {{ customer.first_name }}</p>\n<p>Thanks for shopping at {{ shop.name }}</p>\n<p>{{ coupon_code }}</p>"
    )

    # when
    problems = lint_template(source, html=True)

    # then
    assert problems == [Problem(f"unknown variable 'coupon_code'; the context has {CONTEXT_NAMES}", 3)]
    assert str(problems[0]) == f"Line 3: unknown variable 'coupon_code'; the context has {CONTEXT_NAMES}"


def test_an_unknown_nested_field_is_refused_by_the_sample_render_with_its_line():
    # given
    source = "<p>Hi</p>\n<p>\n{{ customer.nonexistent }}</p>"

    # when
    problems = lint_template(source, html=True)

    # then
    assert problems == [
        Problem("with a sample customer: unknown variable: 'dict object' has no attribute 'nonexistent'", 3)
    ]


def test_variables_the_template_defines_itself_are_known():
    # given
    source = (
        "{% set greeting = 'Hello' %}{% macro shout(text) %}{{ text|upper }}{% endmacro %}"
        "{% for product in recommendations %}<p>{{ loop.index }} {{ greeting }} {{ shout(product.name) }}</p>{% endfor %}"
    )

    # when
    problems = lint_template(source, html=True)

    # then
    assert problems == []


@pytest.mark.parametrize("html", [True, False])
def test_the_safe_filter_is_refused_with_its_line(html):
    # when
    problems = lint_template("Hi\n{{ customer.first_name|safe }}", html=html)

    # then
    assert problems == [Problem("the |safe filter is not allowed: it would switch off escaping", 2)]


@pytest.mark.parametrize("switch", ["false", "true"])
def test_autoescape_blocks_are_refused_with_their_line(switch):
    # given
    source = f"<p>Hi</p>\n\n{{% autoescape {switch} %}}{{{{ customer.first_name }}}}{{% endautoescape %}}"

    # when
    problems = lint_template(source, html=True)

    # then
    assert problems == [Problem("{% autoescape %} blocks are not allowed: escaping stays on", 3)]


@pytest.mark.parametrize(
    ("statement", "verb", "shown"),
    [
        (
            '{% include "admin/campaigns/emailtemplate/preview.html" %}',
            "include",
            "'admin/campaigns/emailtemplate/preview.html'",
        ),
        ('{% include "emails/missing.html" %}', "include", "'emails/missing.html'"),
        ('{% include "../marketing/settings.py" %}', "include", "'../marketing/settings.py'"),
        ('{% include "/etc/passwd" %}', "include", "'/etc/passwd'"),
        ("{% include customer.attributes.layout %}", "include", "a computed name"),
        ('{% from "emails/missing.html" import grid %}', "import", "'emails/missing.html'"),
        ('{% extends "admin/base_site.html" %}', "extend", "'admin/base_site.html'"),
    ],
)
def test_layouts_that_are_not_registered_are_refused_with_the_line(statement, verb, shown):
    # given
    source = f"<p>Hi</p>\n{statement}"

    # when
    problems = lint_template(source, html=True)

    # then
    assert problems == [Problem(refused_layout(verb, shown), 2)]


def test_import_as_is_refused_with_a_hint():
    # when
    problems = lint_template(
        '<p>Hi</p>\n{% import "emails/recommendations.html" as r %}{{ r.product_grid(recommendations) }}', html=True
    )

    # then
    assert problems == [Problem('{% import … as … %} is not supported; use {% from "layout" import macro %}', 2)]


@pytest.mark.parametrize(
    "source",
    [
        BASE_CHILD,
        '{% from "emails/recommendations.html" import product_grid %}<div>{{ product_grid(recommendations) }}</div>',
        '{% extends "emails/base.html" %}{% from "emails/recommendations.html" import product_grid %}'
        "{% block content %}{{ product_grid(recommendations) }}{% endblock %}",
        '<div>{% include "emails/recommendations.html" %}</div>',
    ],
)
def test_the_registered_layouts_are_accepted(source):
    # when
    problems = lint_template(source, html=True)

    # then
    assert problems == []


def test_a_marketing_email_without_the_unsubscribe_link_is_refused():
    # when
    problems = lint_template("<p>Hi {{ customer.first_name }}</p>", html=True, require_unsubscribe=True)

    # then
    assert problems == [Problem(UNSUBSCRIBE_MISSING)]


def test_a_marketing_email_extending_the_base_layout_is_accepted():
    # when
    problems = lint_template(BASE_CHILD, html=True, require_unsubscribe=True)

    # then
    assert problems == []


def test_a_marketing_email_printing_the_unsubscribe_link_itself_is_accepted():
    # when
    problems = lint_template(
        '<p>Hi</p><a href="{{ links.unsubscribe }}">Unsubscribe</a>', html=True, require_unsubscribe=True
    )

    # then
    assert problems == []


def test_the_unsubscribe_link_is_not_required_unless_asked():
    # when
    problems = lint_template("<p>Hi {{ customer.first_name }}</p>", html=True)

    # then
    assert problems == []


def test_template_code_inside_style_is_refused_naming_it():
    # given
    source = "<html><head><style>{% if customer.city %}p { color: red; }{% endif %}</style></head><body><p>Hi</p></body></html>"

    # when
    problems = lint_template(source, html=True)

    # then
    assert problems == [
        Problem(
            "template code '{% if customer.city %}' sits where HTML cannot keep it (inside <style> or an attribute name?); "
            "move it into an element's text or an attribute value"
        )
    ]


def test_a_sandbox_refusal_in_the_sample_render_is_reported_with_its_line():
    # when
    problems = lint_template("Hi\n{{ ''.__class__ }}", html=False)

    # then
    assert problems == [
        Problem("with a sample customer: not allowed: access to attribute '__class__' of 'str' object is unsafe.", 2)
    ]


@pytest.mark.parametrize("subject", ["Hi\nBcc: victim@example.com", "Hi\r\nBcc: victim@example.com", "Hi\rthere"])
def test_a_subject_with_a_line_break_is_refused(subject):
    # when
    problems = lint_variant(subject, BASE_CHILD)

    # then
    assert problems == VariantProblems(subject=[Problem("the subject must be one line")], html=[], text=[])
    assert problems.by_field() == {"subject": ["the subject must be one line"]}


def test_a_clean_variant_has_no_problems():
    # when
    problems = lint_variant("Hi {{ customer.first_name }}", BASE_CHILD, "Hi {{ customer.first_name }}")

    # then
    assert problems == VariantProblems(subject=[], html=[], text=[])
    assert not problems


def test_every_part_of_a_variant_is_checked():
    # when
    problems = lint_variant("{{ coupon }}", "<p>Hi</p>", "Hi\n{{ customer.first_name|safe }}")

    # then
    assert problems.by_field() == {
        "subject": [f"Line 1: unknown variable 'coupon'; the context has {CONTEXT_NAMES}"],
        "html": [UNSUBSCRIBE_MISSING],
        "text": ["Line 2: the |safe filter is not allowed: it would switch off escaping"],
    }


LINE_BREAK_PROBLEM = "must be one line: line breaks would let it add headers or recipients"


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("News <news@shop.example>\r\nBcc: victim@example.com", LINE_BREAK_PROBLEM),
        ("news@shop.example\nBcc: victim@example.com", LINE_BREAK_PROBLEM),
        ("News\r <news@shop.example>", LINE_BREAK_PROBLEM),
        ("news@shop.example\x00", LINE_BREAK_PROBLEM),
        ("not an address", "'not an address' is not an address such as News <news@shop.example>"),
        ("News", "'News' is not an address such as News <news@shop.example>"),
        ("a@b@shop.example", "'a@b@shop.example' is not an address such as News <news@shop.example>"),
        (
            "News <news letter@shop.example>",
            "'News <news letter@shop.example>' is not an address such as News <news@shop.example>",
        ),
        ("<@>", "'<@>' is not an address such as News <news@shop.example>"),
    ],
)
def test_unusable_addresses_are_refused(value, problem):
    # when
    found = address_problem(value)

    # then
    assert found == problem


@pytest.mark.parametrize(
    "value", ["", "news@shop.example", "News <news@shop.example>", '"Shop, Inc." <news@shop.example>']
)
def test_usable_addresses_pass(value):
    # when
    found = address_problem(value)

    # then
    assert found is None
