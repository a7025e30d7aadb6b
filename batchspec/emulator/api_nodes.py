"""REST handlers for compute nodes: listing and reading them, the account's node counts, and
the node operations: reboot, reimage, deallocate and start, remove nodes, enabling or disabling
task scheduling."""

from __future__ import annotations

from aiohttp import web

from . import errors, model
from .api_pools import get_pool_doc
from .common import Ctx, empty, entity, paged
from .store import key

_END_OPTIONS = ("requeue", "terminate", "taskcompletion", "retaineddata")


def _option(ctx: Ctx, name: str, allowed: tuple[str, ...] = _END_OPTIONS) -> str:
    body = ctx.body() if ctx.raw_body.strip() else {}
    value = body.get(name) or "requeue"
    if value not in allowed:
        raise errors.invalid_value(name, value)
    return value


def _ready_node(ctx: Ctx, pool_id: str, node_id: str) -> dict:
    get_pool_doc(ctx, pool_id, allow_deleting=False)
    node = get_node_doc(ctx, pool_id, node_id)
    if node["state"] in ("leavingpool", "rebooting", "reimaging"):
        raise errors.conflict(
            "OperationInvalidForCurrentState",
            f"The operation is not valid for the node's current state ({node['state']}).",
        )
    return node


# Why a node that is not idle or running cannot be rebooted or reimaged, in the codes of the
# REST reference's "Batch status and error codes".
_BUSY = {
    "creating": "NodeBeingCreated",
    "starting": "NodeBeingStarted",
    "waitingforstarttask": "NodeBeingStarted",
    "rebooting": "NodeBeingRebooted",
    "reimaging": "NodeBeingReimaged",
    "unusable": "NodeStateUnusable",
}


def _restartable(ctx: Ctx, pool_id: str, node_id: str) -> dict:
    """The node, if idle or running: Nodes_RebootNode and Nodes_ReimageNode ("only if it is in
    an idle or running state"); else 409 with the code that says why."""
    get_pool_doc(ctx, pool_id, allow_deleting=False)
    node = get_node_doc(ctx, pool_id, node_id)
    if node["state"] not in ("idle", "running"):
        code = _BUSY.get(node["state"], "OperationNotValidOnNode")
        raise errors.conflict(code, f"The operation is not valid on a {node['state']} node.")
    return node


def reboot_node(ctx: Ctx, pool_id: str, node_id: str) -> web.Response:
    """POST /pools/{poolId}/nodes/{nodeId}/reboot: 202; the start task runs again."""
    node = _restartable(ctx, pool_id, node_id)
    how = _option(ctx, "nodeRebootOption")
    ctx.sched.nodes.reboot(key(pool_id), key(node["id"]), how, reimage=False)
    return empty(202, None, ctx, f"/pools/{pool_id}/nodes/{node_id}/reboot")


def reimage_node(ctx: Ctx, pool_id: str, node_id: str) -> web.Response:
    """POST /pools/{poolId}/nodes/{nodeId}/reimage: 202; the node directory is wiped."""
    node = _restartable(ctx, pool_id, node_id)
    how = _option(ctx, "nodeReimageOption")
    ctx.sched.nodes.reboot(key(pool_id), key(node["id"]), how, reimage=True)
    return empty(202, None, ctx, f"/pools/{pool_id}/nodes/{node_id}/reimage")


def idle_or_running(ctx: Ctx, pool_id: str, node_id: str) -> dict:
    """The node, if it is idle or running: the only states from which the service deallocates
    a node or manages its user accounts (the definition's Nodes_DeallocateNode and
    Nodes_CreateNodeUser); else 409 OperationNotValidOnNode."""
    get_pool_doc(ctx, pool_id, allow_deleting=False)
    node = get_node_doc(ctx, pool_id, node_id)
    if node["state"] not in ("idle", "running"):
        raise errors.conflict(
            "OperationNotValidOnNode", f"The operation is not valid on a {node['state']} node."
        )
    return node


