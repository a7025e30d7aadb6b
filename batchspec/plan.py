"""Diff the desired state against live state into a Plan: typed changes with their reasons.

Pure: no I/O. `live.state.read` gathers what this module compares; `apply` executes the changes;
`render` prints them. A saved plan is these records serialised.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from enum import Enum
from typing import Any

from batchspec.errors import PlanError
from batchspec.live.batch import metadata, task_fingerprint
from batchspec.live.storage import LiveBlob, LiveContainer
from batchspec.model import DesiredState, Pool, Task, canonical_json, sha256_text
from batchspec.ownership import FINGERPRINT, OWNER, REFRESH_BELOW, SAS_EXPIRY

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
class Change:
    """One thing to do to one resource, and why. `details` tells apply how (e.g. resize only)."""

    kind: str  # container | blob | pool | job | task | download
    id: str
    action: Action
    reasons: tuple[str, ...] = ()
    details: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def to_dict(self) -> dict[str, Any]:
        d = {"kind": self.kind, "id": self.id, "action": self.action.value, "reasons": list(self.reasons)}
        return {**d, "details": self.details} if self.details else d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Change:
        return cls(
            kind=d["kind"],
            id=d["id"],
            action=Action(d["action"]),
            reasons=tuple(d.get("reasons", ())),
            details=d.get("details") or {},
        )


@dataclass
class LiveState:
    """What the planner compares against, as read by `live.state.read`."""

    containers: dict[str, LiveContainer]
    blobs: dict[str, dict[str, LiveBlob]]  # per spec container that exists
    pool: dict[str, Any] | None
    job: dict[str, Any] | None
    tasks: list[dict[str, Any]]
    node_agent_sku_id: str | None = None  # resolved from supported images when the spec omits it
    read_at: datetime | None = None  # when it was read: the clock the SAS expiry is checked against
    download_pending: list[str] = field(default_factory=list)  # blobs not yet downloaded as they are
    owned_containers: list[str] = field(default_factory=list)  # owned by this spec, not in it


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

    def summary(self) -> dict[str, int]:
        add = sum(c.action in (Action.CREATE, Action.REPLACE) for c in self.changes)
        change = sum(c.action in (Action.UPDATE, Action.RERUN) for c in self.changes)
        destroy = sum(c.action in (Action.DELETE, Action.REPLACE) for c in self.changes)
        return {"add": add, "change": change, "destroy": destroy}

    def of(self, kind: str) -> list[Change]:
        return [c for c in self.changes if c.kind == kind]

    def to_dict(self) -> dict[str, Any]:
        return {"changes": [c.to_dict() for c in self.changes], "summary": self.summary()}

    def to_file(self) -> dict[str, Any]:
        return {
            "format": PLAN_FORMAT,
            "name": self.name,
            "spec": self.spec,
            "vars": self.vars,
            "desired": self.desired_digest,
            "live": self.live_digest,
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
        )


# -- fingerprints stamped on live resources ---------------------------------------------------

_TASK_PARTS = ("commandLine", "resourceFiles", "outputFiles", "environment", "settings", "application")
_NOT_SETTINGS = frozenset(("id", "commandLine", "resourceFiles", "outputFiles", "environment"))


def task_stamp(task: Task, pool: Pool) -> str:
    """The fingerprint a task carries: a digest of the whole, then one short digest per part.

    The parts let the planner name what changed without reading the live task's details (its
    resource files hold SAS URLs that change on every apply). The whole is the digest of
    `canonical_json` of the parts' mapping, written out here from the parts' own encodings
    (keys in sorted order, as canonical_json writes them): a 10,000-task apply computes it
    10,000 times.
    """
    d = task.to_dict()
    encoded = {
        "commandLine": canonical_json(d.get("commandLine")),
        "resourceFiles": canonical_json(d.get("resourceFiles")),
        "outputFiles": canonical_json(d.get("outputFiles")),
        "environment": canonical_json(d.get("environment")),
        "settings": canonical_json({k: v for k, v in d.items() if k not in _NOT_SETTINGS}),
        "application": _application_json(pool),
    }
    whole = "{" + ",".join(f'"{k}":{encoded[k]}' for k in sorted(encoded)) + "}"
    short = ".".join(sha256_text(encoded[p])[:8] for p in _TASK_PARTS)
    return f"{sha256_text(whole)[:32]}:{short}"


@functools.lru_cache(maxsize=8)
def _application_json(pool: Pool) -> str:
    return canonical_json(pool.start_task.fingerprint() if pool.start_task else None)


def pool_stamps(pool: Pool) -> dict[str, str]:
    start = pool.start_task.fingerprint() if pool.start_task else ""
    if start and pool.identity:  # its resource files reach storage another way
        start = sha256_text(f"{start}\n{pool.identity}")
    return {
        FINGERPRINT: pool.fingerprint(),
        "batchspec-starttask": start,
        "batchspec-extra": sha256_text(pool.extra_json),
    }


def job_extra_stamp(extra_json: str) -> str:
    return sha256_text(extra_json)


# -- the diff ---------------------------------------------------------------------------------


def diff(desired: DesiredState, live: LiveState) -> Plan:
    """The changes that take `live` to `desired`. Raises PlanError on a clash with unowned resources."""
    changes: list[Change] = []
    clashes: list[str] = []
    changes += _containers(desired, live, clashes)
    changes += _blobs(desired, live)
    pool_change = _pool(desired, live, clashes)
    stamp = _stamper(desired.pool)
    job_change = _job(desired, live, clashes, stamp)
    if clashes:
        raise PlanError(
            "; ".join(clashes),
            hint="batchspec never changes what it did not create: rename the resource "
            "in the spec, or remove the existing one yourself",
        )
    changes += [c for c in (pool_change, job_change) if c]
    task_changes, pending = _tasks(desired, live, job_change, stamp)
    changes += task_changes
    if desired.download:
        changes += _download(desired, live, task_changes)
    changes += [
        Change("container", name, Action.DELETE, ("owned by this spec, no longer in it",))
        for name in live.owned_containers
    ]
    plan = Plan(
        name=desired.name,
        spec=desired.spec_path,
        changes=changes,
        pending_tasks=pending,
        desired_digest=desired_digest(desired),
        live_digest=live_digest(live),
    )
    return plan


def desired_digest(desired: DesiredState) -> str:
    return sha256_text(
        canonical_json(
            desired.to_dict() | {"spec": None, "blobs": [(b.ref, b.sha256) for b in desired.blobs]}
        )
    )


def live_digest(live: LiveState) -> str:
    """A digest of the live facts plans are made from, leaving out transient progress."""
    pool = live.pool or {}
    job = live.job or {}
    facts = {
        "containers": {n: c.metadata for n, c in sorted(live.containers.items())},
        "blobs": {
            n: sorted((b.name, b.sha256) for b in blobs.values() if b.sha256)
            for n, blobs in sorted(live.blobs.items())
        },
        "pool": [
            pool.get("id"),
            pool.get("state") == "deleting",
            pool.get("vmSize"),
            pool.get("targetDedicatedNodes"),
            pool.get("targetLowPriorityNodes"),
            pool.get("enableAutoScale"),
            pool.get("autoScaleFormula"),
            metadata(pool),
        ],
        "job": [
            job.get("id"),
            job.get("state") in ("completed", "terminating", "deleting"),
            job.get("priority"),
            job.get("maxParallelTasks"),
            job.get("constraints"),
            metadata(job),
        ],
        "tasks": sorted((t["id"], task_fingerprint(t), _failed(t)) for t in live.tasks),
    }
    return sha256_text(canonical_json(facts))


def _clash(kind: str, rid: str, owner: str | None, name: str, clashes: list[str]) -> bool:
    """Record (and say) that an existing resource is not this spec's."""
    if owner == name:
        return False
    who = f"owned by spec {owner!r}" if owner else "not created by batchspec"
    clashes.append(f"{kind} {rid!r} already exists and is {who}")
    return True


