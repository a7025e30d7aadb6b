"""Validate a loaded spec against schemas/batchspec.schema.json, every error with its location."""

from __future__ import annotations

import difflib
import json
from functools import cache
from importlib import resources
from typing import Any

import jsonschema
from jsonschema import Draft202012Validator
from jsonschema import _keywords as _kw
from jsonschema.exceptions import ValidationError, best_match

from batchspec.errors import SpecError
from batchspec.spec.loader import Document, Path_

_TYPE_NAMES = {
    dict: "a mapping",
    list: "a list",
    str: "a string",
    bool: "a boolean",
    int: "an integer",
    float: "a number",
    type(None): "null",
}
_JSON_TYPES = {
    "object": "a mapping",
    "array": "a list",
    "string": "a string",
    "boolean": "a boolean",
    "integer": "an integer",
    "number": "a number",
    "null": "null",
}


def is_template(value: Any) -> bool:
    """Whether a string holds a Jinja2 expression or statement (checked after rendering)."""
    return isinstance(value, str) and ("{{" in value or "{%" in value)


def schema_text() -> str:
    """The JSON schema of spec files, as shipped with the package."""
    return resources.files("batchspec.spec").joinpath("batchspec.schema.json").read_text("utf-8")


@cache
def schema() -> dict[str, Any]:
    return json.loads(schema_text())


def _pattern_unless_template(validator, pattern, instance, subschema):
    if is_template(instance):
        return  # the rendered value is checked instead
    yield from _kw.pattern(validator, pattern, instance, subschema)


_Validator = jsonschema.validators.extend(Draft202012Validator, {"pattern": _pattern_unless_template})


def check(doc: Document, data: Any | None = None) -> list[SpecError]:
    """Every schema error in `data` (the document's own data by default), sorted by location."""
    validator = _Validator(schema())
    errors: list[SpecError] = []
    for error in validator.iter_errors(doc.data if data is None else data):
        errors.extend(_describe(doc, error))
    return sort_errors(errors)


def sort_errors(errors: list[SpecError]) -> list[SpecError]:
    def key(e: SpecError):
        loc = e.location
        return (
            loc.file if loc else "",
            (loc.line or 0) if loc else 0,
            (loc.column or 0) if loc else 0,
            e.field or "",
            e.message,
        )

    unique = {str(e): e for e in errors}
    return sorted(unique.values(), key=key)


def field_path(path: Path_) -> str:
    """`("job", "tasks", "resourceFiles", 0, "blob")` -> `job.tasks.resourceFiles[0].blob`."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"


def _describe(doc: Document, error: ValidationError) -> list[SpecError]:
    path = tuple(error.absolute_path)
    kind = error.validator
    sub = error.schema if isinstance(error.schema, dict) else {}

    def at(message: str, p: Path_ = path, *, key: bool = False, hint: str | None = None) -> SpecError:
        return SpecError(message, location=doc.location(p, key=key), field=field_path(p), hint=hint)

    if "propertyNames" in error.schema_path:
        name = error.instance
        names_schema = _subschema_at(error.schema_path, "propertyNames")
        message = names_schema.get("x-error") or error.message
        return [at(f"invalid name {name!r}: {message}", (*path, name), key=True)]
    if kind in ("additionalProperties", "unevaluatedProperties"):
        known = sorted(_known_keys(sub))
        extra = [k for k in error.instance if k not in known]
        return [at(f"unknown field {k!r}", (*path, k), key=True, hint=_did_you_mean(k, known)) for k in extra]
    if kind == "required":
        missing = [k for k in error.validator_value if k not in error.instance]
        return [at(f"missing required field {k!r}", path, key=True) for k in missing]
    if kind == "type":
        expected = error.validator_value
        names = [_JSON_TYPES[t] for t in ([expected] if isinstance(expected, str) else expected)]
        got = _TYPE_NAMES.get(type(error.instance), type(error.instance).__name__)
        shown = "" if isinstance(error.instance, (dict, list)) else f" {error.instance!r}"
        return [at(f"expected {' or '.join(names)}, got {got}{shown}")]
    if kind in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        op = {"minimum": ">=", "maximum": "<=", "exclusiveMinimum": ">", "exclusiveMaximum": "<"}[kind]
        return [at(f"must be {op} {error.validator_value}, got {error.instance!r}")]
    if kind == "pattern":
        message = sub.get("x-error") or f"must match {error.validator_value}"
        return [at(f"invalid value {error.instance!r}: {message}")]
    if kind == "enum":
        options = ", ".join(str(o) for o in error.validator_value)
        hint = _did_you_mean(str(error.instance), [str(o) for o in error.validator_value])
        return [at(f"must be one of {options}; got {error.instance!r}", hint=hint)]
    if kind == "minLength" and error.validator_value == 1:
        return [at("must not be empty")]
    if kind == "minItems":
        return [at(f"must have at least {error.validator_value} item(s)")]
    if kind in ("minProperties", "maxProperties") and sub.get("x-error"):
        return [at(sub["x-error"])]
    if kind == "not" and sub.get("not", {}).get("const") is not None:
        return [at(sub.get("x-error") or f"must not be {sub['not']['const']!r}")]
    if kind == "anyOf" and error.context:
        return [d for e in _closest(error) for d in _describe(doc, e)]
    return [at(error.message)]


def _closest(error: ValidationError) -> list[ValidationError]:
    """Of an anyOf's failed branches, the errors of the one whose type matches the value (all
    of them: a list of stages can have a mistake in each), else the best match."""
    same_type = [e for e in error.context if e.relative_path or e.validator != "type"]
    best = best_match(same_type or error.context)
    if not same_type:
        return [best]
    branch = best.relative_schema_path[0]
    return [e for e in same_type if e.relative_schema_path[0] == branch]


def _subschema_at(schema_path, keyword: str) -> dict[str, Any]:
    node: Any = schema()
    for part in schema_path:
        if isinstance(node, dict) and "$ref" in node and part not in node:
            node = _resolve(node["$ref"])
        node = node[part]
        if part == keyword:
            break
    return node if isinstance(node, dict) else {}


def _resolve(ref: str) -> dict[str, Any]:
    node: Any = schema()
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    return node


def _known_keys(sub: dict[str, Any]) -> set[str]:
    keys = set(sub.get("properties", {}))
    for part in sub.get("allOf", []):
        keys |= _known_keys(_resolve(part["$ref"]) if "$ref" in part else part)
    return keys


def _did_you_mean(word: str, options: list[str]) -> str | None:
    lowered = {o.lower(): o for o in options}
    if word.lower() in lowered:
        return f"did you mean {lowered[word.lower()]!r}?"
    match = difflib.get_close_matches(word.lower(), list(lowered), n=1, cutoff=0.6)
    return f"did you mean {lowered[match[0]]!r}?" if match else None
