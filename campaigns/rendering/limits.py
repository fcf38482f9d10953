"""Time and size limits for the sandbox: what Jinja's own sandbox does not bound.

The immutable sandbox stops attribute escapes and mutation of the context, but a template can
still loop for ever or build a string of gigabytes. Here every call, attribute read, filter,
operator, concatenation, loop over `range` and printed value checks a deadline, and no value a
template builds may exceed the budget's character (or item) limit.
"""

import contextvars
import functools
import re
import time
from collections.abc import Callable, Iterator, Sized
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from jinja2.compiler import CodeGenerator
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import Namespace

# Loops over range() and numbers passed to filters stay below this; Jinja's own sandbox limit.
MAX_RANGE_ITEMS = 100_000
DEADLINE_CHECK_EVERY_ITEMS = 1024
# Integers a template computes stay below this many decimal digits (Python prints at most 4,300).
MAX_NUMBER_DIGITS = 4300
# Deep macro recursion is a way to burn time; Python's own limit would also stop it, later.
MAX_CALL_DEPTH = 200


class RenderLimitExceeded(SecurityError):
    """A template went past a time or size limit."""


@dataclass
class Budget:
    deadline: float
    max_chars: int
    depth: int = 0


current_budget: contextvars.ContextVar[Budget | None] = contextvars.ContextVar("kairos_render_budget", default=None)


def check_deadline() -> None:
    budget = current_budget.get()
    if budget is not None and time.monotonic() > budget.deadline:
        raise RenderLimitExceeded(f"rendering took longer than {settings.TEMPLATE_RENDER_TIMEOUT_MS} ms")


def _max_chars() -> int:
    budget = current_budget.get()
    return budget.max_chars if budget is not None else settings.TEMPLATE_MAX_OUTPUT_CHARS


