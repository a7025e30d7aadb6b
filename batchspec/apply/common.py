"""Small helpers the apply steps share: short error text, indentation, file sizes, durations,
starting a deletion."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from azure.core.exceptions import HttpResponseError, ResourceNotFoundError

# A pool or job already being deleted answers a new deletion 409 PoolBeingDeleted or
# JobBeingDeleted (API definition, Pools_DeletePool and Jobs_DeleteJob; "Batch status and error
# codes" in the REST reference).
_BEING_DELETED = ("PoolBeingDeleted", "JobBeingDeleted")


def error_code(exc: HttpResponseError) -> str | None:
    return getattr(exc, "error_code", None) or getattr(getattr(exc, "error", None), "code", None)


def start_delete(delete: Callable[..., Any], resource_id: str, poll: float) -> Any | None:
    """The poller of a pool's or job's deletion; None when it is gone already or being deleted
    (by an earlier run): then wait for it to be gone."""
    try:
        return delete(resource_id, polling_interval=poll)
    except ResourceNotFoundError:
        return None
    except HttpResponseError as exc:
        if exc.status_code == 409 and error_code(exc) in _BEING_DELETED:
            return None
        raise


def short(exc: BaseException) -> str:
    text = getattr(exc, "message", None) or str(exc)
    return text.splitlines()[0][:300] if text else type(exc).__name__


def indent(text: str) -> str:
    return "\n".join("    " + line for line in text.splitlines())


def duration(info: dict[str, Any]) -> float | None:
    start, end = info.get("startTime"), info.get("endTime")
    if not start or not end:
        return None
    try:
        parse = lambda v: v if isinstance(v, datetime) else datetime.fromisoformat(v.replace("Z", "+00:00"))  # noqa: E731
        return (parse(end) - parse(start)).total_seconds()
    except (ValueError, TypeError):
        return None
