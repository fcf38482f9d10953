"""The one environment every Kairos template renders in: Jinja's immutable sandbox, with limits.

Templates come from two places: layouts developers write on disk (`templates/emails/`,
`templates/seo/`, `templates/social/`, `templates/pages/`) and templates marketers edit in the
admin. Both render here, with plain data as context (never ORM objects, settings or requests).
The limits on time and size live in `campaigns.rendering.limits`.
"""

import functools
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from django.conf import settings
from jinja2 import FileSystemLoader, StrictUndefined, TemplateNotFound, TemplateSyntaxError, UndefinedError
from jinja2.exceptions import SecurityError, TemplateError
from markupsafe import Markup

from campaigns.rendering.interrupt import RenderInterrupted, interrupt_after
from campaigns.rendering.limits import (
    BoundedNamespace,
    BoundedRange,
    Budget,
    KairosSandbox,
    RenderLimitExceeded,
    check_deadline,
    current_budget,
    finalize_output,
    guarded_filter,
)

LAYOUT_FOLDERS = ("emails", "seo", "social", "pages")
HTML_SUFFIXES = (".html", ".htm", ".xml")


class RenderError(Exception):
    """A template that cannot render: its message names the problem and, where known, the line."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(f"line {line}: {message}" if line else message)
        self.message = message
        self.line = line


class LayoutLoader(FileSystemLoader):
    """Load templates from `templates/`, but only from the folders that hold customer-facing layouts."""

    def get_source(self, environment, template: str):
        folder = template.split("/", 1)[0]
        if folder not in LAYOUT_FOLDERS:
            raise TemplateNotFound(template)
        return super().get_source(environment, template)

    def list_templates(self) -> list[str]:
        return [name for name in super().list_templates() if name.split("/", 1)[0] in LAYOUT_FOLDERS]


def _autoescape(name: str | None) -> bool:
    return name is not None and name.endswith(HTML_SUFFIXES)


def templates_dir() -> Path:
    return Path(settings.BASE_DIR) / "templates"


def build_environment() -> KairosSandbox:
    """Return a new sandboxed environment; `environment()` returns the shared one."""
    env = KairosSandbox(
        loader=LayoutLoader(str(templates_dir())),
        autoescape=_autoescape,
        undefined=StrictUndefined,
        finalize=finalize_output,
        auto_reload=settings.DEBUG,
        keep_trailing_newline=False,
    )
    env.globals = {"range": BoundedRange, "namespace": BoundedNamespace, "dict": dict}
    env.filters = {name: guarded_filter(name, function) for name, function in env.filters.items() if name != "safe"}
    env.filters["safe"] = _refuse_safe
    return env


def _refuse_safe(value: Any) -> Any:
    raise SecurityError("the safe filter is not allowed: it would switch off escaping")


@functools.cache
def environment() -> KairosSandbox:
    """Return the process-wide sandboxed environment."""
    return build_environment()


def layout_names() -> list[str]:
    """Return the on-disk templates that database templates may extend, include or import."""
    return sorted(environment().list_templates())


def _line_of(traceback: TracebackType | None, filename: str | None) -> int | None:
    """Return the template line of the innermost traceback frame from that template (Jinja rewrites them)."""
    line = None
    while traceback is not None:
        frame_file = traceback.tb_frame.f_code.co_filename
        if filename is not None and frame_file == filename:
            line = traceback.tb_lineno
        traceback = traceback.tb_next
    return line


def compile_source(source: str, name: str):
    """Compile a template held as text; `name` ends in .html for autoescaped HTML, .txt otherwise."""
    env = environment()
    try:
        code = env.compile(source, name=name, filename=name)
    except TemplateSyntaxError as error:
        raise RenderError(error.message or str(error), error.lineno) from None
    return env.template_class.from_code(env, code, env.make_globals(None), None)


def load_file(name: str):
    """Return a layout or page template from disk."""
    try:
        return environment().get_template(name)
    except TemplateNotFound:
        raise RenderError(
            f"no template {name!r} under {', '.join(f'templates/{folder}/' for folder in LAYOUT_FOLDERS)}"
        ) from None
    except TemplateSyntaxError as error:
        raise RenderError(f"{error.name or name}: {error.message}", error.lineno) from None


def render(template, context: dict) -> str:
    """Render a compiled template within the time and size limits, turning every failure into RenderError."""
    budget = Budget(
        deadline=time.monotonic() + settings.TEMPLATE_RENDER_TIMEOUT_MS / 1000,
        max_chars=settings.TEMPLATE_MAX_OUTPUT_CHARS,
    )
    token = current_budget.set(budget)
    try:
        with interrupt_after(settings.TEMPLATE_RENDER_TIMEOUT_MS / 1000):
            return _render_within(template, context, budget)
    except RenderInterrupted:
        # Delivered at the very edge of the block, after the conversion below had finished.
        raise RenderError(f"refused: rendering took longer than {settings.TEMPLATE_RENDER_TIMEOUT_MS} ms") from None
    finally:
        current_budget.reset(token)


def _render_within(template, context: dict, budget: Budget) -> str:
    parts: list[str] = []
    size = 0
    try:
        for chunk in template.generate(context):
            size += len(chunk)
            if size > budget.max_chars:
                raise RenderLimitExceeded(f"the output exceeds {budget.max_chars:,} characters")
            check_deadline()
            parts.append(chunk)
    except RenderInterrupted as error:
        raise RenderError(
            f"refused: rendering took longer than {settings.TEMPLATE_RENDER_TIMEOUT_MS} ms",
            _line_of(error.__traceback__, template.filename),
        ) from None
    except RenderLimitExceeded as error:
        raise RenderError(f"refused: {error}", _line_of(error.__traceback__, template.filename)) from None
    except SecurityError as error:
        raise RenderError(f"not allowed: {error}", _line_of(error.__traceback__, template.filename)) from None
    except UndefinedError as error:
        raise RenderError(f"unknown variable: {error}", _line_of(error.__traceback__, template.filename)) from None
    except TemplateError as error:
        raise RenderError(
            str(error), getattr(error, "lineno", None) or _line_of(error.__traceback__, template.filename)
        ) from None
    except RecursionError:
        raise RenderError("refused: calls nested too deeply") from None
    except MemoryError:
        raise RenderError("refused: the template needs too much memory") from None
    except (TypeError, ValueError, ArithmeticError, LookupError, AttributeError) as error:
        raise RenderError(
            f"{type(error).__name__}: {error}", _line_of(error.__traceback__, template.filename)
        ) from None
    return "".join(parts)


def render_string(source: str, context: dict, *, html: bool) -> str:
    """Compile and render a template held as text."""
    return render(compile_source(source, "<template>.html" if html else "<template>.txt"), context)


def render_file(name: str, context: dict) -> str:
    """Render a template from disk; HTML files are autoescaped."""
    return render(load_file(name), context)


def escape(value: Any) -> Markup:
    """Escape text for HTML, as autoescaping would."""
    return Markup.escape(value)