def _weight(value: Any, limit: int) -> int:
    """Return roughly how many characters the value would print as, stopping once past the limit."""
    if isinstance(value, str | bytes | bytearray | memoryview):
        return len(value)
    if isinstance(value, int) and not isinstance(value, bool):
        # Three decimal digits per ten bits: a big integer is as heavy as its printed digits.
        return max(1, value.bit_length() * 3 // 10)
    if isinstance(value, dict):
        total, items = 0, value.items()
    elif isinstance(value, list | tuple | set | frozenset | BoundedRange):
        total, items = 0, value
    else:
        return 1
    for item in items:
        total += 1 + (
            _weight(item[0], limit) + _weight(item[1], limit) if isinstance(value, dict) else _weight(item, limit)
        )
        if total > limit:
            break
    return total


def _guard(value: Any, what: str = "a value") -> Any:
    limit = _max_chars()
    if _weight(value, limit) > limit:
        raise RenderLimitExceeded(f"{what} would exceed {limit:,} characters")
    return value


class BoundedRange:
    """What `range()` returns in templates: at most MAX_RANGE_ITEMS numbers, checking the deadline as it goes."""

    def __init__(self, *args: int) -> None:
        self._range = range(*args)
        if len(self._range) > MAX_RANGE_ITEMS:
            raise RenderLimitExceeded(
                f"range() of {len(self._range):,} numbers; at most {MAX_RANGE_ITEMS:,} are allowed"
            )

    def __iter__(self) -> Iterator[int]:
        for index, number in enumerate(self._range):
            if index % DEADLINE_CHECK_EVERY_ITEMS == 0:
                check_deadline()
            yield number

    def __len__(self) -> int:
        return len(self._range)

    def __getitem__(self, index):
        return self._range[index]

    def __contains__(self, number: object) -> bool:
        return number in self._range

    def __repr__(self) -> str:
        return repr(self._range)


class BoundedNamespace(Namespace):
    """`namespace()` whose values are size-checked: a loop cannot double a string into gigabytes."""

    def __setitem__(self, name: str, value: Any) -> None:
        check_deadline()
        super().__setitem__(name, _guard(value, f"namespace value {name!r}"))


def _number_arguments_checked(args: tuple, kwargs: dict, where: str) -> None:
    for value in (*args, *kwargs.values()):
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_RANGE_ITEMS:
            raise RenderLimitExceeded(f"{where} was given {value:,}; numbers above {MAX_RANGE_ITEMS:,} are not allowed")


def guarded_filter(name: str, function: Callable) -> Callable:
    """Wrap a filter so its inputs, numbers and result stay within the limits."""

    @functools.wraps(function)
    def guarded(*args, **kwargs):
        check_deadline()
        # Filters that take a context or environment get it first; check only the template's values.
        values = args[1:] if getattr(function, "jinja_pass_arg", None) is not None else args
        _number_arguments_checked(values[1:], kwargs, f"the {name} filter")
        limit = _max_chars()
        if sum(_weight(value, limit) for value in (*values, *kwargs.values())) > limit:
            raise RenderLimitExceeded(f"the {name} filter's input exceeds {limit:,} characters")
        if name == "format" and values and isinstance(values[0], str) and _WIDE_FORMAT.search(values[0]):
            raise RenderLimitExceeded("format widths and precisions above 999 are not allowed")
        if name == "replace" and len(values) >= 3 and isinstance(values[0], str):
            _check_replace(values[0], values[1], values[2])
        if name in {"indent", "wordwrap"} and values and isinstance(values[0], str):
            _check_repeated_insert(name, values[0], values[1:], kwargs)
        if name == "join" and values:
            offset = len(args) - len(values)
            items = _joinable(values[0])
            args = (*args[:offset], items, *args[offset + 1 :])
            _check_join(values[1] if len(values) > 1 else kwargs.get("d", ""), items)
        result = function(*args, **kwargs)
        if isinstance(result, Iterator):
            # map, select, batch and friends are lazy: whatever later collects their items must stay bounded too.
            return _bounded_items(result, f"the items of the {name} filter")
        return _guard(result, f"the result of the {name} filter")

    return guarded


def _bounded_items(items: Iterator, what: str) -> Iterator:
    """Pass items through, refusing once together they would exceed the size limit."""
    limit = _max_chars()
    total = 0
    for index, item in enumerate(items):
        if index % DEADLINE_CHECK_EVERY_ITEMS == 0:
            check_deadline()
        total += 1 + _weight(item, limit)
        if total > limit:
            raise RenderLimitExceeded(f"{what} would exceed {limit:,} characters")
        yield item


def _check_replace(text: str, old: Any, new: Any) -> None:
    occurrences = text.count(str(old)) if str(old) else len(text) + 1
    if len(text) + occurrences * len(str(new)) > _max_chars():
        raise RenderLimitExceeded(f"replace() would exceed {_max_chars():,} characters")


def _check_repeated_insert(name: str, text: str, args: tuple, kwargs: dict) -> None:
    """Refuse indent and wordwrap calls whose padding or wrap string, repeated on every line, would exceed the limit."""
    if name == "indent":
        width = args[0] if args else kwargs.get("width", 4)
        insert, lines = (len(width) if isinstance(width, str) else int(width)), text.count("\n") + 1
    else:
        wrapstring = args[2] if len(args) > 2 else kwargs.get("wrapstring")
        # Every wrapped line holds at least one character of the text.
        insert, lines = len(str(wrapstring or "\n")), len(text)
    if len(text) + insert * lines > _max_chars():
        raise RenderLimitExceeded(f"the {name} filter would exceed {_max_chars():,} characters")


def _check_method_result(owner: Any, what: str, name: str, args: tuple, kwargs: dict) -> None:
    """Refuse a text or bytes method whose result could outgrow the limit, before it allocates.

    Each argument may be small while the result is not (a 99,999-tab string expanded 99,999 wide),
    so the bound is on the result: the owner's length times every number it is given, plus every
    text argument, which covers each method that pads, repeats, expands or encodes.
    """
    limit = _max_chars()
    numbers = [value for value in (*args, *kwargs.values()) if _is_int(value)]
    texts = [value for value in (*args, *kwargs.values()) if isinstance(value, _SEQUENCES)]
    if name == "expandtabs":
        bound = len(owner) * max([8, *numbers])
    elif name in _PADDING_METHODS:
        bound = max([len(owner), *numbers])
    else:
        # Case changes can triple a character ('ﬃ'.upper()); encodings and hex take up to four bytes each.
        bound = len(owner) * (4 if name in _GROWING_METHODS else 1)
    bound += sum(len(text) for text in texts)
    if bound > limit:
        raise RenderLimitExceeded(f"{what}() could build {bound:,} characters; the limit is {limit:,}")


def _check_translate(text: str, table: Any) -> None:
    if isinstance(table, dict):
        longest = max((len(value) for value in table.values() if isinstance(value, str)), default=1)
        if len(text) * longest > _max_chars():
            raise RenderLimitExceeded(f"translate() would exceed {_max_chars():,} characters")


def _joinable(items: Any) -> Any:
    """Collect lazy items (already size-checked as they pass) so a join can count them first."""
    return list(items) if isinstance(items, Iterator) else items


def _check_join(separator: Any, items: Any) -> None:
    # The separator is repeated between every two items: a long one times many items is a memory bomb.
    if isinstance(items, Sized) and len(str(separator)) * max(len(items) - 1, 0) > _max_chars():
        raise RenderLimitExceeded(
            f"join() of {len(items):,} items with a {len(str(separator)):,}-character separator would exceed {_max_chars():,} characters"
        )


_WIDE_FORMAT = re.compile(r"%[-+ #0]*(\d{4,}|\*)|%[-+ #0]*\d*\.(\d{4,}|\*)")
# Methods of str that take a width or count and can allocate far more than their input.
_STR_SIZE_METHODS = {"center", "ljust", "rjust", "zfill", "expandtabs"}
_PADDING_METHODS = {"center", "ljust", "rjust", "zfill"}
_GROWING_METHODS = {"encode", "hex", "upper", "lower", "title", "capitalize", "swapcase", "casefold"}
# str.format and format_map reach attributes through the format mini-language; refused outright.
_REFUSED_STR_METHODS = {"format", "format_map"}


class _GuardedCodeGenerator(CodeGenerator):
    """Compile `a ~ b` so its result is size-checked like every other operator's."""

    def visit_Concat(self, node, frame) -> None:
        self.write("environment.guard_concat(")
        super().visit_Concat(node, frame)
        self.write(")")


_SEQUENCES = str | bytes | bytearray | list | tuple


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _binop_size(operator_symbol: str, left: Any, right: Any) -> int | None:
    """Return the size the result would have, before it is built, for operators that can grow a value.

    Integers are weighed in printed digits, so a chain of big-integer powers or products is
    refused at the step that would be too big rather than computed for minutes.
    """
    if operator_symbol == "*":
        for sequence, count in ((left, right), (right, left)):
            if isinstance(sequence, _SEQUENCES) and _is_int(count):
                return len(sequence) * max(count, 0)
        if _is_int(left) and _is_int(right):
            return (left.bit_length() + right.bit_length()) * 3 // 10
    if operator_symbol == "**" and _is_int(left) and _is_int(right) and right > 0:
        return left.bit_length() * right * 3 // 10
    if operator_symbol == "+" and isinstance(left, _SEQUENCES) and isinstance(right, _SEQUENCES):
        return len(left) + len(right)
    return None


class KairosSandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox, bounded in time and size."""

    code_generator_class = _GuardedCodeGenerator
    intercepted_binops = frozenset({"*", "**", "%", "+"})

    def guard_concat(self, value: Any) -> Any:
        check_deadline()
        return _guard(value, "a joined string")

    def call_binop(self, context, operator_symbol: str, left: Any, right: Any) -> Any:
        check_deadline()
        if operator_symbol == "**" and isinstance(right, int | float) and abs(right) > 64:
            raise RenderLimitExceeded(f"exponents above 64 are not allowed (got {right})")
        size = _binop_size(operator_symbol, left, right)
        if size is not None and _is_int(left) and _is_int(right) and size > MAX_NUMBER_DIGITS:
            raise RenderLimitExceeded(
                f"the {operator_symbol!r} operator would build a number of about {size:,} digits; "
                f"the limit is {MAX_NUMBER_DIGITS:,}"
            )
        if size is not None and size > _max_chars():
            raise RenderLimitExceeded(
                f"the {operator_symbol!r} operator would build {size:,} items; the limit is {_max_chars():,}"
            )
        if operator_symbol == "%" and isinstance(left, str):
            raise SecurityError("%-formatting of strings is not allowed in templates; use ~ to join text")
        return super().call_binop(context, operator_symbol, left, right)

    def wrap_str_format(self, value: Any) -> Callable | None:
        """Refuse str.format and str.format_map, which the plain sandbox would run in a sandboxed formatter."""
        if isinstance(getattr(value, "__self__", None), str) and getattr(value, "__name__", "") in _REFUSED_STR_METHODS:
            name = value.__name__

            def refused(*args, **kwargs):
                raise SecurityError(f"str.{name} is not allowed in templates; use ~ to join text")

            return refused
        return None

    def getattr(self, obj: Any, attribute: str) -> Any:
        check_deadline()
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        check_deadline()
        return super().getitem(obj, argument)

    def call(__self, __context, __obj, *args, **kwargs):  # noqa: N805 - Jinja's own signature
        check_deadline()
        owner = getattr(__obj, "__self__", None)
        name = getattr(__obj, "__name__", "")
        if isinstance(owner, str | bytes | bytearray):
            kind = type(owner).__name__
            if name in _STR_SIZE_METHODS:
                _number_arguments_checked(args, kwargs, f"{kind}.{name}")
            if name == "replace" and len(args) >= 2:
                _check_replace(owner, args[0], args[1])
            if name == "translate" and args:
                _check_translate(owner, args[0])
            if name == "join" and args:
                args = (_joinable(args[0]), *args[1:])
                _check_join(owner, args[0])
            _check_method_result(owner, f"{kind}.{name}", name, args, kwargs)
        limit = _max_chars()
        if sum(_weight(value, limit) for value in (*args, *kwargs.values())) > limit:
            raise RenderLimitExceeded(f"a call's arguments exceed {limit:,} characters")
        budget = current_budget.get()
        if budget is not None:
            budget.depth += 1
            if budget.depth > MAX_CALL_DEPTH:
                budget.depth -= 1
                raise RenderLimitExceeded(f"calls nested deeper than {MAX_CALL_DEPTH}")
        try:
            result = super().call(__context, __obj, *args, **kwargs)
        finally:
            if budget is not None:
                budget.depth -= 1
        return _guard(result, "a call's result")


def finalize_output(value: Any) -> Any:
    """Check every value a template prints before it is turned into text."""
    check_deadline()
    return _guard(value, "a printed value")
