"""Pool allocation and compute nodes: each node is a directory `<data-dir>/nodes/<pool>/<node>`.

A resize allocates or releases node documents after the timing's `allocation` delay (so clients
observe `allocationState: resizing` as on Azure; timing.py), boots new nodes through the agent
(layout, then the start task), and releases idle nodes first on a shrink; nodes running tasks are
released last and their tasks requeued (the service's default `nodeDeallocationOption: requeue`).

Node states: creating -> starting -> (waitingforstarttask while a waitForSuccess start task
runs) -> idle <-> running; starttaskfailed when a waitForSuccess start task finally fails.
Per-node counters (running tasks, slots) live in memory; a node document is persisted when its
state changes.

Over 400 lines: the node state machine and pool allocation change each other's state and
are read together.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import shutil
import signal
from pathlib import Path
from typing import TYPE_CHECKING

from . import model, pool_shape
from .incidents import Incidents, NodeIncidents, Trouble
from .nodeops import NodeOperations
from .store import key
from .timing import Timing

if TYPE_CHECKING:
    from .scheduler import Scheduler

log = logging.getLogger("batchspec.emulator")

_SCHEDULABLE = ("idle", "running")
_RECENT_TASKS = 10  # how many of its latest task attempts a node reports


def _exact(pool: dict) -> dict:
    """The pool's image as the node reports it: with the version it resolved `latest` to."""
    image = dict((pool.get("virtualMachineConfiguration") or {}).get("imageReference") or {})
    version = image.get("version") or "latest"
    image["exactVersion"] = "1.0.0" if version == "latest" else version
    return image


def reap_orphans(root: Path) -> int:
    """Kill processes a previous emulator started on the nodes under `root`.

    They are recognised by the AZ_BATCH_NODE_ROOT_DIR the agent gives every task and start
    task (inherited by their children), not by their working directory: a developer's shell
    sitting in a node directory is not a task. Linux only (reads /proc); elsewhere nothing
    happens. Returns how many processes were killed.
    """
    proc = Path("/proc")
    if not proc.is_dir() or not root.exists():
        return 0
    base = str(root.resolve()) + os.sep
    marker = b"AZ_BATCH_NODE_ROOT_DIR="
    found = 0
    for entry in proc.iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:  # gone, or not ours to inspect
            continue
        for var in environ.split(b"\0"):
            if var.startswith(marker) and (var[len(marker) :].decode(errors="replace") + os.sep).startswith(
                base
            ):
                break
        else:
            continue
        found += 1
        with contextlib.suppress(OSError):
            os.kill(int(entry.name), signal.SIGKILL)
    if found:
        log.info("killed %d process(es) left over in %s", found, root)
    return found


# A start task the incidents made fail (incidents.py): it says so on stderr, exit code 1.
_FAILING_START_TASK = "/bin/sh -c 'echo \"start task failed: an emulated incident\" >&2; exit 1'"


