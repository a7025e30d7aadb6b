"""The pool's part of the diff: replace (an immutable field changed), update in place (resize,
autoscale, start task, metadata), or nothing; and when the start task's SAS must be issued again."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from batchspec import durations
from batchspec.model import OWNER, SAS_EXPIRY, DesiredState, LiveState, Pool, metadata
from batchspec.plan.reasons import clash, was
from batchspec.plan.records import Action, Change, PoolHow
from batchspec.plan.stamps import POOL_CONTAINERS, REFRESH_BELOW, parse_time, pool_stamps


def pool_change(desired: DesiredState, live: LiveState, clashes: list[str]) -> Change | None:
    pool, current = desired.pool, live.pool
    agent = pool.node_agent_sku_id or live.node_agent_sku_id
    details = PoolHow(node_agent_sku_id=agent)
    if current is None:
        return Change("pool", pool.id, Action.CREATE, details=details)
    meta = metadata(current)
    if clash("pool", pool.id, meta.get(OWNER), desired.name, clashes):
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
        return Change(
            "pool",
            pool.id,
            Action.UPDATE,
            tuple(reasons),
            PoolHow.from_dict({"nodeAgentSkuId": agent, **how}),
        )
    return None


def _pool_replace_reasons(pool: Pool, current: dict[str, Any]) -> list[str]:
    reasons = []
    if str(current.get("vmSize", "")).lower() != pool.vm_size.lower():
        reasons.append(f"vmSize: {was(current.get('vmSize'), pool.vm_size)} (forces replacement)")
    vm = current.get("virtualMachineConfiguration") or {}
    image = vm.get("imageReference") or {}
    for key, value in pool.image.to_dict().items():
        if str(image.get(key, "latest" if key == "version" else "")).lower() != value.lower():
            reasons.append(f"image.{key}: {was(image.get(key), value)} (forces replacement)")
    if (
        pool.node_agent_sku_id
        and vm.get("nodeAgentSKUId", vm.get("nodeAgentSkuId")) != pool.node_agent_sku_id
    ):
        reasons.append(
            f"nodeAgentSkuId: {was(vm.get('nodeAgentSKUId'), pool.node_agent_sku_id)} (forces replacement)"
        )
    if current.get("taskSlotsPerNode", 1) != pool.task_slots_per_node:
        reasons.append(
            f"taskSlotsPerNode: {was(current.get('taskSlotsPerNode', 1), pool.task_slots_per_node)}"
            " (forces replacement)"
        )
    if (current.get("displayName") or None) != pool.display_name:
        reasons.append(
            f"displayName: {was(current.get('displayName'), pool.display_name)} (forces replacement)"
        )
    stamps, meta = pool_stamps(pool), metadata(current)
    if meta.get("batchspec-extra") != stamps["batchspec-extra"]:
        reasons.append("extra: changed (forces replacement: the service cannot update these in place)")
    if meta.get(POOL_CONTAINERS, "") != stamps.get(POOL_CONTAINERS, ""):
        reasons.append("containers: changed (forces replacement)")
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
                    reasons.append(f"{key}: {was(current.get(key) or 0, want or 0)} (resize)")
                how["resize"] = True
    if meta.get("batchspec-starttask", "") != pool_stamps(pool)["batchspec-starttask"]:
        reasons.append("startTask: changed (nodes reboot, or are replaced where it failed, to run it)")
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
    expiry = parse_time(meta.get(SAS_EXPIRY))
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


def _interval(current: dict[str, Any]) -> str | None:
    from datetime import timedelta

    value = current.get("autoScaleEvaluationInterval")
    if isinstance(value, timedelta):
        return durations.format(value)
    try:
        return durations.format(durations.parse(value)) if value else None
    except ValueError:
        return value