def _containers(desired: DesiredState, live: LiveState, clashes: list[str]) -> list[Change]:
    changes = []
    for container in desired.containers:
        existing = live.containers.get(container.name)
        if existing is None:
            changes.append(Change("container", container.name, Action.CREATE))
        elif (
            not _clash("container", container.name, existing.owner, desired.name, clashes)
            and existing.fingerprint != container.fingerprint()
        ):
            changes.append(Change("container", container.name, Action.UPDATE, ("metadata changed",)))
    return changes


def _blobs(desired: DesiredState, live: LiveState) -> list[Change]:
    changes = []
    wanted = {b.ref: b for b in desired.blobs}
    for blob in desired.blobs:
        current = live.blobs.get(blob.container, {}).get(blob.name)
        if current is None:
            changes.append(Change("blob", blob.ref, Action.CREATE, details={"size": blob.size}))
        elif current.sha256 != blob.sha256:
            was = (current.sha256 or "unknown")[:12]
            changes.append(
                Change(
                    "blob",
                    blob.ref,
                    Action.UPDATE,
                    (f"content changed (sha256 {was} -> {blob.sha256[:12]})",),
                    details={"size": blob.size},
                )
            )
    uploaded_to = {b.container for b in desired.blobs} | {c.name for c in desired.containers}
    for container, blobs in live.blobs.items():
        if container not in uploaded_to:
            continue
        for name, current in blobs.items():
            # Only blobs batchspec uploaded carry a sha256; task outputs are left alone.
            if current.sha256 and f"{container}/{name}" not in wanted:
                changes.append(
                    Change(
                        "blob",
                        f"{container}/{name}",
                        Action.DELETE,
                        ("no longer matched by the spec's uploads",),
                    )
                )
    return changes