class NodeManager(NodeOperations, NodeIncidents):
    """Nodes of every pool: allocation, boot, slot accounting and removal."""

    def __init__(self, scheduler: Scheduler, root: Path, timing: Timing, incidents: Incidents):
        self.sched = scheduler
        self.store = scheduler.store
        self.root = root
        self.timing = timing
        self.trouble = Trouble(scheduler.store, incidents)
        self.used: dict[tuple[str, str], int] = {}
        self._boots: dict[tuple[str, str], asyncio.Task] = {}
        self._resizes: dict[str, asyncio.Task] = {}

    def context(self, pk: str, nk: str):
        """The agent's NodeContext for a node."""
        from .agent import NodeContext

        pool = self.store.pools[pk]
        node = self.store.nodes[pk][nk]
        return NodeContext(
            root=self.root / pool["id"] / node["id"],
            pool_id=pool["id"],
            node_id=node["id"],
            account_name=self.sched.account_name,
            account_url=self.sched.account_url,
            is_dedicated=node.get("isDedicated", True),
            windows=model.is_windows(pool),
        )

    async def recover(self) -> None:
        """After a restart every node reboots (its start task runs again).

        Processes a crashed emulator left running in node directories are killed first, as
        a node's reboot would: their tasks are requeued and must not race the new attempt.
        """
        await asyncio.to_thread(reap_orphans, self.root)
        for pk, pool in list(self.store.pools.items()):
            if pool["state"] == "deleting":
                self.sched.spawn(self.delete_pool(pk))
                continue
            for nk, node in list(self.store.nodes.get(pk, {}).items()):
                if node["state"] in ("deallocating", "deallocated"):
                    self._finish_deallocate(pk, nk)  # a deallocated node stays down
                else:
                    self._boot(pk, nk)
            if pool.get("allocationState") != "steady" or self._target(pool) != len(
                self.store.nodes.get(pk, {})
            ):
                self.resize(pk)

    def cancel_all(self) -> None:
        """Stop every boot and resize in progress (shutdown)."""
        for t in [*self._boots.values(), *self._resizes.values()]:
            t.cancel()

    # Slots

    def free_slots(self, pk: str) -> dict[str, int]:
        """Free slots per schedulable node of a pool (nodes with none are left out)."""
        pool = self.store.pools[pk]
        per_node = pool.get("taskSlotsPerNode") or 1
        free = {}
        for nk, node in self.store.nodes.get(pk, {}).items():
            if node["state"] in _SCHEDULABLE and node.get("schedulingState", "enabled") == "enabled":
                f = per_node - self.used.get((pk, nk), 0)
                if f > 0:
                    free[nk] = f
        return free

    def task_started(self, pk: str, nk: str, slots: int, task: dict, job_id: str) -> None:
        """Account a task attempt on a node (and list it among the node's recentTasks)."""
        node = self.store.nodes[pk][nk]
        self.used[(pk, nk)] = self.used.get((pk, nk), 0) + slots
        node["runningTasksCount"] = node.get("runningTasksCount", 0) + 1
        node["runningTaskSlotsCount"] = self.used[(pk, nk)]
        node["totalTasksRun"] = node.get("totalTasksRun", 0) + 1
        recent = node.setdefault("recentTasks", [])
        recent.append(
            {
                "taskUrl": task.get("url"),
                "jobId": job_id,
                "taskId": task["id"],
                "taskState": "running",
                "executionInfo": task.get("executionInfo"),  # the live document: stays current
            }
        )
        del recent[:-_RECENT_TASKS]
        if node["state"] == "idle":
            model.set_state_only(node, "running")
            self.store.put_node(pk, node)

    def task_finished(self, pk: str, nk: str, slots: int, task: dict, outcome) -> None:
        """Release a task attempt's slots; the node goes idle when nothing runs on it."""
        self.used[(pk, nk)] = max(0, self.used.get((pk, nk), 0) - slots)
        node = self.store.nodes.get(pk, {}).get(nk)
        if node is None:
            return
        node["runningTasksCount"] = max(0, node.get("runningTasksCount", 0) - 1)
        node["runningTaskSlotsCount"] = self.used[(pk, nk)]
        for entry in reversed(node.get("recentTasks") or []):
            if entry["taskId"] == task["id"] and entry["taskState"] == "running":
                entry["taskState"] = "completed"
                break
        if getattr(outcome, "result", None) == "success":
            node["totalTasksSucceeded"] = node.get("totalTasksSucceeded", 0) + 1
        if node["state"] == "running" and node["runningTasksCount"] == 0:
            model.set_state_only(node, "idle")
            self.store.put_node(pk, node)

    # Allocation

    @staticmethod
    def _target(pool: dict) -> int:
        return (pool.get("targetDedicatedNodes") or 0) + (pool.get("targetLowPriorityNodes") or 0)

    def resize(self, pk: str, how: str = "requeue") -> None:
        """Start (or restart) moving the pool toward its target node counts.

        `how` is the nodeDeallocationOption for busy nodes released by a shrink.
        """
        pool = self.store.pools[pk]
        model.set_state(pool, "resizing", field="allocationState")
        self.store.put_pool(pool)
        # A resize in progress finishes first (it may be half-way through releasing a node);
        # this one then moves the pool on to the newest targets.
        self._resizes[pk] = self.sched.spawn(self._allocate(pk, how, self._resizes.get(pk)))

    def stop_resize(self, pk: str) -> None:
        """Stop a resize: the pool keeps the nodes it has now. As the definition's
        Pools_StopPoolResize says, the allocation state "changes first to stopping and then to
        steady"; a pool left short of its target says so in `resizeErrors` (ResizeStopped)."""
        old = self._resizes.pop(pk, None)
        if old:
            old.cancel()
        # Nodes a shrink had picked but not released yet stay in the pool.
        for nk, node in self.store.nodes.get(pk, {}).items():
            if node["state"] == "leavingpool":
                model.set_state_only(node, "running" if self.used.get((pk, nk)) else "idle")
                self.store.put_node(pk, node)
        pool = self.store.pools[pk]
        if old is None or old.done():
            self._settle(pk, pool)
        else:
            model.set_state(pool, "stopping", field="allocationState")
            model.touch(pool)
            self.store.put_pool(pool)
            self.sched.spawn(self._stopped(pk))
        self.sched.kick()

    async def _stopped(self, pk: str) -> None:
        await asyncio.sleep(self.timing.allocation)
        pool = self.store.pools.get(pk)
        if pool is None or pool["allocationState"] != "stopping":
            return
        self._settle(pk, pool)
        if self._target(pool) != pool["currentDedicatedNodes"] + pool["currentLowPriorityNodes"]:
            # The service's code for this (the definition names no ResizeError codes).
            stopped = "The resize was stopped before the pool reached its target node count."
            pool["resizeErrors"] = [{"code": "ResizeStopped", "message": stopped}]
            self.store.put_pool(pool)

    async def _allocate(self, pk: str, how: str = "requeue", previous: asyncio.Task | None = None) -> None:
        if previous is not None and not previous.done():
            try:
                await asyncio.wait([previous])
            except asyncio.CancelledError:  # stop resize: stop the earlier one too
                previous.cancel()
                raise
        if pk not in self.store.pools:
            return
        await asyncio.sleep(self.trouble.allocation_delay(pk, self.timing.allocation))
        pool = self.store.pools.get(pk)
        if pool is None or pool["state"] != "active":
            return
        nodes = self.store.nodes.setdefault(pk, {})
        short = 0
        for dedicated, wanted in (
            (True, pool.get("targetDedicatedNodes") or 0),
            (False, pool.get("targetLowPriorityNodes") or 0),
        ):
            have = [nk for nk, n in nodes.items() if n.get("isDedicated", True) == dedicated]
            missing = max(0, wanted - len(have))
            room = self.trouble.room(pk, len(nodes))
            if room is not None and missing > room:  # an allocation error was asked for
                short += missing - room
                missing = room
            for _ in range(missing):
                self._add_node(pk, pool, dedicated)
            if len(have) > wanted:
                # Idle (or never-started) nodes go first, busy ones last.
                order = {
                    "idle": 0,
                    "starttaskfailed": 0,
                    "creating": 1,
                    "starting": 1,
                    "waitingforstarttask": 1,
                    "running": 2,
                }
                victims = sorted(
                    have,
                    key=lambda nk: (order.get(nodes[nk]["state"], 1), self.used.get((pk, nk), 0)),
                )
                victims = victims[: len(have) - wanted]
                for nk in victims:  # first, so no new task lands on them meanwhile
                    model.set_state_only(nodes[nk], "leavingpool")
                for nk in victims:
                    await self._end_runs(pk, nk, how)
                    await self.remove_node(pk, nk)
        if self._resizes.get(pk) is asyncio.current_task():
            self._resizes.pop(pk, None)
            self._settle(pk, pool)  # (a newer resize waiting on this one settles instead)
            if short:
                pool["resizeErrors"] = [self.trouble.of(pk).resize_error(short)]
                self.store.put_pool(pool)
        self.sched.kick()

    def _settle(self, pk: str, pool: dict) -> None:
        pool.pop("resizeErrors", None)  # they describe the last resize only
        nodes = self.store.nodes.get(pk, {}).values()
        pool["currentDedicatedNodes"] = sum(1 for n in nodes if n.get("isDedicated", True))
        pool["currentLowPriorityNodes"] = sum(1 for n in nodes if not n.get("isDedicated", True))
        model.set_state(pool, "steady", field="allocationState")
        model.touch(pool)
        self.store.put_pool(pool)

    def _add_node(self, pk: str, pool: dict, dedicated: bool) -> None:
        node_id = f"tvmps_{secrets.token_hex(16)}_{'d' if dedicated else 'p'}"
        now = model.now_iso()
        node = {
            "id": node_id,
            "url": f"{self.sched.account_url}/pools/{pool['id']}/nodes/{node_id}",
            "state": "creating",
            "schedulingState": "enabled",
            "stateTransitionTime": now,
            "allocationTime": now,
            "lastBootTime": now,
            "ipAddress": "127.0.0.1",
            "affinityId": f"TVM:{node_id}",
            "vmSize": pool.get("vmSize"),
            "totalTasksRun": 0,
            "totalTasksSucceeded": 0,
            "runningTasksCount": 0,
            "runningTaskSlotsCount": 0,
            "isDedicated": dedicated,
            "nodeAgentInfo": {"version": "1.12.0", "lastUpdateTime": now},
            "virtualMachineInfo": {"imageReference": _exact(pool)},
            "certificateReferences": [],  # deprecated; the service still returns it empty
            **pool_shape.inbound_endpoints(pool, len(self.store.nodes.get(pk, {}))),
        }
        if pool.get("startTask"):
            node["startTask"] = pool["startTask"]
        self.store.put_node(pk, node)
        self._boot(pk, key(node_id))

    def _boot(self, pk: str, nk: str) -> None:
        old = self._boots.pop((pk, nk), None)
        if old:
            old.cancel()
        self.used.pop((pk, nk), None)
        node = self.store.nodes[pk][nk]
        node["runningTasksCount"] = node["runningTaskSlotsCount"] = 0
        if node["state"] != "creating":
            # At once, not when the boot coroutine first runs: until its start task has
            # succeeded the node must not look schedulable (its stored state may be "idle").
            model.set_state_only(node, "starting")
            self.store.put_node(pk, node)
        self._boots[(pk, nk)] = self.sched.spawn(self._run_boot(pk, nk))

    async def _run_boot(self, pk: str, nk: str) -> None:
        from .agent import prepare_node

        ctx = self.context(pk, nk)
        if self.store.nodes[pk][nk]["state"] == "creating":
            await asyncio.sleep(self.timing.node_create)
        await asyncio.to_thread(prepare_node, ctx)
        pool = self.store.pools[pk]
        node = self.store.nodes[pk][nk]
        model.set_state_only(node, "starting")
        self.store.put_node(pk, node)
        await asyncio.sleep(self.timing.node_start)
        node["lastBootTime"] = model.now_iso()
        start_task = pool.get("startTask")
        if not start_task:
            self._set_node(pk, node, "idle")
            self.came_up(pk, nk)
            return
        if self.trouble.fails_start_task(pk):  # the command given fails, as on a broken node
            start_task = {**start_task, "commandLine": _FAILING_START_TASK}
        wait = start_task.get("waitForSuccess", True)
        self._set_node(pk, node, "waitingforstarttask" if wait else "idle")
        ok = await self._run_start_task(pk, node, start_task, ctx)
        if wait and self.store.nodes.get(pk, {}).get(nk) is node:
            self._set_node(pk, node, "idle" if ok else "starttaskfailed")
        self._boots.pop((pk, nk), None)
        if ok:
            self.came_up(pk, nk)

    async def _run_start_task(self, pk: str, node: dict, start_task: dict, ctx) -> bool:
        from .agent import run_start_task

        limit = start_task.get("maxTaskRetryCount") or 0
        retries = 0
        while True:
            info = {"state": "running", "startTime": model.now_iso(), "retryCount": retries}
            node["startTaskInfo"] = info
            self.store.put_node(pk, node)
            try:
                outcome = await run_start_task(ctx, start_task)
            except Exception as exc:
                log.exception("start task on %s failed in the agent", node["id"])
                info.update(
                    state="completed",
                    endTime=model.now_iso(),
                    result="failure",
                    failureInfo={
                        "category": "servererror",
                        "code": "NodeAgentError",
                        "message": repr(exc),
                    },
                )
                return False
            info.update(
                state="completed",
                startTime=model.iso(outcome.start_time),
                endTime=model.iso(outcome.end_time),
                result=outcome.result,
            )
            if outcome.exit_code is not None:
                info["exitCode"] = outcome.exit_code
            if outcome.failure_info:
                info["failureInfo"] = outcome.failure_info
            self.store.put_node(pk, node)
            if outcome.result == "success":
                return True
            if limit != -1 and retries >= limit:
                return False
            retries += 1
            info["lastRetryTime"] = model.now_iso()

    def _set_node(self, pk: str, node: dict, state: str) -> None:
        model.set_state_only(node, state)
        self.store.put_node(pk, node)
        if state == "idle":
            self.sched.kick()

    async def remove_node(self, pk: str, nk: str) -> None:
        """Release a node: stop its boot, requeue its tasks, delete it and its directory."""
        boot = self._boots.pop((pk, nk), None)
        if boot:
            boot.cancel()
        node = self.store.nodes.get(pk, {}).get(nk)
        if node is None:
            return
        model.set_state_only(node, "leavingpool")
        runs = self.sched.requeue_node_tasks(pk, nk)
        for r in runs:
            await r.done.wait()
        await asyncio.sleep(self.timing.release)
        pool_id = self.store.pools[pk]["id"] if pk in self.store.pools else pk
        path = self.root / pool_id / node["id"]
        self.store.delete_node(pk, nk)
        self.used.pop((pk, nk), None)
        await asyncio.to_thread(shutil.rmtree, path, True)

    def begin_delete(self, pk: str) -> None:
        """The pool goes `deleting` at once; its nodes are released in the background."""
        pool = self.store.pools[pk]
        model.set_state_only(pool, "deleting")
        model.touch(pool)
        self.store.put_pool(pool)
        self.sched.spawn(self.delete_pool(pk))

    async def delete_pool(self, pk: str) -> None:
        """Finish an asynchronous pool delete: release every node, then drop the pool."""
        old = self._resizes.pop(pk, None)
        if old:
            old.cancel()
        await asyncio.sleep(self.timing.allocation)
        for nk in list(self.store.nodes.get(pk, {})):
            await self.remove_node(pk, nk)
        pool = self.store.pools.get(pk)
        if pool is not None:
            await asyncio.to_thread(shutil.rmtree, self.root / pool["id"], True)
        self.store.delete_pool(pk)
