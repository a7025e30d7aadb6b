"""The referee of the emulator's stand-in for Azure Resource Manager (emulator/management.py).

The Batch data plane's answers are held to its vendored API definition (definition.py); these
answers are held to the models of azure-mgmt-batch, which Microsoft generates from the
management plane's definition: every property must be one the model names (closed, as
definition.py closes objects), of the model's type, and an error must be Resource Manager's
`{"error": {"code", "message"}}`.
"""

from __future__ import annotations

import datetime
import enum
import re
import types
import typing
import urllib.parse
from functools import cache
from typing import Any

from azure.mgmt.batch import models

_PROVIDER = r"/providers/Microsoft\.Batch/"
# The reads the stand-in answers: (path, the model of the answer, whether it is a listing).
_OPERATIONS = (
    (
        re.compile(rf"^/subscriptions/[^/]+/resourceGroups/[^/]+{_PROVIDER}batchAccounts/[^/]+$", re.I),
        models.BatchAccount,
        False,
    ),
    (
        re.compile(rf"^/subscriptions/[^/]+{_PROVIDER}locations/[^/]+/virtualMachineSkus$", re.I),
        models.SupportedSku,
        True,
    ),
)


def is_management(url: str) -> bool:
    return urllib.parse.urlsplit(url).path.lower().startswith("/subscriptions/")


def response_errors(method: str, url: str, status: int, body: Any) -> list[str]:
    """What is wrong with an answer of the stand-in; empty when the SDK's models take it."""
    path = urllib.parse.urlsplit(url).path.rstrip("/")
    label = f"{method} {path} {status}"
    if status >= 400:
        error = body.get("error") if isinstance(body, dict) and set(body) == {"error"} else None
        if not (isinstance(error, dict) and all(isinstance(error.get(k), str) for k in ("code", "message"))):
            return [f"{label}: not Resource Manager's error shape ({{'error': {{'code', 'message'}}}})"]
        return []
    for pattern, model, listing in _OPERATIONS:
        if method == "GET" and pattern.match(path):
            if not listing:
                return _errors(model, body, label)
            if not isinstance(body, dict) or not isinstance(body.get("value"), list):
                return [f"{label}: a listing is {{'value': [...]}}"]
            extra = [
                f"{label}/{k}: not a property of a listing" for k in body if k not in ("value", "nextLink")
            ]
            return extra + [
                e for i, item in enumerate(body["value"]) for e in _errors(model, item, f"{label}/{i}")
            ]
    return [f"{label}: the stand-in has no such operation"]


@cache
def _fields(model: type) -> dict[str, Any]:
    """A model's properties by their JSON names, with their types."""
    hints = typing.get_type_hints(model, globalns={"_models": models, "datetime": datetime})
    model({})  # the SDK maps attributes to JSON names when the first instance is made
    fields = getattr(model, "_attr_to_rest_field", None)
    assert fields, f"azure-mgmt-batch: {model.__name__} no longer maps its fields (tests/support/arm.py)"
    return {field._rest_name: hints[attr] for attr, field in fields.items()}


def _errors(model: type, value: Any, where: str) -> list[str]:
    if not isinstance(value, dict):
        return [f"{where}: an object ({model.__name__}) is expected"]
    fields = _fields(model)
    found = []
    for key, item in value.items():
        if key not in fields:
            found.append(f"{where}/{key}: not a property of {model.__name__}")
        else:
            found += _type_errors(fields[key], item, f"{where}/{key}")
    return found


def _type_errors(hint: Any, value: Any, where: str) -> list[str]:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return []
        tries = [_type_errors(a, value, where) for a in args if a is not type(None)]
        return [] if any(not t for t in tries) else tries[0]
    if origin is list:
        if not isinstance(value, list):
            return [f"{where}: a list is expected"]
        return [e for i, item in enumerate(value) for e in _type_errors(args[0], item, f"{where}/{i}")]
    if origin is dict:
        return [] if isinstance(value, dict) else [f"{where}: an object is expected"]
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return [] if isinstance(value, str) else [f"{where}: a string ({hint.__name__}) is expected"]
    if hint is datetime.datetime:
        try:
            datetime.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
            return []
        except ValueError:
            return [f"{where}: a date-time is expected"]
    if hint in (int, float):
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        return (
            [] if ok and (hint is float or isinstance(value, int)) else [f"{where}: {hint.__name__} expected"]
        )
    if hint in (str, bool):
        return [] if isinstance(value, hint) else [f"{where}: {hint.__name__} expected"]
    if isinstance(hint, type) and hint.__module__.startswith(models.__name__):
        return _errors(hint, value, where)
    return []  # Any, or a type the models do not constrain further
