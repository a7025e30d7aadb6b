"""REST handlers for pools and the supported images."""

from __future__ import annotations

from aiohttp import web

from . import errors, incidents, model, pool_shape
from .common import Ctx, Readers, check_conditions, created, empty, find, paged
from .pool_shape import MAX_SLOTS_PER_NODE
from .store import key

# The images the service lists for a node agent SKU (GET /supportedimages), older and Windows
# ones included: the service creates pools of them. A Windows pool's nodes come up here, but
# their command lines cannot run (agent.WINDOWS_NOTE). (node agent SKU, publisher, offer, sku)
SUPPORTED_IMAGES = [
    ("batch.node.ubuntu 24.04", "canonical", "ubuntu-24_04-lts", "server"),
    ("batch.node.ubuntu 24.04", "microsoft-dsvm", "ubuntu-hpc", "2404"),
    ("batch.node.ubuntu 22.04", "canonical", "0001-com-ubuntu-server-jammy", "22_04-lts"),
    ("batch.node.ubuntu 22.04", "canonical", "0001-com-ubuntu-server-jammy", "22_04-lts-gen2"),
    ("batch.node.ubuntu 20.04", "canonical", "0001-com-ubuntu-server-focal", "20_04-lts"),
    ("batch.node.ubuntu 20.04", "canonical", "0001-com-ubuntu-server-focal", "20_04-lts-gen2"),
    ("batch.node.ubuntu 20.04", "microsoft-azure-batch", "ubuntu-server-container", "20-04-lts"),
    ("batch.node.ubuntu 18.04", "canonical", "ubuntuserver", "18.04-lts"),
    ("batch.node.ubuntu 18.04", "canonical", "ubuntuserver", "18_04-lts-gen2"),
    ("batch.node.debian 12", "debian", "debian-12", "12"),
    ("batch.node.debian 11", "debian", "debian-11", "11"),
    ("batch.node.el 9", "almalinux", "almalinux", "9-gen2"),
    ("batch.node.windows amd64", "microsoftwindowsserver", "windowsserver", "2016-datacenter"),
    ("batch.node.windows amd64", "microsoftwindowsserver", "windowsserver", "2016-datacenter-smalldisk"),
    ("batch.node.windows amd64", "microsoftwindowsserver", "windowsserver", "2019-datacenter"),
    ("batch.node.windows amd64", "microsoftwindowsserver", "windowsserver", "2019-datacenter-core"),
    ("batch.node.windows amd64", "microsoftwindowsserver", "windowsserver", "2022-datacenter"),
]

# ImageInformation.batchSupportEndOfLife: "The time when the Azure Batch service will stop
# accepting create Pool requests for the Image". The dates of the service's retirement notices
# (github.com/Azure/Batch issues labelled retirement): by node agent SKU, or by image SKU.
END_OF_LIFE = {
    "batch.node.ubuntu 18.04": "2023-05-30",  # Azure/Batch#152
    "batch.node.ubuntu 20.04": "2025-04-23",  # Azure/Batch#174
    "batch.node.ubuntu 22.04": "2027-06-30",  # Azure/Batch#200
    "2016-datacenter": "2027-01-12",  # Azure/Batch#197: Windows Server 2016 Marketplace images
    "2016-datacenter-smalldisk": "2027-01-12",
}
# ImageInformation.capabilities: the images Batch's container workload guide lists for Linux
# container workloads (Batch's own ubuntu-server-container, and microsoft-dsvm's ubuntu-hpc,
# which ships a Moby runtime) run Docker ("DockerCompatible", as the guide filters the list by).
_CAPABILITIES = {"ubuntu-server-container": ["DockerCompatible"], "ubuntu-hpc": ["DockerCompatible"]}


def _images() -> list[dict]:
    images = []
    for agent, publisher, offer, sku in SUPPORTED_IMAGES:
        end = END_OF_LIFE.get(agent) or END_OF_LIFE.get(sku)
        images.append(
            {
                "nodeAgentSKUId": agent,
                "imageReference": {"publisher": publisher, "offer": offer, "sku": sku, "version": "latest"},
                "osType": "windows" if agent.startswith("batch.node.windows") else "linux",
                "capabilities": _CAPABILITIES.get(offer, []),
                **({"batchSupportEndOfLife": f"{end}T00:00:00Z"} if end else {}),
                "verificationType": "verified",
            }
        )
    return images


