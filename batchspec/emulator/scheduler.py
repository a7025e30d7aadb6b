"""The scheduler: assigns active tasks to free node slots and tracks every run to completion.

Scheduling is event driven: anything that can free a slot or make a task runnable (a task
added, a task finished, a node became idle, a job updated) calls `kick()`, and one dispatcher
coroutine wakes and does a single pass. Nothing polls.

Order: pools independently; within a pool, jobs by priority (highest first); equal-priority jobs
take turns, one task each, unless the pool's `taskSchedulingPolicy.jobDefaultOrder` is
`creationTime` (then the oldest first); within a job, tasks FIFO. A task needs `requiredSlots`
free slots on one node (`taskSlotsPerNode` each); the pool's `taskSchedulingPolicy.nodeFillType`
picks spread (most free node) or pack. An exclusive job manager takes a whole node; a
multi-instance task one whole node per instance (`multi.py`).

Task execution itself belongs to the node agent (`agent.TaskRun`): this module never starts a
process. Node provisioning (boot, start task, resize, delete) lives in `nodes.py`.

Over 400 lines: dispatch, completion, retries, dependencies and job actions are one event
loop's steps over the same state.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from . import model, multi
from .incidents import Incidents, spoiled
from .jobprep import JobPreparation
from .jobs import DELETE, REQUEUE, TERMINATE, JobLifecycle
from .nodes import NodeManager
from .scaling import AutoScaler
from .schedules import ScheduleRunner
from .store import Store, key
from .timing import Timing

log = logging.getLogger("batchspec.emulator")


@dataclass
class Running:
    """One attempt of one task on one node."""

    job_key: str
    task_key: str
    pool_key: str
    node_key: str
    slots: int
    job: dict
    task: dict  # the document itself: still valid if the task is deleted meanwhile
    run: object | None = None
    future: asyncio.Task | None = None
    end_reason: str | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)
    subnodes: tuple[str, ...] = ()  # a multi-instance task's other nodes (multi.py)
    subruns: list = field(default_factory=list)

    def on(self, pk: str, nk: str) -> bool:
        """Whether the attempt runs (in part) on that node."""
        return self.pool_key == pk and (self.node_key == nk or nk in self.subnodes)


def _iso(value: datetime | None) -> str | None:
    return model.iso(value) if value is not None else None


class Scheduler(JobLifecycle, JobPreparation):
    """Owns the dispatcher loop, the running attempts and the task state machine."""

    def __init__(
        self,
        store: Store,
        data_dir: Path,
        account_name: str,
        account_url: str,
        timing: Timing | None = None,
        incidents: Incidents | None = None,
    ):
        self.store = store
        self.account_name = account_name
        self.account_url = account_url
        self.nodes = NodeManager(self, data_dir / "nodes", timing or Timing(), incidents or Incidents())
        self.autoscaler = AutoScaler(self)
        self.schedules = ScheduleRunner(self)
        self.running: dict[tuple[str, str], Running] = {}
        # Active tasks per job in FIFO order (dict as an ordered set).
        self.queues: dict[str, dict[str, None]] = {}
        self.job_running: dict[str, int] = {}
        self._served_last: dict[str, str] = {}  # pool key -> the job that last got a task there
        self._wake = asyncio.Event()
        self._loop_task: asyncio.Task | None = None
        self._background: set[asyncio.Task] = set()
        self._job_timers: dict[str, asyncio.TimerHandle] = {}
        # How far each waiting task's check of its parents got: (job, task) -> (its dependsOn,
        # the parent ids, the first not yet satisfied). A parent that completed so stays so
        # unless it is deleted or reactivated, which start its job's checks over. Without it a
        # task depending on a 100,000-task range looked at every parent on each pass.
        self._dep_progress: dict[tuple[str, str], tuple[Any, list[str], int]] = {}

    # Lifecycle

    async def start(self) -> None:
        """Recover persisted state (requeue interrupted tasks, reboot nodes) and start."""
        requeued = []
        for jk, tasks in self.store.tasks.items():
            queue = self.queues.setdefault(jk, {})
            for tk, task in tasks.items():
                if task.get("state") in ("preparing", "running"):
                    self._requeue_doc(task)
                    requeued.append((jk, task))
                if task.get("state") == "active":
                    queue[tk] = None
        for jk, task in requeued:
            self.store.put_task(jk, task)
        for jk, job in list(self.store.jobs.items()):
            if job["state"] == "deleting":
                self.spawn(self.delete_job(jk))
            elif job["state"] == "terminating":
                self._maybe_finish_terminate(jk)
            elif job["state"] == "disabling":  # nothing runs after a restart: done disabling
                self.spawn(self._finish_disable(jk, []))
            else:
                self.arm_job_timer(jk)
                self.check_job(jk)
        await self.nodes.recover()
        self.autoscaler.recover()
        self.schedules.recover()
        self._loop_task = asyncio.create_task(self._dispatch_loop())
        self.kick()

    async def stop(self) -> None:
        """Kill every running process and stop the loop (state stays as persisted)."""
        if self._loop_task:
            self._loop_task.cancel()
        for timer in self._job_timers.values():
            timer.cancel()
        self.autoscaler.stop()
        self.schedules.stop()
        for r in list(self.running.values()):
            r.end_reason = r.end_reason or REQUEUE
            self._kill(r)
        self.nodes.cancel_all()
        pending = [r.future for r in self.running.values() if r.future] + list(self._background)
        for t in self._background:
            t.cancel()
        if pending:
            await asyncio.wait(pending, timeout=5)

    def spawn(self, coro) -> asyncio.Task:
        """Run a background coroutine, keeping a reference so it is not collected."""
        t = asyncio.create_task(coro)
        self._background.add(t)
        t.add_done_callback(self._background.discard)
        t.add_done_callback(_log_failure)
        return t

    def kick(self) -> None:
        """Ask the dispatcher for a pass (cheap; many kicks coalesce into one pass)."""
        self._wake.set()

    # Queue bookkeeping, called by the API when tasks change state

    def enqueue(self, job_key: str, task_keys: list[str]) -> None:
        """Tasks became active: make them eligible and wake the dispatcher."""
        q = self.queues.setdefault(job_key, {})
        for tk in task_keys:
            q[tk] = None
        self.kick()

    def dequeue(self, job_key: str, task_key: str) -> None:
        """A task left the active state without running (terminated, deleted)."""
        self.queues.get(job_key, {}).pop(task_key, None)

    # Dispatch

    async def _dispatch_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                self._dispatch()
            except Exception:  # a bug here must not stop scheduling for good
                log.exception("dispatch pass failed")

    def _dispatch(self) -> None:
        jobs_by_pool: dict[str, list[tuple[str, dict]]] = {}
        for jk, job in self.store.jobs.items():
            if job["state"] != "active" or not self.queues.get(jk):
                continue
            pool_id = model.pool_of(job)
            if pool_id:
                jobs_by_pool.setdefault(key(pool_id), []).append((jk, job))
        for pk, jobs in jobs_by_pool.items():
            pool = self.store.pools.get(pk)
            if not pool or pool["state"] != "active":
                continue
            free = self.nodes.free_slots(pk)
            if not free:
                continue
            policy = pool.get("taskSchedulingPolicy") or {}
            pack = policy.get("nodeFillType") == "pack"
            by_age = policy.get("jobDefaultOrder") == "creationTime"
            for group in _by_priority(jobs):
                if len(group) == 1 or by_age:  # the jobs in creation order, each as far as it goes
                    for jk, job in group:
                        self._dispatch_job(pk, jk, job, free, pack)
                        if not free:
                            break
                else:  # BatchJobDefaultOrder none: "scheduled uniformly from all equal-priority jobs"
                    self._take_turns(pk, group, free, pack)
                if not free:
                    break

    def _take_turns(self, pk: str, group: list[tuple[str, dict]], free: dict[str, int], pack: bool) -> None:
        """One task per job in turn, starting after the job served last in this pool (across
        passes too: with one free slot a pass places one task)."""
        keys = [jk for jk, _ in group]
        last = self._served_last.get(pk)
        start = keys.index(last) + 1 if last in keys else 0
        order = group[start:] + group[:start]
        placed = True
        while free and placed:
            placed = False
            for jk, job in order:
                if free and self._dispatch_job(pk, jk, job, free, pack, most=1):
                    self._served_last[pk] = jk
                    placed = True

    def _dispatch_job(
        self, pk: str, jk: str, job: dict, free: dict[str, int], pack: bool, most: int | None = None
    ) -> int:
        """Place this job's runnable tasks (`most` of them at most); how many were placed."""
        limit = job.get("maxParallelTasks", -1)
        if limit is None:
            limit = -1
        tasks = self.store.tasks.get(jk, {})
        queue = self.queues[jk]
        prepared = self.prep_done if job.get("jobPreparationTask") else None
        manager = job.get("jobManagerTask")
        manager_key = key(manager["id"]) if manager else None
        running = self.job_running.get(jk, 0)
        # Walk the queue in place (no copy: it can hold many thousands of tasks) and stop as
        # soon as the pool is full; the queue is changed only after the walk.
        placed: list[tuple[str, str, int, tuple[str, ...]]] = []
        stale: list[str] = []
        for tk in queue:
            if not free or (limit != -1 and running >= limit) or (most is not None and len(placed) >= most):
                break
            task = tasks.get(tk)
            if task is None or task.get("state") != "active":
                stale.append(tk)
                continue
            if task.get("dependsOn") and not self._dependencies_met(jk, task):
                continue
            if task.get("multiInstanceSettings"):
                nodes = multi.place(self.store.pools[pk], task, free)
                if nodes:
                    placed.append((tk, nodes[0], 1, nodes[1:]))
                    running += 1
                continue
            need = task.get("requiredSlots") or 1
            if tk == manager_key:
                need = self._manager_slots(pk, manager, need)
            candidates = [n for n, f in free.items() if f >= need]
            if tk == manager_key and not manager.get("allowLowPriorityNode", True):
                candidates = [n for n in candidates if self.store.nodes[pk][n].get("isDedicated", True)]
            if prepared is not None:  # only where the job preparation task succeeded
                candidates = [n for n in candidates if prepared(jk, job, pk, n)]
            if not candidates:
                continue
            nk = (min if pack else max)(candidates, key=lambda n: free[n])
            free[nk] -= need
            if free[nk] <= 0:
                del free[nk]
            placed.append((tk, nk, need, ()))
            running += 1
        for tk in stale:
            queue.pop(tk, None)
        for tk, nk, need, subnodes in placed:
            queue.pop(tk, None)
            self._start(pk, nk, jk, tk, need, subnodes)
        return len(placed)

    def _manager_slots(self, pk: str, manager: dict, need: int) -> int:
        """BatchJobManagerTask.runExclusive: "no other Tasks will run on the same Node for as
        long as the Job Manager is running": it takes every slot of a node with all free."""
        if manager.get("runExclusive", True):
            return self.store.pools[pk].get("taskSlotsPerNode") or 1
        return need

    def _dependencies_met(self, jk: str, task: dict) -> bool:
        tasks = self.store.tasks.get(jk, {})
        where = (jk, key(task["id"]))
        known = self._dep_progress.get(where)
        if known is not None and known[0] is task.get("dependsOn"):
            _, ids, start = known
        else:
            ids, start = model.dependency_ids(task), 0
        for i in range(start, len(ids)):
            parent = tasks.get(key(ids[i]))
            if (
                parent is None
                or parent.get("state") != "completed"
                or model.dependency_action(parent) != "satisfy"
            ):
                self._dep_progress[where] = (task.get("dependsOn"), ids, i)
                return False
        self._dep_progress.pop(where, None)
        return True

    def _recheck_dependencies(self, jk: str) -> None:
        self._dep_progress = {k: v for k, v in self._dep_progress.items() if k[0] != jk}

    # One attempt

    def _start(self, pk: str, nk: str, jk: str, tk: str, slots: int, subnodes: tuple[str, ...] = ()) -> None:
        task = self.store.tasks[jk][tk]
        r = Running(jk, tk, pk, nk, slots, self.store.jobs[jk], task, subnodes=subnodes)
        self.running[(jk, tk)] = r
        self.job_running[jk] = self.job_running.get(jk, 0) + 1
        job_id = self.store.jobs[jk]["id"]
        for each in (nk, *subnodes):
            self.nodes.task_started(pk, each, slots, task, job_id)
            self.nodes.task_began(pk, each)  # (a spot node may be preempted: incidents.py)
        task["nodeInfo"] = self.node_info(pk, nk, job_id, task["id"])
        model.set_state(task, "preparing")
        self.store.account(jk, task)
        r.future = asyncio.create_task(self._attempt(r))
        r.future.add_done_callback(_log_failure)

    def _as_run(self, pk: str, task: dict) -> dict:
        """The task as the agent runs it: an upload the incidents spoil goes to a container
        URL whose signature the store refuses, so it fails through the agent's own upload."""
        run = dict(task)
        if run.get("outputFiles") and self.nodes.trouble.spoils_upload(pk):
            run["outputFiles"] = [spoiled(of) for of in run["outputFiles"]]
        return run

    def node_info(self, pk: str, nk: str, job_id: str, task_id: str) -> dict:
        """BatchNodeInfo: where an attempt runs."""
        pool, node = self.store.pools[pk], self.store.nodes[pk][nk]
        rel = f"workitems/{job_id}/job-1/{task_id}"
        node_url = f"{self.account_url}/pools/{pool['id']}/nodes/{node['id']}"
        return {
            "affinityId": node.get("affinityId"),
            "nodeUrl": node_url,
            "poolId": pool["id"],
            "nodeId": node["id"],
            "taskRootDirectory": rel,
            "taskRootDirectoryUrl": f"{node_url}/files/{rel}",
        }

    async def _attempt(self, r: Running) -> None:
        from .agent import TaskRun  # imported late: the agent is an independent module

        job, task = r.job, r.task
        outcome = None
        try:
            info = task.setdefault("executionInfo", {})
            info.setdefault("retryCount", 0)
            info.setdefault("requeueCount", 0)
            for stale in ("endTime", "exitCode", "result", "failureInfo"):
                info.pop(stale, None)
            info["startTime"] = model.now_iso()
            model.set_state(task, "running")
            if self._current(r):  # a task deleted meanwhile must not come back
                self.store.put_task(r.job_key, task)
            if r.end_reason is None and task.get("multiInstanceSettings"):
                outcome = await multi.run(self, r)
            elif r.end_reason is None:
                r.run = TaskRun(
                    self.nodes.context(r.pool_key, r.node_key),
                    job["id"],
                    self._as_run(r.pool_key, task),
                    retry_count=info["retryCount"],
                    job_env=model.env_dict(job.get("commonEnvironmentSettings")),
                )
                outcome = await r.run.run()
        except Exception as exc:  # the agent failed: report it as the service would
            log.exception("task %s/%s: agent error", job["id"], task["id"])
            outcome = exc
        finally:
            if self.running.get((r.job_key, r.task_key)) is r:
                del self.running[(r.job_key, r.task_key)]
            self.job_running[r.job_key] = max(0, self.job_running.get(r.job_key, 1) - 1)
            for nk in (r.node_key, *r.subnodes):
                self.nodes.task_finished(r.pool_key, nk, r.slots, task, outcome)
            r.done.set()
            self.kick()
        try:
            self._finish(r, task, outcome)
        except Exception:  # never leave a task stuck in "running" because of a bug here
            log.exception("task %s/%s: completing failed", job["id"], task["id"])
            if not self._current(r):
                return
            _server_failure(task, "InternalError", "The emulator failed to complete the task.")
            self.complete(r.job_key, task)

    def _current(self, r: Running) -> bool:
        """Whether the run's task document is still the stored one (not deleted/replaced)."""
        return self.store.tasks.get(r.job_key, {}).get(r.task_key) is r.task

    def _finish(self, r: Running, task: dict, outcome) -> None:
        jk = r.job_key
        if r.end_reason == DELETE or not self._current(r):
            return
        if r.end_reason == REQUEUE:
            self._requeue_doc(task)
            self.store.put_task(jk, task)
            self.enqueue(jk, [r.task_key])
            return
        info = task["executionInfo"]
        if isinstance(outcome, BaseException) or outcome is None:
            _server_failure(task, "NodeAgentError", f"The node agent failed: {outcome!r}")
        else:
            info.update(
                startTime=_iso(outcome.start_time) or info["startTime"],
                endTime=_iso(outcome.end_time) or model.now_iso(),
                result=outcome.result,
            )
            if outcome.exit_code is not None:
                info["exitCode"] = outcome.exit_code
            if outcome.failure_info:
                info["failureInfo"] = outcome.failure_info
        if r.end_reason == TERMINATE:
            info["result"] = "failure"
            info["failureInfo"] = _ended()
        elif info["result"] == "failure" and self._may_retry(task):
            info["retryCount"] += 1
            info["lastRetryTime"] = model.now_iso()
            task.pop("nodeInfo", None)
            model.set_state(task, "active")
            model.touch(task)
            self.store.put_task(jk, task)
            self.enqueue(jk, [r.task_key])
            return
        self.complete(jk, task)

    def _may_retry(self, task: dict) -> bool:
        # BatchTaskExecutionInfo.retryCount: "Task application failures (non-zero exit code)
        # are retried, pre-processing errors (the Task could not be run) and file upload errors
        # are not retried." A task that exited nonzero and then failed its upload is retried.
        info = task["executionInfo"]
        if info.get("exitCode") in (None, 0):
            return False
        limit = (task.get("constraints") or {}).get("maxTaskRetryCount")
        if limit is None:
            limit = 0
        return limit == -1 or info["retryCount"] < limit

    def complete(self, jk: str, task: dict) -> None:
        """Move a task to completed, persist it, and apply the job-level consequences."""
        model.set_state(task, "completed")
        model.touch(task)
        self.store.put_task(jk, task)
        job = self.store.jobs.get(jk)
        if job is None:
            return
        action = None
        if (
            task["executionInfo"].get("result") == "failure"
            and job.get("onTaskFailure") == "performexitoptionsjobaction"
            and job["state"] == "active"
        ):
            action = model.job_action(task)
        if action == "terminate":
            self.terminate_job(jk, "TaskFailed")
        elif action == "disable":  # the service's equivalent: disable with requeue
            self.disable_job(jk, "requeue")
        else:
            self.check_job(jk)
        self.kick()  # dependents may now run

    @staticmethod
    def _requeue_doc(task: dict) -> None:
        info = task.setdefault("executionInfo", {})
        info["requeueCount"] = info.get("requeueCount", 0) + 1
        info["lastRequeueTime"] = model.now_iso()
        task.pop("nodeInfo", None)
        model.set_state(task, "active")
        model.touch(task)

    # Ending runs from outside

    def kill_run(self, r: Running) -> None:
        """Kill one run's process tree (its end_reason says what happens next)."""
        self._kill(r)

    def _kill(self, r: Running) -> None:
        for run in (r.run, *r.subruns):
            if run is None:
                continue
            try:
                run.kill()
            except Exception:  # the process may already be gone
                log.debug("kill failed", exc_info=True)

    def terminate_task(self, jk: str, tk: str) -> None:
        """Terminate a task: kill its run, or complete it at once if it is not running."""
        task = self.store.tasks[jk][tk]
        r = self.running.get((jk, tk))
        if r is not None:
            r.end_reason = TERMINATE
            self._kill(r)
            return
        if task["state"] == "completed":
            return
        self.dequeue(jk, tk)
        info = task.setdefault("executionInfo", {"retryCount": 0, "requeueCount": 0})
        info.update(endTime=model.now_iso(), result="failure", failureInfo=_ended())
        self.complete(jk, task)

    def reactivate_task(self, jk: str, tk: str) -> None:
        """A failed, completed task goes back to active with its retry count reset."""
        self._recheck_dependencies(jk)
        task = self.store.tasks[jk][tk]
        info = task.get("executionInfo") or {}
        task["executionInfo"] = {"retryCount": 0, "requeueCount": info.get("requeueCount", 0)}
        task.pop("nodeInfo", None)
        model.set_state(task, "active")
        model.touch(task)
        self.store.put_task(jk, task)
        self.enqueue(jk, [tk])

    def forget_task(self, jk: str, tk: str) -> Running | None:
        """The task was deleted: stop its run if any, and return it."""
        self._recheck_dependencies(jk)
        self.dequeue(jk, tk)
        r = self.running.get((jk, tk))
        if r is not None:
            r.end_reason = DELETE
            self._kill(r)
        return r

    def requeue_node_tasks(self, pk: str, nk: str) -> list[Running]:
        """The node is going away: kill its runs and put their tasks back in the queue."""
        runs = [r for r in self.running.values() if r.on(pk, nk)]
        for r in runs:
            r.end_reason = r.end_reason or REQUEUE
            self._kill(r)
        return runs


def _by_priority(jobs: list[tuple[str, dict]]) -> list[list[tuple[str, dict]]]:
    """The jobs grouped by priority, highest first; each group in creation order."""
    groups: dict[int, list[tuple[str, dict]]] = {}
    for item in jobs:
        groups.setdefault(item[1].get("priority") or 0, []).append(item)
    return [groups[p] for p in sorted(groups, reverse=True)]


def _server_failure(task: dict, code: str, message: str) -> None:
    """The attempt ended in a failure of the service's own (failureInfo category servererror)."""
    failure = {"category": "servererror", "code": code, "message": message}
    info = task.setdefault("executionInfo", {})
    info.update(endTime=model.now_iso(), result="failure", failureInfo=failure)


def _ended() -> dict:
    """The failureInfo of a task ended by a terminate request."""
    return {
        "category": "usererror",
        "code": "TaskEnded",
        "message": "Task Was Ended by User Request",
    }


def _log_failure(t: asyncio.Task) -> None:
    if not t.cancelled() and t.exception() is not None:
        log.error("background task failed", exc_info=t.exception())
