"""The bounded sandbox (campaigns.rendering.limits): escapes, time and size limits, an immutable context."""

import copy
import time
import tracemalloc

import pytest

from campaigns.rendering import (
    RenderError,
    render_string,
)
from tests.campaigns.rendering.conftest import assert_nothing_leaks, render_refused

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


# None of these asks the sandbox anything inside its loops (no call, no attribute, no range): only
# a deadline enforced from outside the template stops them. Without it each ran for minutes.
SILENT_LOOPS = [
    "{% set s = 'x' * 100000 %}{% for a in s %}{% for b in s %}{% endfor %}{% endfor %}",
    "{% set s = 'x' * 100000 %}{% for a in s %}{% for b in s %}{% if a == b %}{% endif %}{% endfor %}{% endfor %}",
    "{% set s = 'x' * 100000 %}{% for a in s %}{% for b in s %}{% set c = a ~ b %}{% endfor %}{% endfor %}",
    "{% set s = [1] * 100000 %}{% for a in s %}{% for b in s %}{% set c = a - b %}{% endfor %}{% endfor %}",
]


@pytest.mark.parametrize("source", SILENT_LOOPS)
def test_loops_that_never_ask_the_sandbox_stop_at_the_time_limit(source, context, settings):
    # given
    settings.TEMPLATE_RENDER_TIMEOUT_MS = 200
    started = time.monotonic()

    # when
    error = render_refused(source, context)

    # then
    assert error.message == "refused: rendering took longer than 200 ms"
    assert time.monotonic() - started < 5
    # The interrupt is spent: the same thread renders the next template normally.
    assert render_string("{{ 1 + 1 }}", context, html=False) == "2"


@pytest.mark.parametrize("source", SILENT_LOOPS[:1])
def test_lint_stops_a_silent_loop_at_the_time_limit(source, settings):
    from campaigns.lint import lint_template

    settings.TEMPLATE_RENDER_TIMEOUT_MS = 200
    started = time.monotonic()

    problems = lint_template(source, html=False)

    assert [problem.message for problem in problems] == [
        "with a sample customer: refused: rendering took longer than 200 ms"
    ]
    assert time.monotonic() - started < 5


@pytest.mark.parametrize(
    ("source", "message"),
    [
        (
            "{{ ((9 ** 64) ** 64) ** 64 }}",
            "refused: the '**' operator would build a number of about 249,312 digits; the limit is 4,300",
        ),
        (
            "{% set ns = namespace(n=9 ** 64) %}{% for i in range(30) %}{% set ns.n = ns.n * ns.n %}{% endfor %}{{ ns.n }}",
            "refused: the '*' operator would build a number of about 7,791 digits; the limit is 4,300",
        ),
    ],
)
def test_big_integer_chains_are_refused_before_they_are_computed(source, message, context):
    started = time.monotonic()

    error = render_refused(source, context)

    assert error.message == message
    assert time.monotonic() - started < 1


# Each argument of these is small, or of a type the old checks never weighed; the results are not.
GROWING_METHODS = [
    (
        "{{ 'a'.encode().ljust(1500000000)|length }}",
        "refused: bytes.ljust was given 1,500,000,000; numbers above 100,000 are not allowed",
    ),
    (
        "{{ ('\\t' * 99999).expandtabs(99999)|length }}",
        "refused: str.expandtabs() could build 9,999,800,001 characters; the limit is 1,000,000",
    ),
    (
        "{{ ('\\t' * 99999).encode().expandtabs(99999)|length }}",
        "refused: bytes.expandtabs() could build 9,999,800,001 characters; the limit is 1,000,000",
    ),
    (
        "{{ ('a' * 999999).encode()|length }}",
        "refused: str.encode() could build 3,999,996 characters; the limit is 1,000,000",
    ),
    (
        "{{ ('a'.encode() * 600000 + 'b'.encode() * 600000)|length }}",
        "refused: the '+' operator would build 1,200,000 items; the limit is 1,000,000",
    ),
]


@pytest.mark.parametrize(("source", "message"), GROWING_METHODS)
def test_methods_whose_result_outgrows_their_arguments_are_refused_before_allocating(source, message, context):
    tracemalloc.start()
    try:
        error = render_refused(source, context)
        _, peak_bytes = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert error.message == message
    assert peak_bytes < 30_000_000


def test_ordinary_methods_on_long_text_still_render(context):
    source = "{{ ('ab,' * 100000).find('b', 1000) }} {{ ('ab,' * 100000).split(',', 3)|length }} {{ 'ok'.center(20)|length }}"

    assert render_string(source, context, html=False) == "1000 4 20"