def _pool(desired: DesiredState, live: LiveState, clashes: list[str]) -> Change | None:
    pool, current = desired.pool, live.pool
    agent = pool.node_agent_sku_id or live.node_agent_sku_id
    details = {"nodeAgentSkuId": agent}
    if current is None:
        return Change("pool", pool.id, Action.CREATE, details=details)
    meta = metadata(current)
    if _clash("pool", pool.id, meta.get(OWNER), desired.name, clashes):
        return None
    if current.get("state") == "deleting":
        return Change("pool", pool.id, Action.CREATE, ("the existing pool is being deleted",), details)
    replace = _pool_replace_reasons(pool, current)
    if replace:
        return Change("pool", pool.id, Action.REPLACE, tuple(replace), details)
    reasons, how = _pool_update_reasons(pool, current, meta)
    refresh = _start_task_sas(pool, meta, how, live.read_at)
    if refresh:
        reasons.append(refresh)
        how["properties"] = True
    if reasons:
        return Change("pool", pool.id, Action.UPDATE, tuple(reasons), {**details, **how})
    return None


def _was(old: Any, new: Any) -> str:
    return f"{old!r} -> {new!r}"


def _pool_replace_reasons(pool: Pool, current: dict[str, Any]) -> list[str]:
    reasons = []
    if str(current.get("vmSize", "")).lower() != pool.vm_size.lower():
        reasons.append(f"vmSize: {_was(current.get('vmSize'), pool.vm_size)} (forces replacement)")
    vm = current.get("virtualMachineConfiguration") or {}
    image = vm.get("imageReference") or {}
    for key, value in pool.image.to_dict().items():
        if str(image.get(key, "latest" if key == "version" else "")).lower() != value.lower():
            reasons.append(f"image.{key}: {_was(image.get(key), value)} (forces replacement)")
    if (
        pool.node_agent_sku_id
        and vm.get("nodeAgentSKUId", vm.get("nodeAgentSkuId")) != pool.node_agent_sku_id
    ):
        reasons.append(
            f"nodeAgentSkuId: {_was(vm.get('nodeAgentSKUId'), pool.node_agent_sku_id)} (forces replacement)"
        )
    if current.get("taskSlotsPerNode", 1) != pool.task_slots_per_node:
        reasons.append(
            f"taskSlotsPerNode: {_was(current.get('taskSlotsPerNode', 1), pool.task_slots_per_node)}"
            " (forces replacement)"
        )
    if (current.get("displayName") or None) != pool.display_name:
        reasons.append(
            f"displayName: {_was(current.get('displayName'), pool.display_name)} (forces replacement)"
        )
    if metadata(current).get("batchspec-extra") != pool_stamps(pool)["batchspec-extra"]:
        reasons.append("extra: changed (forces replacement: the service cannot update these in place)")
    return reasons


def _pool_update_reasons(pool: Pool, current: dict[str, Any], meta: dict[str, str]):
    reasons: list[str] = []
    how: dict[str, Any] = {}
    if pool.autoscale_formula:
        if not current.get("enableAutoScale"):
            reasons.append("autoScale: enabled")
            how["autoscale"] = True
        elif current.get("autoScaleFormula") != pool.autoscale_formula or _interval(current) != (
            pool.autoscale_interval or "PT15M"
        ):
            reasons.append("autoScale: formula or interval changed")
            how["autoscale"] = True
    else:
        if current.get("enableAutoScale"):
            reasons.append("autoScale: disabled")
            how["disableAutoscale"] = True
        for key, want in (
            ("targetDedicatedNodes", pool.target_dedicated_nodes),
            ("targetLowPriorityNodes", pool.target_low_priority_nodes),
        ):
            if (current.get(key) or 0) != (want or 0) or how.get("disableAutoscale"):
                if (current.get(key) or 0) != (want or 0):
                    reasons.append(f"{key}: {_was(current.get(key) or 0, want or 0)} (resize)")
                how["resize"] = True
    if meta.get("batchspec-starttask", "") != pool_stamps(pool)["batchspec-starttask"]:
        reasons.append("startTask: changed (nodes are rebooted to run the new one)")
        how["properties"] = True
        how["reboot"] = True
    user_meta = {k: v for k, v in meta.items() if not k.startswith("batchspec-")}
    if user_meta != dict(pool.metadata):
        reasons.append("metadata: changed")
        how["properties"] = True
    return reasons, how


