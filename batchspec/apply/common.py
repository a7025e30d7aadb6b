"""Small helpers the apply steps share: short error text, indentation, file sizes, durations."""

from __future__ import annotations

from datetime import datetime
from typing import Any


def short(exc: BaseException) -> str:
    text = getattr(exc, "message", None) or str(exc)
    return text.splitlines()[0][:300] if text else type(exc).__name__


def indent(text: str) -> str:
    return "\n".join("    " + line for line in text.splitlines())


def content_length(props: Any) -> int | None:
    if props is None:
        return None
    for attr in ("content_length", "ocp_batch_file_size"):
        value = getattr(props, attr, None)
        if value is not None:
            return int(value)
    if isinstance(props, dict):
        value = props.get("Content-Length") or props.get("content-length")
        return int(value) if value is not None else None
    return None


def duration(info: dict[str, Any]) -> float | None:
    start, end = info.get("startTime"), info.get("endTime")
    if not start or not end:
        return None
    try:
        parse = lambda v: v if isinstance(v, datetime) else datetime.fromisoformat(v.replace("Z", "+00:00"))  # noqa: E731
        return (parse(end) - parse(start)).total_seconds()
    except (ValueError, TypeError):
        return None
