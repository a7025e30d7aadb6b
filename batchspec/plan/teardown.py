"""The destroy plan: everything the spec owns, in reverse dependency order; the rest left alone."""

from __future__ import annotations

from typing import Any

from batchspec.model import OWNER, DesiredState, LiveState, metadata
from batchspec.plan.records import Action, Change, Plan
from batchspec.plan.stamps import desired_digest, live_digest


def destroy(desired: DesiredState, live: LiveState) -> Plan:
    """Delete everything the spec owns, in reverse dependency order; leave the rest alone."""
    changes: list[Change] = []
    notes: list[str] = []
    name = desired.name

    def owned(resource: dict[str, Any] | None) -> bool:
        return resource is not None and metadata(resource).get(OWNER) == name

    if live.job is not None:
        if owned(live.job):
            count = live.tally.total if live.tally else len(live.tasks)
            changes.append(Change("job", desired.job.id, Action.DELETE, (f"with its {count} task(s)",)))
        else:
            notes.append(f"job {desired.job.id!r} is not owned by this spec: left alone")
    if live.pool is not None:
        if owned(live.pool):
            changes.append(Change("pool", desired.pool.id, Action.DELETE))
        else:
            notes.append(f"pool {desired.pool.id!r} is not owned by this spec: left alone")
    kept = desired.logs.container if desired.logs is not None and desired.logs.keep else None
    for container in desired.containers:
        existing = live.containers.get(container.name)
        if existing is None:
            continue
        if container.name == kept:
            notes.append(f"container {kept!r} keeps the tasks' logs (logs.keep): left alone")
        elif existing.owner == name:
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