def list_supported_images(ctx: Ctx) -> web.Response:
    """GET /supportedimages."""
    return paged(ctx, "supportedimages", _images())


def get_pool_doc(ctx: Ctx, pool_id: str, *, allow_deleting: bool = True) -> dict:
    """The pool or PoolNotFound (PoolBeingDeleted when a change targets a deleting pool)."""
    return find(ctx.store.pools, pool_id, "Pool", allow_deleting=allow_deleting)


def create_pool(ctx: Ctx) -> web.Response:
    """POST /pools."""
    body = ctx.body()
    pool_id = model.check_id(body)
    doc = new_pool(ctx.store, ctx.sched, ctx.base_url, pool_id, body)
    return created(ctx, doc, f"/pools/{pool_id}")


def new_pool(store, sched, base_url: str, pool_id: str, body: dict) -> dict:
    """Check a pool specification, store the pool and start allocating its nodes (a pool the
    client adds, or a job's auto pool)."""
    if not body.get("vmSize"):
        raise errors.missing_property("vmSize")
    vmc = body.get("virtualMachineConfiguration")
    if not vmc:
        if body.get("cloudServiceConfiguration"):
            raise errors.invalid_value("cloudServiceConfiguration", "...", "cloud service pools are retired")
        raise errors.missing_property("virtualMachineConfiguration")
    if not isinstance(vmc, dict) or not isinstance(vmc.get("imageReference"), dict):
        raise errors.missing_property("virtualMachineConfiguration.imageReference")
    pool_shape.check_image(vmc["imageReference"])
    pool_shape.check_network(body.get("networkConfiguration"))
    sku = vmc.get("nodeAgentSKUId")
    if not sku:
        raise errors.missing_property("virtualMachineConfiguration.nodeAgentSKUId")
    if sku.lower() not in {s.lower() for s, *_ in SUPPORTED_IMAGES}:
        raise errors.invalid_value("virtualMachineConfiguration.nodeAgentSKUId", sku)
    from .api_autoscale import check_create  # late: api_autoscale imports this module

    scaling = check_create(body)
    pool_shape.check_node_counts(body)
    model.check_int(body, "taskSlotsPerNode", 1, MAX_SLOTS_PER_NODE)
    pool_shape.check_start_task(body.get("startTask"))
    incidents.check_metadata(body.get("metadata"))
    policy = body.get("taskSchedulingPolicy") or {"nodeFillType": "spread"}
    if policy.get("nodeFillType", "spread") not in ("spread", "pack"):
        raise errors.invalid_value("taskSchedulingPolicy.nodeFillType", policy.get("nodeFillType"))
    if policy.get("jobDefaultOrder", "none") not in ("none", "creationTime"):
        raise errors.invalid_value("taskSchedulingPolicy.jobDefaultOrder", policy.get("jobDefaultOrder"))
    pk = key(pool_id)
    existing = store.pools.get(pk)
    if existing is not None:
        raise (errors.being_deleted("Pool") if existing["state"] == "deleting" else errors.exists("Pool"))
    doc = model.new_resource(pool_id, f"{base_url}/pools/{pool_id}")
    doc |= {
        "allocationState": "resizing",
        "allocationStateTransitionTime": doc["creationTime"],
        "vmSize": body["vmSize"].lower(),
        "virtualMachineConfiguration": model.without_secrets(vmc),
        "resizeTimeout": body.get("resizeTimeout") or "PT15M",
        "currentDedicatedNodes": 0,
        "currentLowPriorityNodes": 0,
        "targetDedicatedNodes": body.get("targetDedicatedNodes") or 0,
        "targetLowPriorityNodes": body.get("targetLowPriorityNodes") or 0,
        **scaling,
        "enableInterNodeCommunication": bool(body.get("enableInterNodeCommunication")),
        "taskSlotsPerNode": body.get("taskSlotsPerNode") or 1,
        "taskSchedulingPolicy": {
            "nodeFillType": policy.get("nodeFillType", "spread"),
            **({"jobDefaultOrder": policy["jobDefaultOrder"]} if policy.get("jobDefaultOrder") else {}),
        },
        # Deprecated, yet the service still returns the empty list on every pool.
        "certificateReferences": [],
        **pool_shape.communication(body.get("targetNodeCommunicationMode")),
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
            doc[opt] = model.without_secrets(body[opt])
    pool_shape.fill_defaults(doc)
    model.touch(doc)
    store.put_pool(doc)
    sched.nodes.resize(pk)
    if doc["enableAutoScale"]:
        sched.autoscaler.enable(pk)  # evaluates at once, as the service does on create
    return doc


def _to_change(ctx: Ctx, pool_id: str) -> dict:
    """The pool a change targets: not one being deleted, and only if the request's
    preconditions (If-Match, If-Unmodified-Since, ...) hold."""
    pool = get_pool_doc(ctx, pool_id, allow_deleting=False)
    check_conditions(ctx, pool)
    return pool


# GET /pools/{poolId}, HEAD /pools/{poolId} (200 or 404, no body), GET /pools.
_READERS = Readers("pools", "pools", get_pool_doc)
get_pool, pool_exists, list_pools = _READERS.get, _READERS.exists, _READERS.list


def delete_pool(ctx: Ctx, pool_id: str) -> web.Response:
    """DELETE /pools/{poolId}: 202; the pool is `deleting` until its nodes are released. Again
    while it is: 409 PoolBeingDeleted (the API definition, Pools_DeletePool)."""
    _to_change(ctx, pool_id)
    ctx.sched.nodes.begin_delete(key(pool_id))
    return empty(202, None, ctx, f"/pools/{pool_id}")


def resize_pool(ctx: Ctx, pool_id: str) -> web.Response:
    """POST /pools/{poolId}/resize: 202."""
    pool = _to_change(ctx, pool_id)
    body = ctx.body()
    if pool.get("enableAutoScale"):
        raise errors.conflict(
            "AutoScalingEnabled", "The pool has autoscale enabled: disable it to resize by hand."
        )
    if pool["allocationState"] != "steady":
        # Pools_ResizePool: "You can only resize a Pool when its allocation state is steady. If
        # the Pool is already resizing, the request fails with status code 409."
        raise errors.conflict("PoolBeingResized", "The specified pool is being resized.")
    pool_shape.check_node_counts(body)
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
    pool = _to_change(ctx, pool_id)
    ctx.sched.nodes.stop_resize(key(pool_id))
    return empty(202, pool, ctx, f"/pools/{pool_id}/stopresize")


def replace_pool_properties(ctx: Ctx, pool_id: str) -> web.Response:
    """POST /pools/{poolId}/updateproperties: replaces startTask, metadata, packages (204)."""
    pool = _to_change(ctx, pool_id)
    body = ctx.body()
    # BatchPoolReplaceOptions (BatchService.json 2025-06-01.21.0) also marks the deprecated
    # certificateReferences required, but the service accepts a body without it: azure-batch 15.x
    # never sends it, and its live-recorded test_batch.py replaces pool properties without it.
    for required in ("applicationPackageReferences", "metadata"):
        if required not in body:
            raise errors.missing_property(required)
    pool_shape.check_start_task(body.get("startTask"))
    incidents.check_metadata(body.get("metadata"))
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
    pool = _to_change(ctx, pool_id)
    body = ctx.body()
    if "startTask" in body:
        pool_shape.check_start_task(body["startTask"])
    incidents.check_metadata(body.get("metadata"))
    model.check_int(body, "taskSlotsPerNode", 1, MAX_SLOTS_PER_NODE)
    if body.get("targetNodeCommunicationMode") is not None:
        pool.update(pool_shape.communication(body["targetNodeCommunicationMode"]))
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
                pool[name] = model.without_secrets(body[name])
    model.touch(pool)
    ctx.store.put_pool(pool)
    ctx.sched.kick()
    return empty(200, pool, ctx, f"/pools/{pool_id}")
