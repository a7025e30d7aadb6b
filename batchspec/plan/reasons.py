"""Reasons as English, and the one ownership rule of the plan: never touch what is not ours."""

from __future__ import annotations

from typing import Any


def was(old: Any, new: Any) -> str:
    return f"{old!r} -> {new!r}"


def clash(kind: str, rid: str, owner: str | None, name: str, clashes: list[str]) -> bool:
    """Record (and say) that an existing resource is not this spec's."""
    if owner == name:
        return False
    who = f"owned by spec {owner!r}" if owner else "not created by batchspec"
    clashes.append(f"{kind} {rid!r} already exists and is {who}")
    return True
