"""The template sandbox: escapes refused, time and size bounded, context untouched, customer data escaped, layouts fenced in."""

import copy
import time
import tracemalloc

import pytest
from django.conf import settings as django_settings
from jinja2 import TemplateNotFound

from campaigns.context import sample_context
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


ESCAPES = [
    ("{{ ''.__class__.__mro__ }}", "not allowed: access to attribute '__class__' of 'str' object is unsafe."),
    (
        "{{ customer.__class__.__subclasses__() }}",
        "not allowed: access to attribute '__class__' of 'dict' object is unsafe.",
    ),
    (
        "{{ cycler.__init__.__globals__.os }}",
        "not allowed: access to attribute '__init__' of 'StrictUndefined' object is unsafe.",
    ),
    ("{{ lipsum.__globals__ }}", "unknown variable: 'lipsum' is undefined"),
    ("{{ joiner() }}", "unknown variable: 'joiner' is undefined"),
    ("{{ ''|attr('__class__') }}", "not allowed: access to attribute '__class__' of 'str' object is unsafe."),
    (
        r"{{ ''|attr('\x5f\x5fclass\x5f\x5f') }}",
        "not allowed: access to attribute '__class__' of 'str' object is unsafe.",
    ),
    (r"{{ ''['\x5f\x5fclass\x5f\x5f'] }}", "not allowed: access to attribute '__class__' of 'str' object is unsafe."),
    ("{{ ''|attr('_' ~ '_class__') }}", "not allowed: access to attribute '__class__' of 'str' object is unsafe."),
    ("{{ customer['_' ~ '_class__'] }}", "not allowed: access to attribute '__class__' of 'dict' object is unsafe."),
    ("{{ request|attr('application') }}", "unknown variable: 'request' is undefined"),
    (
        "{{ customer.items|attr('__self__') }}",
        "not allowed: access to attribute '__self__' of 'builtin_function_or_method' object is unsafe.",
    ),
    (
        "{{ (customer|dictsort)[0].__class__ }}",
        "not allowed: access to attribute '__class__' of 'tuple' object is unsafe.",
    ),
    (
        "{{ ['a']|sum(attribute='__class__') }}",
        "not allowed: access to attribute '__class__' of 'str' object is unsafe.",
    ),
    (
        "{{ [customer]|selectattr('__class__')|list }}",
        "not allowed: access to attribute '__class__' of 'dict' object is unsafe.",
    ),
    ("{{ self.__init__ }}", "not allowed: access to attribute '__init__' of 'TemplateReference' object is unsafe."),
    ("{{ range.__init__.__globals__ }}", "not allowed: access to attribute '__init__' of 'type' object is unsafe."),
    ("{{ namespace.__init__.__globals__ }}", "not allowed: access to attribute '__init__' of 'type' object is unsafe."),
    ("{{ dict.mro() }}", "not allowed: access to attribute 'mro' of 'type' object is unsafe."),
    (
        "{{ namespace().__class__ }}",
        "not allowed: access to attribute '__class__' of 'BoundedNamespace' object is unsafe.",
    ),
    (
        "{{ '{0.__class__}'.format(customer) }}",
        "not allowed: str.format is not allowed in templates; use ~ to join text",
    ),
    (
        "{{ '{x.__init__.__globals__}'.format_map({'x': customer}) }}",
        "not allowed: str.format_map is not allowed in templates; use ~ to join text",
    ),
    ("{{ '%s' % customer }}", "not allowed: %-formatting of strings is not allowed in templates; use ~ to join text"),
    ("{{ settings.SECRET_KEY }}", "unknown variable: 'settings' is undefined"),
    ("{{ config.SECRET_KEY }}", "unknown variable: 'config' is undefined"),
]


@pytest.mark.parametrize(("source", "message"), ESCAPES)
def test_sandbox_refuses_escapes_naming_the_reason(source, message, context):
    # given
    before = copy.deepcopy(context)

    # when
    error = render_refused(source, context)

    # then
    assert (error.message, error.line) == (message, 1)
    assert context == before


@pytest.mark.parametrize(
    ("source", "output"),
    [
        ("{{ recommendations[:1]|map(attribute='__class__')|list }}", "[Undefined]"),
        ("{{ [customer]|groupby('__class__')|map(attribute='grouper')|list }}", "[Undefined]"),
        ("{{ '%s'|format(campaign) }}", "{&#39;name&#39;: &#39;Sample campaign&#39;}"),
    ],
)
def test_indirect_lookups_that_render_yield_no_internals(source, output, context):
    # when
    rendered = render_string(source, context, html=True)

    # then
    assert rendered == output
    assert_nothing_leaks(rendered)