def deallocate_node(ctx: Ctx, pool_id: str, node_id: str) -> web.Response:
    """POST .../deallocate: 202; deallocating, then deallocated (tasks end per the option)."""
    node = idle_or_running(ctx, pool_id, node_id)
    how = _option(ctx, "nodeDeallocateOption")
    ctx.sched.nodes.deallocate(key(pool_id), key(node["id"]), how)
    return empty(202, None, ctx, f"/pools/{pool_id}/nodes/{node_id}/deallocate")


def start_node(ctx: Ctx, pool_id: str, node_id: str) -> web.Response:
    """POST .../start: 202 for a deallocated node ("You can start a Compute Node only if it has
    been deallocated"), which boots and runs its start task; else 409 OperationNotValidOnNode."""
    get_pool_doc(ctx, pool_id, allow_deleting=False)
    node = get_node_doc(ctx, pool_id, node_id)
    if node["state"] != "deallocated":
        raise errors.conflict(
            "OperationNotValidOnNode", f"The operation is not valid on a {node['state']} node."
        )
    ctx.sched.nodes.start(key(pool_id), key(node["id"]))
    return empty(202, None, ctx, f"/pools/{pool_id}/nodes/{node_id}/start")


def disable_scheduling(ctx: Ctx, pool_id: str, node_id: str) -> web.Response:
    """POST .../disablescheduling: no new tasks on the node (200)."""
    node = _ready_node(ctx, pool_id, node_id)
    how = _option(ctx, "nodeDisableSchedulingOption", ("requeue", "terminate", "taskcompletion"))
    ctx.sched.nodes.set_scheduling(key(pool_id), key(node["id"]), False, how)
    return empty(200, None, ctx, f"/pools/{pool_id}/nodes/{node_id}/disablescheduling")


def enable_scheduling(ctx: Ctx, pool_id: str, node_id: str) -> web.Response:
    """POST .../enablescheduling: the node takes tasks again (200)."""
    node = _ready_node(ctx, pool_id, node_id)
    ctx.sched.nodes.set_scheduling(key(pool_id), key(node["id"]), True)
    return empty(200, None, ctx, f"/pools/{pool_id}/nodes/{node_id}/enablescheduling")


def remove_nodes(ctx: Ctx, pool_id: str) -> web.Response:
    """POST /pools/{poolId}/removenodes: 202; the targets shrink by the nodes removed."""
    pool = get_pool_doc(ctx, pool_id, allow_deleting=False)
    body = ctx.body()
    ids = body.get("nodeList")
    if not isinstance(ids, list) or not ids:
        raise errors.missing_property("nodeList")
    if len(ids) > 100:
        raise errors.invalid_value("nodeList", len(ids), "at most 100 nodes a request")
    how = body.get("nodeDeallocationOption") or "requeue"
    if how not in _END_OPTIONS:
        raise errors.invalid_value("nodeDeallocationOption", how)
    if pool.get("allocationState") != "steady":
        raise errors.conflict("PoolNotSteady", "The pool is not in a steady allocation state.")
    nks = []
    for node_id in ids:
        if not isinstance(node_id, str):
            raise errors.invalid_value("nodeList", node_id)
        node = get_node_doc(ctx, pool_id, node_id)
        if key(node["id"]) not in nks:
            nks.append(key(node["id"]))
    ctx.sched.nodes.remove_nodes(key(pool_id), nks, how)
    return empty(202, pool, ctx, f"/pools/{pool_id}/removenodes")


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


USERS = "_users"  # a node's user accounts, kept in its document and never shown with it


def _shown(node: dict) -> dict:
    return model.hidden(node, USERS)


def list_nodes(ctx: Ctx, pool_id: str) -> web.Response:
    """GET /pools/{poolId}/nodes."""
    get_pool_doc(ctx, pool_id)
    return paged(ctx, "nodes", [_shown(n) for n in ctx.store.nodes.get(key(pool_id), {}).values()])


def get_node(ctx: Ctx, pool_id: str, node_id: str) -> web.Response:
    """GET /pools/{poolId}/nodes/{nodeId}."""
    return entity(ctx, _shown(get_node_doc(ctx, pool_id, node_id)), "nodes")
