"""REST handlers for pools, compute nodes, supported images and node counts."""

from __future__ import annotations

from aiohttp import web

from batchspec import durations  # the one shared module (see durations.py)

from . import errors, model
from .common import Ctx, check_conditions, created, empty, entity, json_response, paged
from .store import key

MAX_NODES_PER_POOL = model.MAX_NODES_PER_POOL
MAX_SLOTS_PER_NODE = 256  # the service's own limit

_FOREVER = durations.UNLIMITED

SUPPORTED_IMAGES = [
    ("batch.node.ubuntu 24.04", "canonical", "ubuntu-24_04-lts", "server"),
    ("batch.node.ubuntu 22.04", "canonical", "0001-com-ubuntu-server-jammy", "22_04-lts"),
    ("batch.node.ubuntu 22.04", "canonical", "0001-com-ubuntu-server-jammy", "22_04-lts-gen2"),
    ("batch.node.ubuntu 20.04", "canonical", "0001-com-ubuntu-server-focal", "20_04-lts"),
    ("batch.node.debian 12", "debian", "debian-12", "12"),
    ("batch.node.debian 11", "debian", "debian-11", "11"),
    ("batch.node.el 9", "almalinux", "almalinux", "9-gen2"),
]


def _images() -> list[dict]:
    return [
        {
            "nodeAgentSKUId": sku,
            "imageReference": {"publisher": pub, "offer": offer, "sku": s, "version": "latest"},
            "osType": "linux",
            "verificationType": "verified",
            "capabilities": [],
        }
        for sku, pub, offer, s in SUPPORTED_IMAGES
    ]


def list_supported_images(ctx: Ctx) -> web.Response:
    """GET /supportedimages."""
    return paged(ctx, "supportedimages", _images())


def get_pool_doc(ctx: Ctx, pool_id: str, *, allow_deleting: bool = True) -> dict:
    """The pool or PoolNotFound (PoolBeingDeleted when a change targets a deleting pool)."""
    pool = ctx.store.pools.get(key(pool_id))
    if pool is None:
        raise errors.not_found("Pool")
    if not allow_deleting and pool["state"] == "deleting":
        raise errors.being_deleted("Pool")
    return pool


def _check_start_task(st: object, name: str = "startTask") -> None:
    if st is None:
        return
    if not isinstance(st, dict):
        raise errors.invalid_value(name, st)
    if not st.get("commandLine"):
        raise errors.missing_property(f"{name}.commandLine")
    if st.get("containerSettings"):
        raise errors.invalid_value(
            f"{name}.containerSettings", "...", "containers are not supported by the emulator"
        )
    if not isinstance(st["commandLine"], str):
        raise errors.invalid_value(f"{name}.commandLine", st["commandLine"])
    model.check_type(st, "resourceFiles", list, f"{name}.resourceFiles")
    for i, rf in enumerate(st.get("resourceFiles") or []):
        if not isinstance(rf, dict) or not any(
            isinstance(rf.get(s), str) and rf[s] for s in ("httpUrl", "storageContainerUrl")
        ):
            raise errors.invalid_value(f"{name}.resourceFiles[{i}]", rf)
    model.check_env(st, "environmentSettings", f"{name}.environmentSettings")
    model.check_type(st, "waitForSuccess", bool, f"{name}.waitForSuccess")
    if st.get("maxTaskRetryCount") is not None:
        model.check_int(st, "maxTaskRetryCount", -1)


def _check_node_counts(body: dict) -> None:
    for name in ("targetDedicatedNodes", "targetLowPriorityNodes"):
        model.check_int(body, name, 0, MAX_NODES_PER_POOL)
    total = (body.get("targetDedicatedNodes") or 0) + (body.get("targetLowPriorityNodes") or 0)
    if total > MAX_NODES_PER_POOL:
        raise errors.invalid_value(
            "targetDedicatedNodes",
            total,
            f"the emulator allows at most {MAX_NODES_PER_POOL} nodes a pool",
        )