LIMITS = [
    ("{{ '%999999999d'|format(1) }}", "refused: format widths and precisions above 999 are not allowed"),
    ("{{ '%.9999f'|format(1.0) }}", "refused: format widths and precisions above 999 are not allowed"),
    (
        "{{ '%*d'|format(999999999, 1) }}",
        "refused: the format filter was given 999,999,999; numbers above 100,000 are not allowed",
    ),
    (
        "{% for i in range(10**9) %}{% endfor %}",
        "refused: range() of 1,000,000,000 numbers; at most 100,000 are allowed",
    ),
    ("{{ range(10**9)|list }}", "refused: range() of 1,000,000,000 numbers; at most 100,000 are allowed"),
    ("{{ 'a' * 10**9 }}", "refused: the '*' operator would build 1,000,000,000 items; the limit is 1,000,000"),
    ("{{ 10**9 * 'a' }}", "refused: the '*' operator would build 1,000,000,000 items; the limit is 1,000,000"),
    ("{{ [1] * 10**9 }}", "refused: the '*' operator would build 1,000,000,000 items; the limit is 1,000,000"),
    ("{{ 2 ** 100000 }}", "refused: exponents above 64 are not allowed (got 100000)"),
    (
        "{% set ns = namespace(s='a') %}{% for i in range(100) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s }}",
        "refused: a joined string would exceed 1,000,000 characters",
    ),
    (
        "{% set ns = namespace(s='a') %}{% for i in range(100) %}{% set ns.s = ns.s + ns.s %}{% endfor %}{{ ns.s }}",
        "refused: the '+' operator would build 1,048,576 items; the limit is 1,000,000",
    ),
    (
        "{% set ns = namespace(s=['a']) %}{% for i in range(100) %}{% set ns.s = ns.s + ns.s %}{% endfor %}{{ ns.s }}",
        "refused: namespace value 's' would exceed 1,000,000 characters",
    ),
    ("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", "refused: calls nested too deeply"),
    (
        "{{ 'a'|center(10**6) }}",
        "refused: the center filter was given 1,000,000; numbers above 100,000 are not allowed",
    ),
    ("{{ 'a'.center(10**6) }}", "refused: str.center was given 1,000,000; numbers above 100,000 are not allowed"),
    ("{{ 'a'.ljust(10**6) }}", "refused: str.ljust was given 1,000,000; numbers above 100,000 are not allowed"),
    ("{{ 'a'.rjust(10**6) }}", "refused: str.rjust was given 1,000,000; numbers above 100,000 are not allowed"),
    ("{{ 'a'.zfill(10**6) }}", "refused: str.zfill was given 1,000,000; numbers above 100,000 are not allowed"),
    (
        "{{ ('a\\t' * 10).expandtabs(10**6) }}",
        "refused: str.expandtabs was given 1,000,000; numbers above 100,000 are not allowed",
    ),
    ("{{ ('a' * 1000)|replace('a', 'a' * 1000) }}", "refused: replace() would exceed 1,000,000 characters"),
    ("{{ ('a' * 1000).replace('a', 'a' * 1000) }}", "refused: replace() would exceed 1,000,000 characters"),
    ("{{ ('ab' * 400000)|replace('', 'x') }}", "refused: replace() would exceed 1,000,000 characters"),
    (
        "{{ 'a'|indent(10**6) }}",
        "refused: the indent filter was given 1,000,000; numbers above 100,000 are not allowed",
    ),
    (
        "{{ 'a'|truncate(10**9) }}",
        "refused: the truncate filter was given 1,000,000,000; numbers above 100,000 are not allowed",
    ),
    (
        "{{ 'abc'|batch(10**9)|list }}",
        "refused: the batch filter was given 1,000,000,000; numbers above 100,000 are not allowed",
    ),
    (
        "{% set big = range(100000)|list %}{{ ([big] * 5)|tojson }}",
        "refused: the tojson filter's input exceeds 1,000,000 characters",
    ),
    (
        "{% set big = range(100000)|list %}{{ ([big] * 5)|join(',') }}",
        "refused: the join filter's input exceeds 1,000,000 characters",
    ),
    (
        "{{ range(100000)|join('x' * 20) }}",
        "refused: join() of 100,000 items with a 20-character separator would exceed 1,000,000 characters",
    ),
]


@pytest.mark.parametrize(("source", "message"), LIMITS)
def test_sandbox_refuses_values_past_the_limits(source, message, context):
    # given
    before = copy.deepcopy(context)

    # when
    error = render_refused(source, context)

    # then
    assert error.message == message
    assert context == before


# Each of these once allocated about 100 MB (and, scaled to the range limit, gigabytes) before its
# result was size-checked; the limit must hold while the value is built, not only afterwards.
MEMORY_BOMBS = [
    (
        "{{ range(1000)|map('center', 99999)|join|length }}",
        "refused: the items of the map filter would exceed 1,000,000 characters",
    ),
    (
        "{{ range(1000)|map('center', 99999)|list|length }}",
        "refused: the items of the map filter would exceed 1,000,000 characters",
    ),
    (
        "{% for x in range(1000)|map('center', 99999) %}{{ loop.length }}{% endfor %}",
        "refused: the items of the map filter would exceed 1,000,000 characters",
    ),
    (
        "{{ range(1000)|list|join('x' * 700000) }}",
        "refused: join() of 1,000 items with a 700,000-character separator would exceed 1,000,000 characters",
    ),
    (
        "{{ ('x' * 700000).join(range(1000)|map('string')) }}",
        "refused: join() of 1,000 items with a 700,000-character separator would exceed 1,000,000 characters",
    ),
    ("{{ ('a\\n' * 1000)|indent(99999) }}", "refused: the indent filter would exceed 1,000,000 characters"),
    ("{{ ('a\\n' * 1000)|indent('x' * 99999) }}", "refused: the indent filter would exceed 1,000,000 characters"),
    (
        "{{ ('a ' * 1000)|wordwrap(1, wrapstring='x' * 99999) }}",
        "refused: the wordwrap filter would exceed 1,000,000 characters",
    ),
    ("{{ ('a' * 1000).translate({97: 'x' * 99999}) }}", "refused: translate() would exceed 1,000,000 characters"),
]


