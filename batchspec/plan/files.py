"""Saved plans: `plan --out FILE` writes the plan's records with digests of the desired and live
state it was made from; `apply FILE` plans again and refuses if either digest or the changes moved.
"""

from __future__ import annotations

import json
from pathlib import Path

from batchspec.errors import PlanError, UsageError
from batchspec.model import DesiredState
from batchspec.plan.records import PLAN_FORMAT, Plan
from batchspec.spec.build import build


def is_plan_file(path: str) -> bool:
    """A saved plan is named *.plan / *.json, or is JSON that names the plan format."""
    p = Path(path)
    if not p.is_file():
        return False
    if p.suffix in (".plan", ".json"):
        return True
    with p.open("rb") as f:
        head = f.read(4096).lstrip()
    return head.startswith(b"{") and PLAN_FORMAT.encode() in head


def load(path: str) -> Plan:
    try:
        data = json.loads(Path(path).read_text("utf-8"))
        if data.get("format") != PLAN_FORMAT:
            raise ValueError(f"format {data.get('format')!r} is not {PLAN_FORMAT}")
        return Plan.from_file(data)
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise UsageError(
            f"{path}: not a readable batchspec plan ({exc})",
            hint="make one with `batchspec plan SPEC --out FILE`",
        ) from None


def save(p: Plan, path: str) -> None:
    Path(path).write_text(json.dumps(p.to_file(), indent=2) + "\n", encoding="utf-8")


def desired_for(saved: Plan) -> DesiredState:
    if not Path(saved.spec).is_file():
        raise PlanError(
            f"the plan's spec {saved.spec} is gone (run apply from the folder the plan was made in)"
        )
    return build(saved.spec, saved.vars)


def check(saved: Plan, fresh: Plan) -> None:
    """Refuse a saved plan made from another spec, an edited spec, or live state that moved."""
    if saved.name != fresh.name:
        raise PlanError(f"the saved plan is for spec {saved.name!r}, not {fresh.name!r}")
    if saved.desired_digest != fresh.desired_digest:
        raise PlanError("the spec or its files changed since the plan was saved; run plan again")
    if saved.live_digest != fresh.live_digest or [c.to_dict() for c in saved.changes] != [
        c.to_dict() for c in fresh.changes
    ]:
        raise PlanError("the live state changed since the plan was saved; run plan again")