def _start_task_sas(
    pool: Pool, meta: dict[str, str], how: dict[str, Any], now: datetime | None
) -> str | None:
    """Why the start task's SAS URLs must be issued again, if they must.

    The pool keeps them and nodes download them whenever they join or reboot: before a resize
    adds nodes, and once under half their life is left, they are replaced (updating the pool's
    properties, which running nodes do not notice).
    """
    start = pool.start_task
    if not start or pool.identity or not any(r.blob or r.container for r in start.resource_files):
        return None
    if how.get("properties"):
        return None  # replaced with the start task anyway
    if how.get("resize"):
        return "startTask: resource file SAS issued again for the nodes the resize adds"
    if now is None:
        return None
    expiry = _parse_time(meta.get(SAS_EXPIRY))
    if expiry is None:
        return (
            "startTask: resource file SAS of unknown expiry issued again (nodes that join or reboot use them)"
        )
    if expiry - now < REFRESH_BELOW:
        verb = "expired" if expiry <= now else "expire"
        return (
            f"startTask: resource file SAS {verb} {expiry:%Y-%m-%d %H:%M} UTC; issued again "
            "(nodes that join or reboot use them)"
        )
    return None


def _parse_time(text: str | None) -> datetime | None:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(timezone.utc) if text else None
    except ValueError:
        return None


def _interval(current: dict[str, Any]) -> str | None:
    from datetime import timedelta

    from batchspec import durations

    value = current.get("autoScaleEvaluationInterval")
    if isinstance(value, timedelta):
        return durations.format(value)
    try:
        return durations.format(durations.parse(value)) if value else None
    except ValueError:
        return value


def _stamper(pool: Pool) -> Callable[[Task], str]:
    """task_stamp with one computation per task id for one plan (the job and the task checks
    of a completed job both need them)."""
    stamps: dict[str, str] = {}

    def stamp(task: Task) -> str:
        if task.id not in stamps:
            stamps[task.id] = task_stamp(task, pool)
        return stamps[task.id]

    return stamp


def _job(desired: DesiredState, live: LiveState, clashes: list[str], stamp: Callable[[Task], str]):
    job, current = desired.job, live.job
    if current is None:
        return Change("job", job.id, Action.CREATE)
    meta = metadata(current)
    if _clash("job", job.id, meta.get(OWNER), desired.name, clashes):
        return None
    if current.get("state") == "deleting":
        return Change("job", job.id, Action.CREATE, ("the existing job is being deleted",))
    reasons = []
    pool_id = (current.get("poolInfo") or {}).get("poolId")
    if pool_id != job.pool_id:
        reasons.append(f"poolInfo.poolId: {_was(pool_id, job.pool_id)} (forces replacement)")
    uses = bool(current.get("usesTaskDependencies"))
    if uses != job.uses_task_dependencies:
        reasons.append(f"usesTaskDependencies: {_was(uses, job.uses_task_dependencies)} (forces replacement)")
    if meta.get("batchspec-extra") != job_extra_stamp(job.extra_json):
        reasons.append("extra: changed (forces replacement)")
    if current.get("state") in ("completed", "terminating", "disabling", "disabled"):
        wanted = {t.id.lower(): t for t in desired.tasks}
        live_ids = {t["id"].lower() for t in live.tasks}
        stale = any(k not in live_ids for k in wanted) or any(
            task_fingerprint(t) != stamp(wanted[t["id"].lower()])
            for t in live.tasks
            if t["id"].lower() in wanted
        )
        if stale or any(_failed(t) for t in live.tasks):
            reasons.append(
                f"state: {current.get('state')} (a {current.get('state')} job takes no "
                "new tasks; forces replacement)"
            )
    if reasons:
        return Change("job", job.id, Action.REPLACE, tuple(reasons))
    update = []
    if meta.get(FINGERPRINT) != job.fingerprint():
        for key, want in (
            ("priority", job.priority or 0),
            ("maxParallelTasks", job.max_parallel_tasks or -1),
            ("onAllTasksComplete", job.on_all_tasks_complete or "noaction"),
            ("onTaskFailure", job.on_task_failure or "noaction"),
        ):
            have = current.get(key, {"priority": 0, "maxParallelTasks": -1}.get(key, "noaction"))
            if have != want:
                update.append(f"{key}: {_was(have, want)}")
        if not update:
            update.append("constraints or metadata changed")
    return Change("job", job.id, Action.UPDATE, tuple(update)) if update else None


