"""Check a template when it is saved, so a marketer sees every problem with its line, not a failed send.

Refused: syntax errors, unknown variables (against the documented context, then by rendering
for a sample customer), `|safe`, `{% autoescape %}` blocks, and extending, including or
importing anything but the registered layouts.
"""

from dataclasses import dataclass

from jinja2 import TemplateSyntaxError, meta, nodes
from jinja2.exceptions import TemplateAssertionError

from campaigns.compiler import CompileError, compile_sources
from campaigns.context import CONTEXT_DOCUMENTATION, sample_context
from campaigns.rendering import RenderError, compile_source, environment, layout_names, render


@dataclass(frozen=True)
class Problem:
    message: str
    line: int | None = None

    def __str__(self) -> str:
        return f"Line {self.line}: {self.message}" if self.line else self.message


def _first_line(tree: nodes.Template, node_type: type, predicate=lambda node: True) -> int | None:
    for node in tree.find_all(node_type):
        if predicate(node):
            return node.lineno
    return None


def _construct_problems(tree: nodes.Template) -> list[Problem]:
    problems = []
    for node in tree.find_all(nodes.Filter):
        if node.name == "safe":
            problems.append(Problem("the |safe filter is not allowed: it would switch off escaping", node.lineno))
    for node in tree.find_all((nodes.ScopedEvalContextModifier, nodes.EvalContextModifier)):
        problems.append(Problem("{% autoescape %} blocks are not allowed: escaping stays on", node.lineno))
    layouts = set(layout_names())
    for node in tree.find_all((nodes.Extends, nodes.Include, nodes.FromImport, nodes.Import)):
        verb = {nodes.Extends: "extend", nodes.Include: "include"}.get(type(node), "import")
        if isinstance(node, nodes.Import):
            problems.append(
                Problem('{% import … as … %} is not supported; use {% from "layout" import macro %}', node.lineno)
            )
            continue
        name = node.template.value if isinstance(node.template, nodes.Const) else None
        if name not in layouts:
            shown = repr(name) if name is not None else "a computed name"
            problems.append(
                Problem(
                    f"templates may {verb} only the registered layouts ({', '.join(sorted(layouts))}); {shown} is not one",
                    node.lineno,
                )
            )
    return problems


def _unknown_variable_problems(tree: nodes.Template) -> list[Problem]:
    known = (
        set(CONTEXT_DOCUMENTATION)
        | set(environment().globals)
        | {"loop", "self", "super", "varargs", "kwargs", "caller"}
    )
    # Names a template defines for itself: blocks see a child's top-level imports, macros and sets.
    for node in tree.find_all(nodes.FromImport):
        known.update(name[1] if isinstance(name, tuple) else name for name in node.names)
    known.update(node.name for node in tree.find_all(nodes.Macro))
    known.update(node.name for node in tree.find_all(nodes.Name) if node.ctx in {"store", "param"})
    problems = []
    for name in sorted(meta.find_undeclared_variables(tree) - known):
        line = _first_line(tree, nodes.Name, lambda node, name=name: node.name == name and node.ctx == "load")
        problems.append(
            Problem(f"unknown variable {name!r}; the context has {', '.join(sorted(CONTEXT_DOCUMENTATION))}", line)
        )
    return problems


def _shows_unsubscribe_link(tree: nodes.Template) -> bool:
    return any(
        isinstance(node.node, nodes.Name) and node.node.name == "links" and node.attr == "unsubscribe"
        for node in tree.find_all(nodes.Getattr)
    )


def lint_template(source: str, *, html: bool, require_unsubscribe: bool = False) -> list[Problem]:
    """Return every problem in a template source; an empty list means it may be saved."""
    env = environment()
    name = "<template>.html" if html else "<template>.txt"
    try:
        tree = env.parse(source, name=name)
    except TemplateSyntaxError as error:
        return [Problem(f"syntax error: {error.message}", error.lineno)]
    problems = _construct_problems(tree) + _unknown_variable_problems(tree)
    if problems:
        return problems
    try:
        env.compile(source, name=name, filename=name)
    except (TemplateAssertionError, TemplateSyntaxError) as error:
        return [Problem(error.message or str(error), error.lineno)]
    if html:
        try:
            compiled = compile_sources(source)
        except CompileError as error:
            return [Problem(error.message, error.line)]
        # What recipients render is the compiled source: it must pass the same checks as what was written.
        for compiled_source, compiled_name in ((compiled.html, "<compiled>.html"), (compiled.text, "<compiled>.txt")):
            for problem in _construct_problems(env.parse(compiled_source, name=compiled_name)):
                problems.append(Problem(f"once layouts are written in and CSS inlined: {problem.message}"))
        if problems:
            return problems
        if require_unsubscribe and not _shows_unsubscribe_link(env.parse(compiled.html)):
            problems.append(
                Problem(
                    'every marketing e-mail must show the unsubscribe link: extend "emails/base.html" or print {{ links.unsubscribe }}'
                )
            )
    context = sample_context()
    context["subject"] = "Sample subject"
    try:
        render(compile_source(source, name), context)
    except RenderError as error:
        problems.append(Problem(f"with a sample customer: {error.message}", error.line))
        return problems
    if html:
        # What recipients render is the compiled source: it must render too.
        for compiled_source, compiled_name in ((compiled.html, "<compiled>.html"), (compiled.text, "<compiled>.txt")):
            try:
                render(compile_source(compiled_source, compiled_name), context)
            except RenderError as error:
                problems.append(Problem(f"once layouts are written in and CSS inlined, it fails: {error.message}"))
    return problems
