"""The plan as data: an action per resource, with its reasons and, for a pool, how to apply it.

Changes are records, as Terraform's plans are; `ui` renders them, `apply` executes them, and a
saved plan is these records serialised (`plan.files`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

PLAN_FORMAT = "batchspec-plan/1"


class Action(str, Enum):
    CREATE = "create"
    UPDATE = "update"
    REPLACE = "replace"
    DELETE = "delete"
    RERUN = "rerun"

    @property
    def symbol(self) -> str:
        return {"create": "+", "update": "~", "replace": "-/+", "delete": "-", "rerun": "~"}[self.value]


@dataclass(frozen=True)
class PoolHow:
    """How a pool change is applied: the agent SKU to create it with, and what to update in place."""

    node_agent_sku_id: str | None = None
    resize: bool = False
    properties: bool = False  # replace the start task (with fresh storage access) and metadata
    reboot: bool = False  # so that nodes run the new start task
    autoscale: bool = False  # enable, or change the formula or interval
    disable_autoscale: bool = False

    _KEYS = (
        ("nodeAgentSkuId", "node_agent_sku_id"),
        ("resize", "resize"),
        ("properties", "properties"),
        ("reboot", "reboot"),
        ("autoscale", "autoscale"),
        ("disableAutoscale", "disable_autoscale"),
    )

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, a) for k, a in self._KEYS if getattr(self, a)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PoolHow:
        return cls(**{a: d[k] for k, a in cls._KEYS if k in d})


@dataclass(frozen=True, slots=True)
class Size:
    """How much a blob upload or a download moves: bytes of a blob, or a count of blobs."""

    bytes: int | None = None
    blobs: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in (("size", self.bytes), ("blobs", self.blobs)) if v is not None}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Size:
        return cls(bytes=d.get("size"), blobs=d.get("blobs"))


Details = PoolHow | Size | None


@dataclass(frozen=True, slots=True)  # slots: a plan can hold a change per task and per blob
class Change:
    """One thing to do to one resource, and why. `details` tells apply how (e.g. resize only)."""

    kind: str  # container | blob | pool | job | task | download
    id: str
    action: Action
    reasons: tuple[str, ...] = ()
    details: Details = field(default=None, compare=False, hash=False)

    def to_dict(self) -> dict[str, Any]:
        d = {"kind": self.kind, "id": self.id, "action": self.action.value, "reasons": list(self.reasons)}
        details = self.details.to_dict() if self.details else {}
        return {**d, "details": details} if details else d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Change:
        raw = d.get("details") or {}
        details: Details = None
        if raw:
            details = PoolHow.from_dict(raw) if d["kind"] == "pool" else Size.from_dict(raw)
        return cls(
            kind=d["kind"],
            id=d["id"],
            action=Action(d["action"]),
            reasons=tuple(d.get("reasons", ())),
            details=details,
        )

    @property
    def how(self) -> PoolHow:
        """A pool change's PoolHow (an empty one for a change that has none)."""
        return self.details if isinstance(self.details, PoolHow) else PoolHow()


@dataclass(frozen=True)
class Check:
    """A preflight finding: `error` stops apply before it creates anything, `warning` informs,
    `note` says what was not checked and how to have it checked."""

    level: str
    message: str


@dataclass
class Plan:
    name: str
    spec: str
    changes: list[Change]
    vars: dict[str, Any] = field(default_factory=dict)
    desired_digest: str = ""
    live_digest: str = ""
    pending_tasks: int = 0  # tasks still active or running: apply waits for them
    notes: list[str] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)  # the preflight's findings (preflight.py)
    tasks_digest: str = ""  # the spec's tasks (stamps.TasksDigest): apply stamps the job with it
    tasks_stamp: str | None = None  # the job's TASKS_STAMP as read (None: none, or a new job)
    refresh: bool = False  # read in full, whatever the stamps said (`--refresh`)
    # The live metadata of the containers the spec uploads to that this plan leaves as they are
    # (apply sets their uploads stamp from it, without reading it again).
    upload_metadata: dict[str, dict[str, str]] = field(default_factory=dict)

    def errors(self) -> list[Check]:
        return [c for c in self.checks if c.level == "error"]

    def summary(self) -> dict[str, int]:
        add = sum(c.action in (Action.CREATE, Action.REPLACE) for c in self.changes)
        change = sum(c.action in (Action.UPDATE, Action.RERUN) for c in self.changes)
        destroy = sum(c.action in (Action.DELETE, Action.REPLACE) for c in self.changes)
        return {"add": add, "change": change, "destroy": destroy}

    def of(self, kind: str) -> list[Change]:
        return [c for c in self.changes if c.kind == kind]

    def to_dict(self) -> dict[str, Any]:
        checks = [{"level": c.level, "message": c.message} for c in self.checks]
        return {
            "changes": [c.to_dict() for c in self.changes],
            "summary": self.summary(),
            "checks": checks,
            "notes": list(self.notes),
        }

    def to_file(self) -> dict[str, Any]:
        return {
            "format": PLAN_FORMAT,
            "name": self.name,
            "spec": self.spec,
            "vars": self.vars,
            "desired": self.desired_digest,
            "live": self.live_digest,
            "refresh": self.refresh,
            **self.to_dict(),
        }

    @classmethod
    def from_file(cls, d: dict[str, Any]) -> Plan:
        return cls(
            name=d["name"],
            spec=d["spec"],
            vars=d.get("vars") or {},
            changes=[Change.from_dict(c) for c in d["changes"]],
            desired_digest=d["desired"],
            live_digest=d["live"],
            refresh=bool(d.get("refresh")),
        )
