"""The Azure Batch API definition (tests/contract/definition/BatchService.json) as a referee.

`request_errors` checks a request the way the service reads it: the operation must exist, and its
JSON body must match the operation's body schema with no property the definition does not name
and no read-only property (the service sets those). Objects are closed here although the
document leaves them open: a property the definition does not name is a typo or a guess, and the
service either refuses it or silently drops it.

`response_errors` checks an answer the same way: a status code the operation declares (an error
status under its `default`, BatchError), and a body that matches that response's schema, closed,
with the types, formats, enums and required properties of the definition.
"""

from __future__ import annotations

import copy
import re
import urllib.parse
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
from jsonschema import Draft4Validator

DEFINITION = Path(__file__).resolve().parent.parent / "contract" / "definition" / "BatchService.json"
_DURATION = re.compile(
    r"^-?P(?!$)(\d+(\.\d+)?Y)?(\d+(\.\d+)?M)?(\d+(\.\d+)?W)?(\d+(\.\d+)?D)?(T(?=\d)(\d+(\.\d+)?H)?(\d+(\.\d+)?M)?(\d+(\.\d+)?S)?)?$"
)


@cache
def document() -> dict[str, Any]:
    import json

    return json.loads(DEFINITION.read_text("utf-8"))


@dataclass(frozen=True)
class Operation:
    id: str
    method: str
    template: str
    pattern: re.Pattern
    body: str | None  # the definition name of the request body, if any
    deprecated: bool
    responses: dict[str, Any]  # status code (or "default") -> the definition's response

    @property
    def literal_segments(self) -> int:
        return sum(1 for s in self.template.split("/") if s and not s.startswith("{"))


@cache
def operations() -> tuple[Operation, ...]:
    found = []
    for template, item in document()["paths"].items():
        regex = re.sub(r"\\\{filePath\\\}", "(?P<filePath>.+)", re.escape(template))
        regex = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", regex)
        for method, op in item.items():
            if not isinstance(op, dict) or "operationId" not in op:
                continue
            body = next(
                (
                    p["schema"]["$ref"].rsplit("/", 1)[1]
                    for p in op.get("parameters", [])
                    if p.get("in") == "body"
                ),
                None,
            )
            found.append(
                Operation(
                    op["operationId"],
                    method.upper(),
                    template,
                    re.compile(f"^{regex}$"),
                    body,
                    bool(op.get("deprecated")),
                    op.get("responses", {}),
                )
            )
    # Literal segments win over parameters, as a router matches them.
    return tuple(sorted(found, key=lambda o: -o.literal_segments))


def operation(method: str, url: str) -> Operation | None:
    """The operation a request is for, by method and path (the query and host are ignored)."""
    path = urllib.parse.urlsplit(url).path
    for op in operations():
        if op.method == method.upper() and op.pattern.match(path):
            return op
    return None


def _closed(schema: Any) -> Any:
    if isinstance(schema, dict):
        out = {k: _closed(v) for k, v in schema.items()}
        if "properties" in out and "additionalProperties" not in out:
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [_closed(v) for v in schema]
    return schema


def _read_only_in_request(validator, read_only, instance, schema):
    if read_only:
        yield jsonschema.ValidationError("is read-only: the service sets it, a request may not")


_formats = jsonschema.FormatChecker()


@_formats.checks("duration")
def _is_duration(value: object) -> bool:
    return not isinstance(value, str) or bool(_DURATION.match(value))


@_formats.checks("date-time", raises=ValueError)
def _is_date_time(value: object) -> bool:
    if isinstance(value, str):
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    return True


@_formats.checks("int32")
def _is_int32(value: object) -> bool:
    return not isinstance(value, int) or -(2**31) <= value < 2**31


_RequestValidator = jsonschema.validators.extend(Draft4Validator, {"readOnly": _read_only_in_request})


@cache
def _definitions() -> dict[str, Any]:
    return _closed(copy.deepcopy(document()["definitions"]))


@cache
def _request_validator(name: str) -> Draft4Validator:
    schema = {"$ref": f"#/definitions/{name}", "definitions": _definitions()}
    return _RequestValidator(schema, format_checker=_formats)


def _where(error: jsonschema.ValidationError) -> str:
    return "/".join(str(p) for p in error.absolute_path) or "(body)"