def _failed(task: dict[str, Any]) -> bool:
    info = task.get("executionInfo") or {}
    return task.get("state") == "completed" and info.get("result") == "failure"


def _tasks(
    desired: DesiredState, live: LiveState, job_change: Change | None, stamp: Callable[[Task], str]
) -> tuple[list[Change], int]:
    fresh_job = job_change is not None and job_change.action in (Action.CREATE, Action.REPLACE)
    if fresh_job:
        reason = () if job_change.action == Action.CREATE else ("the job is replaced",)
        return [Change("task", t.id, Action.CREATE, reason) for t in desired.tasks], 0
    current = {t["id"].lower(): t for t in live.tasks}
    changes = []
    pending = 0
    for task in desired.tasks:
        existing = current.pop(task.id.lower(), None)
        if existing is None:
            changes.append(Change("task", task.id, Action.CREATE))
            continue
        have, want = task_fingerprint(existing), stamp(task)
        if have != want:
            changes.append(
                Change("task", task.id, Action.REPLACE, tuple(_task_reasons(task, existing, have, want)))
            )
        elif _failed(existing):
            info = existing.get("executionInfo") or {}
            code = info.get("exitCode")
            failure = (info.get("failureInfo") or {}).get("code")
            what = f"exit code {code}" if code is not None else (failure or "failure")
            changes.append(Change("task", task.id, Action.RERUN, (f"completed with failure ({what})",)))
        elif existing.get("state") != "completed":
            pending += 1
    for task in current.values():
        changes.append(Change("task", task["id"], Action.DELETE, ("no longer in the spec",)))
    return changes, pending


def _task_reasons(task: Task, existing: dict[str, Any], have: str | None, stamp: str) -> list[str]:
    if not have or ":" not in have:
        return ["not created by this version of batchspec (no fingerprint)"]
    old_parts, new_parts = have.split(":", 1)[1].split("."), stamp.split(":", 1)[1].split(".")
    reasons = []
    for name, old, new in zip(_TASK_PARTS, old_parts, new_parts, strict=False):
        if old == new:
            continue
        if name == "commandLine":
            reasons.append(f"commandLine: {_was(existing.get('commandLine'), task.command_line)}")
        elif name == "resourceFiles":
            reasons.append("resourceFiles: inputs or their content changed")
        elif name == "application":
            reasons.append("the pool's start task (application files) changed")
        else:
            reasons.append(f"{name}: changed")
    return reasons or ["fingerprint changed"]


def _download(desired: DesiredState, live: LiveState, task_changes: list[Change]) -> list[Change]:
    d = desired.download
    runs = any(c.action in (Action.CREATE, Action.REPLACE, Action.RERUN) for c in task_changes)
    if runs:
        return [Change("download", d.container, Action.CREATE, (f"to {d.to} after the tasks complete",))]
    if live.download_pending:
        n = len(live.download_pending)
        return [
            Change(
                "download",
                d.container,
                Action.CREATE,
                (f"{n} blob(s) missing or different in {d.to}",),
                details={"blobs": len(live.download_pending)},
            )
        ]
    return []


def destroy(desired: DesiredState, live: LiveState) -> Plan:
    """Delete everything the spec owns, in reverse dependency order; leave the rest alone."""
    changes: list[Change] = []
    notes: list[str] = []
    name = desired.name

    def owned(resource: dict[str, Any] | None) -> bool:
        return resource is not None and metadata(resource).get(OWNER) == name

    if live.job is not None:
        if owned(live.job):
            changes.append(
                Change("job", desired.job.id, Action.DELETE, (f"with its {len(live.tasks)} task(s)",))
            )
        else:
            notes.append(f"job {desired.job.id!r} is not owned by this spec: left alone")
    if live.pool is not None:
        if owned(live.pool):
            changes.append(Change("pool", desired.pool.id, Action.DELETE))
        else:
            notes.append(f"pool {desired.pool.id!r} is not owned by this spec: left alone")
    for container in desired.containers:
        existing = live.containers.get(container.name)
        if existing is None:
            continue
        if existing.owner == name:
            changes.append(Change("container", container.name, Action.DELETE))
        else:
            notes.append(f"container {container.name!r} is not owned by this spec: left alone")
    changes += [Change("container", n, Action.DELETE, ("owned by this spec",)) for n in live.owned_containers]
    return Plan(
        name=name,
        spec=desired.spec_path,
        changes=changes,
        notes=notes,
        desired_digest=desired_digest(desired),
        live_digest=live_digest(live),
    )
