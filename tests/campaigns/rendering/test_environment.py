"""The rendering environment (campaigns.rendering): escaping, strict variables, output size, the layout loader."""

import pytest
from jinja2 import TemplateNotFound

from campaigns.rendering import (
    LAYOUT_FOLDERS,
    RenderError,
    environment,
    layout_names,
    load_file,
    render_file,
    render_string,
)
from campaigns.tracking import rewrite_links
from tests.campaigns.rendering.conftest import ALL_FOLDERS, render_refused

HOSTILE_NAMES = [
    ("<script>alert(1)</script>", "&lt;script&gt;alert(1)&lt;/script&gt;"),
    ('"><img src=x onerror=alert(1)>', "&#34;&gt;&lt;img src=x onerror=alert(1)&gt;"),
    ("'><svg onload=alert(1)>", "&#39;&gt;&lt;svg onload=alert(1)&gt;"),
    ("Tom & Jerry", "Tom &amp; Jerry"),
]


@pytest.mark.parametrize(("name", "escaped"), HOSTILE_NAMES)
def test_hostile_customer_names_are_escaped_in_html(name, escaped, context):
    # given
    context["customer"]["first_name"] = name

    # when
    rendered = render_string(
        '<p title="{{ customer.first_name }}">Hi {{ customer.first_name }}</p>', context, html=True
    )

    # then
    assert rendered == f'<p title="{escaped}">Hi {escaped}</p>'


@pytest.mark.parametrize(("name", "escaped"), HOSTILE_NAMES)
def test_hostile_customer_names_are_left_as_written_in_plain_text(name, escaped, context):
    # given
    context["customer"]["first_name"] = name

    # when
    rendered = render_string("Hi {{ customer.first_name }}", context, html=False)

    # then
    assert rendered == f"Hi {name}"


def test_hostile_customer_names_are_escaped_in_the_html_layout_on_disk(context):
    # given
    context["customer"]["first_name"] = "<script>alert(1)</script>"
    context["shop"]["name"] = '"><img src=x onerror=alert(1)>'

    # when
    rendered = render_file("emails/base.html", context)

    # then
    assert "<script>alert(1)</script>" not in rendered
    assert "<img src=x" not in rendered
    assert "<p>&#34;&gt;&lt;img src=x onerror=alert(1)&gt; &middot; " in rendered


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(document.cookie)",
        " JaVaScRiPt:alert(1)",
        "java\tscript:alert(1)",
        "\x01javascript:alert(1)",
        "vbscript:msgbox(1)",
        "data:text/html,<script>alert(1)</script>",
        "https:javascript:alert(1)",
        "//evil.example/phish",
    ],
)
def test_unsafe_urls_from_customer_data_are_neutralised_in_links(url, context):
    # given
    context["customer"]["attributes"]["website"] = url
    rendered = render_string('<a href="{{ customer.attributes.website }}">Your site</a>', context, html=True)

    # when
    document, links = rewrite_links(rendered, 7)

    # then
    assert document == '<a href="#">Your site</a>'
    assert links == []


def test_safe_urls_from_customer_data_are_tracked(context):
    # given
    context["customer"]["attributes"]["website"] = "https://shop.example.com/p?a=1&b=2"
    rendered = render_string('<a href="{{ customer.attributes.website }}">Your site</a>', context, html=True)

    # when
    document, links = rewrite_links(rendered, 7)

    # then
    assert links == ["https://shop.example.com/p?a=1&b=2"]
    assert document.startswith('<a href="https://kairos.example.com/t/c/7-0:')


def test_an_unknown_variable_is_refused_with_its_line(context):
    # given
    source = "<p>Hi {{ customer.first_name }}</p>\n<p>{{ shop.name }}</p>\n<p>{{ coupon_code }}</p>"

    # when
    error = render_refused(source, context)

    # then
    assert (error.message, error.line) == ("unknown variable: 'coupon_code' is undefined", 3)
    assert str(error) == "line 3: unknown variable: 'coupon_code' is undefined"


def test_an_unknown_field_is_refused_with_its_line(context):
    # when
    error = render_refused("Hi\n{{ customer.nickname }}", context, html=False)

    # then
    assert (error.message, error.line) == ("unknown variable: 'dict object' has no attribute 'nickname'", 2)


def test_output_past_the_size_limit_is_refused(context, settings):
    # given
    settings.TEMPLATE_MAX_OUTPUT_CHARS = 1000

    # when
    error = render_refused("{% for i in range(10) %}{{ 'x' * 100 }}{% endfor %}!", context)

    # then
    assert error.message == "refused: the output exceeds 1,000 characters"


def test_output_past_the_default_size_limit_is_refused(context):
    # when
    error = render_refused("{% for i in range(20) %}{{ 'x' * 60000 }}{% endfor %}", context)

    # then
    assert error.message == "refused: the output exceeds 1,000,000 characters"


def test_output_at_the_size_limit_renders(context, settings):
    # given
    settings.TEMPLATE_MAX_OUTPUT_CHARS = 1000

    # when
    rendered = render_string("{% for i in range(10) %}{{ 'x' * 100 }}{% endfor %}", context, html=True)

    # then
    assert rendered == "x" * 1000


OUTSIDE_THE_LAYOUT_FOLDERS = [
    "../marketing/settings.py",
    "emails/../../marketing/settings.py",
    "emails/../admin/campaigns/emailtemplate/preview.html",
    "admin/campaigns/emailtemplate/preview.html",
    "/etc/passwd",
    "/work/main/templates/emails/base.html",
    "base.html",
    "marketing/settings.py",
]


@pytest.mark.parametrize("name", OUTSIDE_THE_LAYOUT_FOLDERS)
def test_the_layout_loader_refuses_names_outside_its_folders(name):
    # given
    env = environment()

    # when
    with pytest.raises(TemplateNotFound) as raised:
        env.loader.get_source(env, name)

    # then
    assert raised.value.name == name


@pytest.mark.parametrize("name", OUTSIDE_THE_LAYOUT_FOLDERS)
def test_loading_a_file_outside_the_layout_folders_is_refused_by_name(name):
    # when
    with pytest.raises(RenderError) as raised:
        load_file(name)

    # then
    assert raised.value.message == f"no template {name!r} under {ALL_FOLDERS}"
    assert "_DEVELOPMENT_SECRET_KEY" not in str(raised.value)


@pytest.mark.parametrize("name", OUTSIDE_THE_LAYOUT_FOLDERS)
def test_including_a_file_outside_the_layout_folders_is_refused_at_render(name, context):
    # when
    error = render_refused(f'{{% include "{name}" %}}', context)

    # then
    assert error.message == name


def test_only_the_layout_folders_are_listed():
    # when
    names = layout_names()

    # then
    assert {"emails/base.html", "emails/recommendations.html"} <= set(names)
    assert [name for name in names if name.split("/", 1)[0] not in LAYOUT_FOLDERS] == []
