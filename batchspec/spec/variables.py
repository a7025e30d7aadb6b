"""Spec variables: declared defaults, overridden by `--var name=value` on the command line."""

from __future__ import annotations

import difflib
import re
from typing import Any

import yaml

from batchspec.errors import UsageError

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def parse_overrides(pairs: tuple[str, ...] | list[str]) -> dict[str, Any]:
    """Parse `name=value` pairs. Values are read as YAML scalars: `5` is a number, `x y` text."""
    overrides: dict[str, Any] = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        if not sep:
            raise UsageError(f"malformed --var {pair!r}: expected name=value")
        name = name.strip()
        if not _NAME.match(name):
            raise UsageError(
                f"malformed --var {pair!r}: {name!r} is not a variable name "
                "(a letter or underscore, then letters, digits, underscores)"
            )
        if name in overrides:
            raise UsageError(f"--var {name} is given twice")
        overrides[name] = _scalar(text)
    return overrides


def _scalar(text: str) -> Any:
    try:
        value = yaml.safe_load(text) if text.strip() else text
    except yaml.YAMLError:
        return text
    # Only plain scalars are converted; anything else (a mapping, a date) stays the text given.
    return value if isinstance(value, (str, int, float, bool)) else text


def resolve(declared: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """The declared variables with the overrides applied; overriding an undeclared one is an error."""
    for name in overrides:
        if name not in declared:
            close = difflib.get_close_matches(name, list(declared), n=1)
            hint = (
                f"did you mean {close[0]!r}?"
                if close
                else (f"declared: {', '.join(sorted(declared))}" if declared else "the spec declares no vars")
            )
            raise UsageError(f"--var {name}: the spec declares no variable {name!r}", hint=hint)
    return {**declared, **overrides}