@pytest.mark.parametrize(("source", "message"), MEMORY_BOMBS)
def test_sandbox_refuses_memory_bombs_before_building_them(source, message, context):
    # given
    tracemalloc.start()

    # when
    try:
        error = render_refused(source, context)
        _, peak_bytes = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    # then
    assert error.message == message
    assert peak_bytes < 30_000_000


@pytest.mark.parametrize(
    "source",
    [
        "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
        "{% for i in range(100000) %}{% for j in range(100000) %}{{ '' }}{% endfor %}{% endfor %}",
        "{% macro f(n) %}{% for i in range(100000) %}{{ i|string|length }}{% endfor %}{% endmacro %}"
        "{% for i in range(100000) %}{% set x = f(i) %}{% endfor %}",
        "{% set ns = namespace(n=0) %}{% for i in range(100000) %}{% for j in range(100000) %}"
        "{% set ns.n = ns.n + 1 %}{% endfor %}{% endfor %}",
    ],
)
def test_loops_that_would_run_for_hours_stop_at_the_time_limit(source, context, settings):
    # given
    settings.TEMPLATE_RENDER_TIMEOUT_MS = 200
    started = time.monotonic()

    # when
    error = render_refused(source, context)

    # then
    assert error.message == "refused: rendering took longer than 200 ms"
    # A safety bound, not a performance measurement: without the limit these run for hours.
    assert time.monotonic() - started < 5


@pytest.mark.parametrize(
    ("source", "message"),
    [
        (
            "{{ customer.update({'email': 'attacker@evil.example'}) }}",
            "not allowed: access to attribute 'update' of 'dict' object is unsafe.",
        ),
        (
            "{{ recommendations.append({'url': 'https://evil.example'}) }}",
            "not allowed: access to attribute 'append' of 'list' object is unsafe.",
        ),
        ("{{ customer.pop('email') }}", "not allowed: access to attribute 'pop' of 'dict' object is unsafe."),
        ("{{ customer.attributes.clear() }}", "not allowed: access to attribute 'clear' of 'dict' object is unsafe."),
        (
            "{{ customer.setdefault('x', 1) }}",
            "not allowed: access to attribute 'setdefault' of 'dict' object is unsafe.",
        ),
        ("{{ recommendations.sort() }}", "not allowed: access to attribute 'sort' of 'list' object is unsafe."),
        (
            "{{ links.__setitem__('unsubscribe', '#') }}",
            "not allowed: access to attribute '__setitem__' of 'dict' object is unsafe.",
        ),
        ("{% set customer.email = 'attacker@evil.example' %}", "cannot assign attribute on non-namespace object"),
    ],
)
def test_templates_cannot_mutate_the_context(source, message, context):
    # given
    before = copy.deepcopy(context)

    # when
    error = render_refused(source, context)

    # then
    assert (error.message, error.line) == (message, 1)
    assert context == before


def test_a_template_level_set_shadows_without_changing_the_context(context):
    # given
    before = copy.deepcopy(context)

    # when
    rendered = render_string(
        "{% set customer = {'first_name': 'Mallory'} %}{{ customer.first_name }}", context, html=True
    )

    # then
    assert rendered == "Mallory"
    assert context == before


def test_the_secret_key_is_unreachable_from_every_global_and_value(context):
    # given
    probes = [
        "{{ self._TemplateReference__context }}",
        "{{ self|attr('_TemplateReference__context') }}",
        "{{ range|attr('__init__') }}",
        "{{ dict.fromkeys.__self__ }}",
        "{{ environment }}",
        "{{ django }}",
    ]

    # when
    messages = []
    for probe in probes:
        with pytest.raises(RenderError) as raised:
            render_string(probe, context, html=True)
        messages.append(raised.value.message)

    # then
    assert messages == [
        "not allowed: access to attribute '_TemplateReference__context' of 'TemplateReference' object is unsafe.",
        "not allowed: access to attribute '_TemplateReference__context' of 'TemplateReference' object is unsafe.",
        "not allowed: access to attribute '__init__' of 'type' object is unsafe.",
        "not allowed: access to attribute '__self__' of 'builtin_function_or_method' object is unsafe.",
        "unknown variable: 'environment' is undefined",
        "unknown variable: 'django' is undefined",
    ]
    for message in messages:
        assert_nothing_leaks(message)


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