def create_pool(ctx: Ctx) -> web.Response:
    """POST /pools."""
    body = ctx.body()
    pool_id = model.check_id(body)
    if not body.get("vmSize"):
        raise errors.missing_property("vmSize")
    vmc = body.get("virtualMachineConfiguration")
    if not vmc:
        if body.get("cloudServiceConfiguration"):
            raise errors.invalid_value("cloudServiceConfiguration", "...", "cloud service pools are retired")
        raise errors.missing_property("virtualMachineConfiguration")
    if not isinstance(vmc, dict) or not isinstance(vmc.get("imageReference"), dict):
        raise errors.missing_property("virtualMachineConfiguration.imageReference")
    sku = vmc.get("nodeAgentSKUId")
    if not sku:
        raise errors.missing_property("virtualMachineConfiguration.nodeAgentSKUId")
    if sku.lower() not in {s.lower() for s, *_ in SUPPORTED_IMAGES}:
        raise errors.invalid_value("virtualMachineConfiguration.nodeAgentSKUId", sku)
    from .api_autoscale import check_create  # late: api_autoscale imports this module

    scaling = check_create(body)
    _check_node_counts(body)
    model.check_int(body, "taskSlotsPerNode", 1, MAX_SLOTS_PER_NODE)
    _check_start_task(body.get("startTask"))
    policy = body.get("taskSchedulingPolicy") or {"nodeFillType": "spread"}
    if policy.get("nodeFillType", "spread") not in ("spread", "pack"):
        raise errors.invalid_value("taskSchedulingPolicy.nodeFillType", policy.get("nodeFillType"))
    pk = key(pool_id)
    existing = ctx.store.pools.get(pk)
    if existing is not None:
        raise (errors.being_deleted("Pool") if existing["state"] == "deleting" else errors.exists("Pool"))
    now = model.now_iso()
    doc = {
        "id": pool_id,
        "url": f"{ctx.base_url}/pools/{pool_id}",
        "creationTime": now,
        "state": "active",
        "stateTransitionTime": now,
        "allocationState": "resizing",
        "allocationStateTransitionTime": now,
        "vmSize": body["vmSize"].lower(),
        "virtualMachineConfiguration": vmc,
        "resizeTimeout": body.get("resizeTimeout") or "PT15M",
        "currentDedicatedNodes": 0,
        "currentLowPriorityNodes": 0,
        "targetDedicatedNodes": body.get("targetDedicatedNodes") or 0,
        "targetLowPriorityNodes": body.get("targetLowPriorityNodes") or 0,
        **scaling,
        "enableInterNodeCommunication": bool(body.get("enableInterNodeCommunication")),
        "taskSlotsPerNode": body.get("taskSlotsPerNode") or 1,
        "taskSchedulingPolicy": {"nodeFillType": policy.get("nodeFillType", "spread")},
    }
    for opt in (
        "displayName",
        "startTask",
        "metadata",
        "userAccounts",
        "networkConfiguration",
        "applicationPackageReferences",
        "mountConfiguration",
        "upgradePolicy",
    ):
        if body.get(opt) is not None:
            doc[opt] = body[opt]
    model.touch(doc)
    ctx.store.put_pool(doc)
    ctx.sched.nodes.resize(pk)
    if doc["enableAutoScale"]:
        ctx.sched.autoscaler.enable(pk)  # evaluates at once, as the service does on create
    return created(ctx, doc, f"/pools/{pool_id}")


def get_pool(ctx: Ctx, pool_id: str) -> web.Response:
    """GET /pools/{poolId}."""
    return entity(ctx, get_pool_doc(ctx, pool_id), "pools")


def pool_exists(ctx: Ctx, pool_id: str) -> web.Response:
    """HEAD /pools/{poolId}: 200 or 404 (no body)."""
    pool = ctx.store.pools.get(key(pool_id))
    return empty(200, pool) if pool is not None else web.Response(status=404)


def list_pools(ctx: Ctx) -> web.Response:
    """GET /pools."""
    return paged(ctx, "pools", list(ctx.store.pools.values()))


def delete_pool(ctx: Ctx, pool_id: str) -> web.Response:
    """DELETE /pools/{poolId}: 202; the pool is `deleting` until its nodes are released."""
    pool = get_pool_doc(ctx, pool_id)
    check_conditions(ctx, pool)
    if pool["state"] != "deleting":
        model.set_state_only(pool, "deleting")
        model.touch(pool)
        ctx.store.put_pool(pool)
        ctx.sched.spawn(ctx.sched.nodes.delete_pool(key(pool_id)))
    return empty(202, None, ctx, f"/pools/{pool_id}")


def resize_pool(ctx: Ctx, pool_id: str) -> web.Response:
    """POST /pools/{poolId}/resize: 202."""
    pool = get_pool_doc(ctx, pool_id, allow_deleting=False)
    body = ctx.body()
    check_conditions(ctx, pool)
    if pool.get("enableAutoScale"):
        raise errors.conflict(
            "AutoScalingEnabled", "The pool has autoscale enabled: disable it to resize by hand."
        )
    _check_node_counts(body)
    how = body.get("nodeDeallocationOption") or "requeue"
    if how not in ("requeue", "terminate", "taskcompletion", "retaineddata"):
        raise errors.invalid_value("nodeDeallocationOption", how)
    for name in ("targetDedicatedNodes", "targetLowPriorityNodes"):
        if body.get(name) is not None:
            pool[name] = body[name]
    if body.get("resizeTimeout"):
        pool["resizeTimeout"] = body["resizeTimeout"]
    model.touch(pool)
    ctx.sched.nodes.resize(key(pool_id), how)
    return empty(202, pool, ctx, f"/pools/{pool_id}/resize")


def stop_resize(ctx: Ctx, pool_id: str) -> web.Response:
    """POST /pools/{poolId}/stopresize: 202; the pool keeps its current nodes."""
    pool = get_pool_doc(ctx, pool_id, allow_deleting=False)
    check_conditions(ctx, pool)
    ctx.sched.nodes.stop_resize(key(pool_id))
    return empty(202, pool, ctx, f"/pools/{pool_id}/stopresize")


