"""Jinja2 templating of spec values: sandboxed, strict about undefined names, shell-safe."""

from __future__ import annotations

import difflib
import re
import shlex
from typing import Any

import jinja2

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

    def render(self, value: Any, path: Path_, context: dict[str, Any]) -> Any:
        """`value` with every template string in it rendered; raises SpecError at its location."""
        if isinstance(value, dict):
            return {k: self.render(v, (*path, k), context) for k, v in value.items()}
        if isinstance(value, list):
            return [self.render(v, (*path, i), context) for i, v in enumerate(value)]
        if not is_template(value):
            return value
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
