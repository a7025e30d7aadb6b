"""Jinja2 templating of spec values: sandboxed, strict about undefined names, shell-safe."""

from __future__ import annotations

import difflib
import re
import shlex
from collections.abc import Callable
from typing import Any

import jinja2
from jinja2 import nodes

from batchspec.errors import SpecError
from batchspec.spec.bounded import BoundedEnvironment, TemplateBound
from batchspec.spec.loader import Document, Path_
from batchspec.spec.schema import field_path, is_template


def shquote(value: Any) -> str:
    """Quote a value as one shell word, so a file name reaches the command as plain text."""
    return shlex.quote(str(value))


class Renderer:
    """Renders the string values of a document; templates are compiled once and reused."""

    def __init__(self, doc: Document):
        self.doc = doc
        self.env = BoundedEnvironment(
            undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=True
        )
        self.env.filters["shquote"] = shquote
        self._compiled: dict[str, jinja2.Template] = {}
        self._printers: dict[str, Printer | None] = {}

    def render(self, value: Any, path: Path_, context: dict[str, Any]) -> Any:
        """`value` with every template string in it rendered; raises SpecError at its location."""
        if isinstance(value, dict):
            return {k: self.render(v, (*path, k), context) for k, v in value.items()}
        if isinstance(value, list):
            return [self.render(v, (*path, i), context) for i, v in enumerate(value)]
        if not is_template(value):
            return value
        if value not in self._printers:
            self._printers[value] = _printer(self.env, value)
        printer = self._printers[value]
        if printer is not None:
            text = self.env.render_printer(printer, context)
            if text is not None:
                return text
        try:
            template = self._compiled.get(value)
            if template is None:
                template = self._compiled[value] = self.env.from_string(value)
            return self.env.render(template, context)
        except TemplateBound as exc:
            raise self._error(
                f"template exceeds a bound: {exc}",
                path,
                value,
                None,
                hint="templates must stay small and quick",
            ) from None
        except jinja2.TemplateSyntaxError as exc:
            raise self._error(f"template syntax error: {exc.message}", path, value, exc.lineno) from None
        except jinja2.UndefinedError as exc:
            raise self._error(
                f"undefined in template: {exc.message}",
                path,
                value,
                None,
                hint=_suggest(exc.message or "", context),
            ) from None
        except jinja2.exceptions.SecurityError as exc:
            raise self._error(f"not allowed in a template: {exc}", path, value, None) from None
        except Exception as exc:  # a filter or expression failing on this item's values
            raise self._error(f"template error: {type(exc).__name__}: {exc}", path, value, None) from None

    def _error(
        self, message: str, path: Path_, source: str, lineno: int | None, hint: str | None = None
    ) -> SpecError:
        if lineno and "\n" in source.strip():
            message += f" (line {lineno} of the template)"
        return SpecError(message, location=self.doc.location(path), field=field_path(path), hint=hint)


Printer = Callable[[dict[str, Any]], str]


class _Unusual(Exception):
    """A printer met what only Jinja itself answers for (an undefined name, say)."""


def _printer(env: jinja2.Environment, source: str) -> Printer | None:
    """`source` as a plain function, if all it does is print values: text, names, attributes
    and items of them, through filters given constants (`t-{{ item.stem }}`,
    `{{ item.name | shquote }}`). Jinja makes a context for every render (~16 us of a ~25 us
    render); a 100,000-task spec renders such templates 200,000 times. The function does what
    Jinja's compiled template does with the same sandboxed `getattr`/`getitem` and the same
    (bounded) filters; it raises _Unusual for anything else (an undefined name or attribute, an
    error), and the caller renders with Jinja, which answers as it always did. None for other
    templates, and for any that does not parse (Jinja reports that)."""
    try:
        body = env.parse(source).body
    except jinja2.TemplateSyntaxError:
        return None
    if len(body) != 1 or not isinstance(body[0], nodes.Output):
        return None
    parts = []
    for node in body[0].nodes:
        if isinstance(node, nodes.TemplateData):
            parts.append(lambda _, text=node.data: text)
        else:
            value = _expression(env, node)
            if value is None:
                return None
            parts.append(lambda context, value=value: str(value(context)))
    return lambda context: "".join([part(context) for part in parts])


def _expression(env: jinja2.Environment, node: nodes.Node) -> Callable[[dict[str, Any]], Any] | None:
    def defined(value: Any) -> Any:
        if isinstance(value, jinja2.Undefined):
            raise _Unusual
        return value

    if isinstance(node, nodes.Const):
        return lambda _, value=node.value: value
    if isinstance(node, nodes.Name) and node.ctx == "load":

        def name(context: dict[str, Any], key: str = node.name) -> Any:
            if key not in context:
                raise _Unusual
            return context[key]

        return name
    if not isinstance(node, (nodes.Getattr, nodes.Getitem, nodes.Filter)):
        return None
    inner = _expression(env, node.node)
    if inner is None:
        return None
    if isinstance(node, nodes.Getattr):
        attr = node.attr
        if hasattr(dict, attr):
            return lambda context: defined(env.getattr(inner(context), attr))

        def item_or_attribute(context: dict[str, Any]) -> Any:
            obj = inner(context)
            if type(obj) is dict:  # no such dict attribute: the sandbox's getattr takes the item
                if attr not in obj:
                    raise _Unusual
                return obj[attr]
            return defined(env.getattr(obj, attr))

        return item_or_attribute
    if isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const):
        return lambda context: defined(env.getitem(inner(context), node.arg.value))
    if isinstance(node, nodes.Filter) and node.dyn_args is None and node.dyn_kwargs is None:
        func = env.filters.get(node.name)
        consts = [*node.args, *(k.value for k in node.kwargs)]
        if (
            func is None
            or getattr(func, "jinja_pass_arg", None)
            or not all(isinstance(c, nodes.Const) for c in consts)
        ):
            return None
        args = [a.value for a in node.args]
        kwargs = {k.key: k.value.value for k in node.kwargs}
        return lambda context: defined(func(inner(context), *args, **kwargs))
    return None


def _suggest(message: str, context: dict[str, Any]) -> str | None:
    match = re.search(r"has no attribute '([^']+)'|'([^']+)' is undefined", message)
    if not match:
        return None
    name = match.group(1) or match.group(2)
    # Short names map to what the user would write: numwords -> vars.numwords.
    known: dict[str, str] = {k: k for k in context}
    for key, value in context.items():
        if isinstance(value, dict):
            known.update({k: f"{key}.{k}" for k in value if k not in known})
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    if close:
        return f"did you mean {known[close[0]]!r}?"
    dotted = sorted(v for v in known.values() if "." in v)
    return f"defined: {', '.join(dotted)}" if dotted else None