def replace_pool_properties(ctx: Ctx, pool_id: str) -> web.Response:
    """POST /pools/{poolId}/updateproperties: replaces startTask, metadata, packages (204)."""
    pool = get_pool_doc(ctx, pool_id, allow_deleting=False)
    body = ctx.body()
    check_conditions(ctx, pool)
    # BatchPoolReplaceOptions (BatchService.json 2025-06-01.21.0) also marks the deprecated
    # certificateReferences required, but the service accepts a body without it: azure-batch 15.x
    # never sends it, and its live-recorded test_batch.py replaces pool properties without it.
    for required in ("applicationPackageReferences", "metadata"):
        if required not in body:
            raise errors.missing_property(required)
    _check_start_task(body.get("startTask"))
    for name in ("startTask", "applicationPackageReferences", "metadata"):
        if body.get(name) is None:
            pool.pop(name, None)
        else:
            pool[name] = body[name]
    model.touch(pool)
    ctx.store.put_pool(pool)
    return empty(204, pool, ctx, f"/pools/{pool_id}")


def patch_pool(ctx: Ctx, pool_id: str) -> web.Response:
    """PATCH /pools/{poolId}: changes only the properties present in the body (200)."""
    pool = get_pool_doc(ctx, pool_id, allow_deleting=False)
    body = ctx.body()
    check_conditions(ctx, pool)
    if "startTask" in body:
        _check_start_task(body["startTask"])
    model.check_int(body, "taskSlotsPerNode", 1, MAX_SLOTS_PER_NODE)
    for name in (
        "displayName",
        "startTask",
        "metadata",
        "applicationPackageReferences",
        "taskSlotsPerNode",
        "taskSchedulingPolicy",
        "userAccounts",
        "vmSize",
        "networkConfiguration",
        "mountConfiguration",
        "upgradePolicy",
        "enableInterNodeCommunication",
        "virtualMachineConfiguration",
    ):
        if name in body:
            if body[name] is None:
                pool.pop(name, None)
            else:
                pool[name] = body[name]
    model.touch(pool)
    ctx.store.put_pool(pool)
    ctx.sched.kick()
    return empty(200, pool, ctx, f"/pools/{pool_id}")


# Node counts and nodes

_COUNT_NAMES = {
    "creating": "creating",
    "idle": "idle",
    "offline": "offline",
    "preempted": "preempted",
    "rebooting": "rebooting",
    "reimaging": "reimaging",
    "running": "running",
    "starting": "starting",
    "starttaskfailed": "startTaskFailed",
    "leavingpool": "leavingPool",
    "unknown": "unknown",
    "unusable": "unusable",
    "waitingforstarttask": "waitingForStartTask",
    "deallocated": "deallocated",
    "deallocating": "deallocating",
    "upgradingos": "upgradingOS",
}


def _counts(nodes: list[dict]) -> dict:
    out = {name: 0 for name in _COUNT_NAMES.values()}
    for n in nodes:
        out[_COUNT_NAMES.get(n["state"], "unknown")] += 1
    out["total"] = len(nodes)
    return out


def list_pool_node_counts(ctx: Ctx) -> web.Response:
    """GET /nodecounts."""
    items = []
    for pk, pool in ctx.store.pools.items():
        nodes = list(ctx.store.nodes.get(pk, {}).values())
        items.append(
            {
                "poolId": pool["id"],
                "dedicated": _counts([n for n in nodes if n.get("isDedicated", True)]),
                "lowPriority": _counts([n for n in nodes if not n.get("isDedicated", True)]),
            }
        )
    return paged(ctx, "poolnodecounts", items)


def get_node_doc(ctx: Ctx, pool_id: str, node_id: str) -> dict:
    """The node or PoolNotFound / NodeNotFound."""
    get_pool_doc(ctx, pool_id)
    node = ctx.store.nodes.get(key(pool_id), {}).get(key(node_id))
    if node is None:
        raise errors.not_found("Node")
    return node


def list_nodes(ctx: Ctx, pool_id: str) -> web.Response:
    """GET /pools/{poolId}/nodes."""
    get_pool_doc(ctx, pool_id)
    return paged(ctx, "nodes", list(ctx.store.nodes.get(key(pool_id), {}).values()))


def get_node(ctx: Ctx, pool_id: str, node_id: str) -> web.Response:
    """GET /pools/{poolId}/nodes/{nodeId}."""
    return entity(ctx, get_node_doc(ctx, pool_id, node_id), "nodes")


def not_supported(ctx: Ctx, **_: str) -> web.Response:
    """An operation of the Batch API that the emulator does not implement."""
    return json_response(
        501,
        errors.error_body(
            ctx.base_url,
            "NotSupportedByEmulator",
            "The local Batch emulator does not implement this operation.",
            ctx.request_id,
        ),
    )
