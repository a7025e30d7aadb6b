"""Operations on individual nodes, mixed into NodeManager: reboot, reimage, deallocate and
start, enable/disable scheduling, remove nodes. Each ends the node's running tasks per the
request's option first.
"""

from __future__ import annotations

import asyncio
import shutil
from typing import TYPE_CHECKING

from . import model

if TYPE_CHECKING:
    from .scheduler import Scheduler
    from .store import Store
    from .timing import Timing


class NodeOperations:
    """Expects NodeManager's sched, store, timing, _boots, _resizes, _boot, remove_node,
    _settle."""

    sched: Scheduler
    store: Store
    _boots: dict[tuple[str, str], asyncio.Task]
    _resizes: dict[str, asyncio.Task]
    timing: Timing

    async def _end_runs(self, pk: str, nk: str, how: str) -> None:
        """End a node's runs as a reboot/removal option says, and wait for them.

        requeue (default): kill and requeue; terminate: kill, task completes with TaskEnded;
        taskcompletion / retaineddata: let them finish.
        """
        runs = [r for r in self.sched.running.values() if r.on(pk, nk)]
        if how == "terminate":
            for r in runs:
                r.end_reason = r.end_reason or "terminate"
                self.sched.kill_run(r)
        elif how not in ("taskcompletion", "retaineddata"):
            runs = self.sched.requeue_node_tasks(pk, nk)
        for r in runs:
            await r.done.wait()

    def reboot(self, pk: str, nk: str, how: str, *, reimage: bool) -> None:
        """Reboot (or reimage: the node directory is wiped) a node; its start task runs again."""
        node = self.store.nodes[pk][nk]
        model.set_state_only(node, "reimaging" if reimage else "rebooting")
        self.store.put_node(pk, node)
        old = self._boots.pop((pk, nk), None)
        if old:
            old.cancel()
        self._boots[(pk, nk)] = self.sched.spawn(self._reboot(pk, nk, how, reimage))

    async def _reboot(self, pk: str, nk: str, how: str, reimage: bool) -> None:
        await self._end_runs(pk, nk, how)
        await asyncio.sleep(self.timing.reboot)
        if reimage:
            await asyncio.to_thread(shutil.rmtree, self.context(pk, nk).root, True)
        node = self.store.nodes.get(pk, {}).get(nk)
        if node is None:
            return
        node.pop("startTaskInfo", None)
        self._boots.pop((pk, nk), None)
        self._boot(pk, nk)

    def deallocate(self, pk: str, nk: str, how: str) -> None:
        """deallocating, then deallocated: the node keeps its place in the pool and runs nothing
        until it is started (Nodes_DeallocateNode, Nodes_StartNode)."""
        node = self.store.nodes[pk][nk]
        model.set_state_only(node, "deallocating")
        self.store.put_node(pk, node)
        old = self._boots.pop((pk, nk), None)
        if old:
            old.cancel()
        self._boots[(pk, nk)] = self.sched.spawn(self._deallocate(pk, nk, how))

    async def _deallocate(self, pk: str, nk: str, how: str) -> None:
        await self._end_runs(pk, nk, how)
        await asyncio.sleep(self.timing.allocation)
        self._boots.pop((pk, nk), None)
        self._finish_deallocate(pk, nk)

    def _finish_deallocate(self, pk: str, nk: str) -> None:
        node = self.store.nodes.get(pk, {}).get(nk)
        if node is not None:
            model.set_state_only(node, "deallocated")
            self.store.put_node(pk, node)

    def start(self, pk: str, nk: str) -> None:
        """A deallocated node boots again: starting, its start task, idle."""
        self.store.nodes[pk][nk].pop("startTaskInfo", None)
        self._boot(pk, nk)

    def set_scheduling(self, pk: str, nk: str, enabled: bool, how: str = "requeue") -> None:
        """Enable or disable task scheduling on a node (disabling ends runs per `how`)."""
        node = self.store.nodes[pk][nk]
        node["schedulingState"] = "enabled" if enabled else "disabled"
        self.store.put_node(pk, node)
        if enabled:
            self.sched.kick()
        elif how != "taskcompletion":
            self.sched.spawn(self._end_runs(pk, nk, how))

    def remove_nodes(self, pk: str, nks: list[str], how: str) -> None:
        """Remove specific nodes; the pool's targets shrink by as many."""
        pool = self.store.pools[pk]
        for nk in nks:
            node = self.store.nodes[pk][nk]
            name = "targetDedicatedNodes" if node.get("isDedicated", True) else "targetLowPriorityNodes"
            pool[name] = max(0, (pool.get(name) or 0) - 1)
            model.set_state_only(node, "leavingpool")
        model.set_state(pool, "resizing", field="allocationState")
        model.touch(pool)
        self.store.put_pool(pool)
        self._resizes[pk] = self.sched.spawn(self._remove(pk, nks, how))

    async def _remove(self, pk: str, nks: list[str], how: str) -> None:
        for nk in nks:
            await self._end_runs(pk, nk, how)
            await self.remove_node(pk, nk)
        pool = self.store.pools.get(pk)
        if self._resizes.get(pk) is asyncio.current_task():
            self._resizes.pop(pk, None)
            if pool is not None:
                self._settle(pk, pool)
