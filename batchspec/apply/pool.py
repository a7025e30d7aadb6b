"""Apply's pool step: create or replace the pool, or update it in place (properties first, then
autoscale, resize, reboot), then wait for its nodes and report a failed start task."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from azure.core.exceptions import HttpResponseError, ResourceExistsError

from batchspec import waiting
from batchspec.apply import node_logs, payloads
from batchspec.apply.common import indent, short, start_delete
from batchspec.errors import ApplyError
from batchspec.live import batch as live_batch
from batchspec.plan import Action, PoolHow

if TYPE_CHECKING:
    from batchspec.apply.executor import Applier

_SETTLING_NODE_STATES = {
    "creating",
    "starting",
    "waitingforstarttask",
    "rebooting",
    "reimaging",
    "unknown",
    "leavingpool",
}


def pool(run: Applier) -> None:
    pool = run.desired.pool
    changes = run.plan.of("pool")
    change = changes[0] if changes else None
    if change and change.action in (Action.CREATE, Action.REPLACE):
        if change.action == Action.REPLACE:
            run.ui.step(f"deleting pool {pool.id} to replace it")
            delete_pool(run, pool.id)
        else:
            run.wait_gone(lambda: live_batch.read_pool(run.t.batch, pool.id), f"pool {pool.id}")
        agent = change.how.node_agent_sku_id or pool.node_agent_sku_id
        if not agent:
            raise ApplyError(
                f"no node agent SKU for image {pool.image.to_dict()}: the service "
                "lists no such supported image",
                hint="set pool.nodeAgentSkuId",
            )
        run.ui.step(f"creating pool {pool.id} ({pool.vm_size})")
        try:
            body = payloads.pool(pool, run.desired.name, agent, run.grants(start_task=True))
            run.t.batch.create_pool(body)
        except ResourceExistsError:
            run.check_own_create("pool", live_batch.read_pool(run.t.batch, pool.id), pool.fingerprint())
    elif change and change.action == Action.UPDATE:
        update_pool(run, change.how)
    if run.tasks_will_run():
        wait_for_nodes(run)


def update_pool(run: Applier, how: PoolHow) -> None:
    pool = run.desired.pool
    client = run.t.batch
    # The properties (the start task and its storage access) first: nodes that the resize or
    # autoscale below adds run the start task as it is then.
    if how.properties:
        run.ui.step(f"updating pool {pool.id} (start task, metadata)")
        client.replace_pool_properties(
            pool.id, payloads.pool_properties(pool, run.desired.name, run.grants(start_task=True))
        )
    if how.disable_autoscale:
        client.disable_pool_auto_scale(pool.id)
    if how.autoscale:
        body = {"autoScaleFormula": pool.autoscale_formula}
        if pool.autoscale_interval:
            body["autoScaleEvaluationInterval"] = pool.autoscale_interval
        client.enable_pool_auto_scale(pool.id, body)
    if how.resize:
        wait_steady(run)
        run.ui.step(
            f"resizing pool {pool.id} to {pool.target_dedicated_nodes} dedicated, "
            f"{pool.target_low_priority_nodes} low-priority node(s)"
        )
        poller = client.begin_resize_pool(
            pool.id,
            {
                "targetDedicatedNodes": pool.target_dedicated_nodes,
                "targetLowPriorityNodes": pool.target_low_priority_nodes,
            },
            polling_interval=run.poll,
        )
        waiting.finish(poller, run.setup, f"pool {pool.id} to resize")
    if how.reboot:
        restart_nodes(run)


# The node states the service reboots from (the API definition's Nodes_RebootNode: "You can
# restart a Compute Node only if it is in an idle or running state"), and those that cannot
# come right without a new node.
_REBOOTABLE = ("idle", "running")
_BROKEN = ("starttaskfailed", "unusable")


def restart_nodes(run: Applier) -> None:
    """Every node runs the new start task: idle and running nodes reboot; nodes whose start task
    failed (or that are unusable) cannot be rebooted, so they are removed and the pool grows back
    to its target with new nodes. Nodes still starting run the start task they booted with."""
    pool = run.desired.pool
    client = run.t.batch
    reboot, replace = restart_split(live_batch.read_nodes(client, pool.id))
    if reboot:
        run.ui.step(f"rebooting {len(reboot)} node(s) to run the new start task")
    # All at once: a reboot takes minutes on Azure. requeue: tasks running there go back to
    # the queue, to run after the new start task.
    pollers = []
    for node in reboot:
        try:
            poller = client.begin_reboot_node(
                pool.id, node["id"], {"nodeRebootOption": "requeue"}, polling_interval=run.poll
            )
            pollers.append((node["id"], poller))
        except HttpResponseError as exc:
            run.outcome.problems.append(f"node {node['id']}: reboot failed: {short(exc)}")
    if replace:
        node_logs.keep(run, replace)  # what their start task said outlives them
        _replace(run, [n["id"] for n in replace])
    for node_id, poller in pollers:
        try:
            waiting.finish(poller, run.setup, f"node {node_id} to reboot")
        except HttpResponseError as exc:
            run.outcome.problems.append(f"node {node_id}: reboot failed: {short(exc)}")


def restart_split(nodes: list[dict[str, Any]]) -> tuple[list[dict], list[dict]]:
    """(the nodes to reboot, the nodes to replace) for a new start task; the rest (still
    starting) run the start task they booted with."""
    return [n for n in nodes if n.get("state") in _REBOOTABLE], [
        n for n in nodes if n.get("state") in _BROKEN
    ]


def _replace(run: Applier, node_ids: list[str]) -> None:
    pool = run.desired.pool
    client = run.t.batch
    run.ui.step(f"replacing {len(node_ids)} node(s) whose start task failed")
    wait_steady(run)
    removal = {"nodeList": node_ids, "nodeDeallocationOption": "requeue"}
    poller = client.begin_remove_nodes(pool.id, removal, polling_interval=run.poll)
    waiting.finish(poller, run.setup, f"{len(node_ids)} node(s) of pool {pool.id} to be removed")
    if pool.autoscale_formula:
        return  # the formula sets the size again
    wait_steady(run)
    targets = {
        "targetDedicatedNodes": pool.target_dedicated_nodes,
        "targetLowPriorityNodes": pool.target_low_priority_nodes,
    }
    poller = client.begin_resize_pool(pool.id, targets, polling_interval=run.poll)
    waiting.finish(poller, run.setup, f"pool {pool.id} to grow back")


def delete_pool(run: Applier, pool_id: str) -> None:
    poller = start_delete(run.t.batch.begin_delete_pool, pool_id, run.poll)
    if poller is not None:
        waiting.finish(poller, run.setup, f"pool {pool_id} to be deleted")
    run.wait_gone(lambda: live_batch.read_pool(run.t.batch, pool_id), f"pool {pool_id}")


def wait_steady(run: Applier) -> None:
    pool_id = run.desired.pool.id

    def steady() -> bool:
        live = live_batch.read_pool(run.t.batch, pool_id) or {}
        return live.get("allocationState", "steady") == "steady"

    waiting.until(steady, run.setup, run.poll, f"pool {pool_id} to finish resizing")


def wait_for_nodes(run: Applier) -> None:
    pool = run.desired.pool
    if pool.autoscale_formula or not (pool.target_dedicated_nodes or pool.target_low_priority_nodes):
        run.ui.note(f"pool {pool.id} has no fixed node count: tasks wait for nodes")
        return

    seen: list[dict[str, Any]] = []

    def settled() -> bool:
        live = live_batch.read_pool(run.t.batch, pool.id) or {}
        nodes = live_batch.read_nodes(run.t.batch, pool.id)
        seen[:] = nodes
        failed = [n for n in nodes if n.get("state") == "starttaskfailed"]
        if failed:
            node_logs.keep(run, nodes)  # so that they outlive the nodes the next apply replaces
            raise ApplyError(start_task_failure(run, failed))
        ready = nodes_ready(pool.id, live, nodes)
        for err in (live.get("resizeErrors") or []) if ready else []:  # short, yet it can run
            run.ui.note(
                f"pool {pool.id} has {len(nodes)} node(s), fewer than asked: "
                f"{err.get('code')}: {err.get('message')}"
            )
        return ready

    waiting.until(
        settled,
        run.setup,
        run.poll,
        f"the nodes of pool {pool.id}",
        on_first_wait=lambda: run.ui.step(f"waiting for the nodes of pool {pool.id}"),
    )
    node_logs.keep(run, seen)


def nodes_ready(pool_id: str, live: dict[str, Any], nodes: list[dict[str, Any]]) -> bool:
    """Whether the pool is ready for its tasks: steady, its nodes past starting, one of them
    usable. Raises ApplyError for a pool that will not be: no usable node once steady, or an
    allocation error (waiting would only run into the timeout)."""
    steady = live.get("allocationState") == "steady"
    if steady and nodes and not any(n.get("state") in _SETTLING_NODE_STATES for n in nodes):
        if not any(n.get("state") in ("idle", "running") for n in nodes):
            states = sorted({n.get("state") for n in nodes})
            raise ApplyError(f"pool {pool_id} has no usable node (states: {', '.join(states)})")
        return True
    # An allocation that ended short with no node at all will not run anything; one that got
    # some nodes runs on them once they have started. (BatchPool.resizeErrors: "set only when
    # the Pool allocationState is Steady".)
    for err in (live.get("resizeErrors") or []) if steady and not nodes else []:
        raise ApplyError(f"pool {pool_id} could not allocate nodes: {err.get('code')}: {err.get('message')}")
    return False


def start_task_failure(run: Applier, nodes: list[dict[str, Any]]) -> str:
    node = nodes[0]
    info = node.get("startTaskInfo") or {}
    failure = (info.get("failureInfo") or {}).get("message") or ""
    stderr = run.tail(
        lambda **kw: run.t.batch.download_node_file(
            run.desired.pool.id, node["id"], "startup/stderr.txt", **kw
        ),
        lambda: run.t.batch.get_node_file_properties(run.desired.pool.id, node["id"], "startup/stderr.txt"),
    )
    lines = [
        f"the start task failed on {len(nodes)} node(s) of pool {run.desired.pool.id}; "
        f"node {node['id']}: exit code {info.get('exitCode')} {failure}".rstrip()
    ]
    if stderr:
        lines.append("stderr (tail):\n" + indent(stderr))
    return "\n".join(lines)