def request_errors(method: str, url: str, body: Any) -> list[str]:
    """What is wrong with a request by the definition; empty when it conforms."""
    op = operation(method, url)
    if op is None:
        return [f"{method} {urllib.parse.urlsplit(url).path}: no operation of the definition"]
    if op.body is None:
        return [] if body in (None, b"", "") else [f"{op.id}: takes no body"]
    if body is None:
        return [f"{op.id}: the body ({op.body}) is missing"]
    return [
        f"{op.id} {_where(e)}: {e.message}"
        for e in sorted(_request_validator(op.body).iter_errors(body), key=lambda e: list(e.absolute_path))
    ]


# Batch answers in OData JSON with minimal metadata (the REST reference's media type for every
# operation: "application/json; odata=minimalmetadata"), which puts `odata.metadata` at the top
# of every JSON body; the definition leaves that envelope out.
_ENVELOPE = ("odata.metadata",)


def _secret_in_response(validator, secret, instance, schema):
    # AutoRest's x-ms-secret: "the property is a secret and will not be returned by the service"
    # (autorest docs, extensions/readme.md#x-ms-secret). UserAccount.password is one.
    if secret:
        yield jsonschema.ValidationError("is a secret (x-ms-secret): the service never returns it")


_ResponseValidator = jsonschema.validators.extend(Draft4Validator, {"x-ms-secret": _secret_in_response})


@cache
def _response_definitions() -> dict[str, Any]:
    """Closed, with secrets no longer required: an answer leaves them out."""
    found = copy.deepcopy(_definitions())
    for schema in found.values():
        props = schema.get("properties", {})
        secrets = {name for name, p in props.items() if isinstance(p, dict) and p.get("x-ms-secret")}
        if secrets and "required" in schema:
            schema["required"] = [name for name in schema["required"] if name not in secrets] or None
            if schema["required"] is None:
                del schema["required"]
    return found


@cache
def _response_validator(ref: str) -> Draft4Validator:
    schema = {"$ref": ref, "definitions": _response_definitions()}
    return _ResponseValidator(schema, format_checker=_formats)


def _schema_errors(label: str, schema: dict | None, body: Any, selected: set[str] | None = None) -> list[str]:
    if schema is None or schema.get("type") == "file":  # no body, or file content: not JSON
        return [] if schema is not None or body is None else [f"{label}: has a body; the definition has none"]
    if body is None:
        return [f"{label}: no JSON body; the definition has one ({schema.get('$ref', schema)})"]
    if isinstance(body, dict):
        body = {k: v for k, v in body.items() if k not in _ENVELOPE}
    validator = _response_validator(schema["$ref"])
    errors = sorted(validator.iter_errors(body), key=lambda e: list(e.absolute_path))
    if selected is not None:
        errors = [e for e in errors if not (e.validator == "required" and _missing(e) not in selected)]
    return [f"{label} {_where(e)}: {e.message}"[:400] for e in errors]


def _missing(error: jsonschema.ValidationError) -> str:
    """The property a `required` error names."""
    found = re.match(r"'(.+)' is a required property", error.message)
    return found.group(1) if found else ""


def response_errors(method: str, url: str, status: int, body: Any, *, conditional: bool = False) -> list[str]:
    """What is wrong with an answer by the definition; empty when it conforms. `body` is the
    parsed JSON body, None when there is none or it is not JSON; `conditional` says the request
    carried If-None-Match or If-Modified-Since (a 304 is then an answer too)."""
    op = operation(method, url)
    if op is None:  # not an operation: the service's error, in its shape
        label = f"{method} {urllib.parse.urlsplit(url).path} {status}"
        if status < 400:
            return [f"{label}: no operation of the definition has this path"]
        return _schema_errors(label, {"$ref": "#/definitions/BatchError"}, body)
    label = f"{op.id} {status}"
    declared = op.responses.get(str(status))
    if declared is None and status == 304 and conditional and method in ("GET", "HEAD"):
        return [] if body is None else [f"{label}: a 304 has no body"]
    if declared is None and status >= 400:
        declared = op.responses.get("default")
    if declared is None:
        return [f"{label}: the definition declares {sorted(op.responses)} for this operation"]
    if method == "HEAD":  # HTTP: an answer to HEAD has no body, whatever its schema says
        return [] if body is None else [f"{label}: an answer to HEAD has no body"]
    return _schema_errors(label, declared.get("schema"), body, _selected(url))


def _selected(url: str) -> set[str] | None:
    """The top-level properties a `$select` asks for (None: every property). The service leaves
    out what was not selected, required or not ("$select ... returns only the properties listed")."""
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)
    text = (query.get("$select") or [""])[0]
    return {p.strip().split("/")[0] for p in text.split(",") if p.strip()} if text else None
