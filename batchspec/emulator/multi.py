"""Multi-instance tasks (MultiInstanceSettings), as the API definition and Batch's guide to
them (learn.microsoft.com/azure/batch/batch-mpi) describe:

- One instance per node, on `numberOfInstances` nodes at once, and only in a pool with
  inter-node communication enabled and one task slot per node: otherwise "the task is never
  scheduled - it remains indefinitely in the active state".
- The primary (on the first node) and every subtask download the common resource files to the
  task directory, "one directory above the working directory", and run the coordination
  command. Once all have completed successfully, the primary runs the task's own command line
  with the task's resource files. The task's result is the primary's; the subtasks end with it,
  and what their coordination commands left running is stopped.
- Each instance gets AZ_BATCH_HOST_LIST (`ip,ip`), AZ_BATCH_NODE_LIST (`ip;ip`),
  AZ_BATCH_MASTER_NODE (`ip:port` of the primary's node), AZ_BATCH_IS_CURRENT_NODE_MASTER and
  AZ_BATCH_TASK_SHARED_DIR (the task directory) (Batch's compute node environment variables).
- The subtasks (ids 1..n-1) are listed by GET .../subtasksinfo as BatchSubtask records.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from . import model

if TYPE_CHECKING:
    from .scheduler import Running, Scheduler

SUBTASKS = "_subtasks"  # kept in the task's document, never shown with it (api_tasks)
_MASTER_PORT = 6000  # the port the guide's examples show; not for MPI traffic


def place(pool: dict, task: dict, free: dict[str, int]) -> tuple[str, ...] | None:
    """The nodes for one attempt (the primary's first), taken out of `free`; None if the pool
    cannot run it now (or ever)."""
    count = task["multiInstanceSettings"].get("numberOfInstances") or 1
    if not pool.get("enableInterNodeCommunication") or (pool.get("taskSlotsPerNode") or 1) != 1:
        return None
    idle = sorted(nk for nk, slots in free.items() if slots >= 1)
    if len(idle) < count:
        return None
    chosen = tuple(idle[:count])
    for nk in chosen:
        del free[nk]
    return chosen


async def run(sched: Scheduler, r: Running):
    """Coordinate on every node, then run the primary's command; the primary's outcome."""
    from .agent import TaskRun, task_dir  # imported late: the agent is an independent module

    job, task = r.job, r.task
    settings = task["multiInstanceSettings"]
    nodes = (r.node_key, *r.subnodes)
    contexts = [sched.nodes.context(r.pool_key, nk) for nk in nodes]
    ips = [sched.store.nodes[r.pool_key][nk].get("ipAddress") or "127.0.0.1" for nk in nodes]
    job_env = model.env_dict(job.get("commonEnvironmentSettings"))
    retries = task["executionInfo"]["retryCount"]

    def variables(index: int) -> dict[str, str]:
        return {
            "AZ_BATCH_HOST_LIST": ",".join(ips),
            "AZ_BATCH_NODE_LIST": ";".join(ips),
            "AZ_BATCH_MASTER_NODE": f"{ips[0]}:{_MASTER_PORT}",
            "AZ_BATCH_IS_CURRENT_NODE_MASTER": "true" if index == 0 else "false",
            "AZ_BATCH_TASK_SHARED_DIR": str(task_dir(contexts[index], job["id"], task["id"])),
        }

    coordination = {
        "id": task["id"],
        "commandLine": settings["coordinationCommandLine"],
        "resourceFiles": settings.get("commonResourceFiles") or [],
        "environmentSettings": task.get("environmentSettings"),
        "constraints": task.get("constraints"),
    }
    runs = [
        TaskRun(
            ctx,
            job["id"],
            coordination,
            retry_count=retries,
            job_env=job_env,
            service_env=variables(i),
            coordination=True,
        )
        for i, ctx in enumerate(contexts)
    ]
    r.run, r.subruns = runs[0], runs[1:]
    subtasks = [_subtask(sched, r, index, nk) for index, nk in enumerate(r.subnodes, start=1)]
    task[SUBTASKS] = subtasks
    outcomes = await asyncio.gather(*(each.run() for each in runs))
    failed = next((o for o in outcomes if o.result != "success"), None)
    outcome = failed
    if failed is None and r.end_reason is None:
        r.run = TaskRun(
            contexts[0], job["id"], dict(task), retry_count=retries, job_env=job_env, service_env=variables(0)
        )
        outcome = await r.run.run()
    for each in r.subruns:
        each.kill()  # the services a coordination command started end with the task
    for record, ended in zip(subtasks, outcomes[1:], strict=True):
        _complete(record, ended)
    return outcome or outcomes[0]


def _subtask(sched: Scheduler, r: Running, index: int, nk: str) -> dict:
    now = model.now_iso()
    info = sched.node_info(r.pool_key, nk, r.job["id"], r.task["id"])
    return {"id": index, "nodeInfo": info, "startTime": now, "state": "running", "stateTransitionTime": now}


def _complete(record: dict, outcome) -> None:
    """A subtask ends with its primary: its coordination command's exit code and result."""
    now = model.now_iso()
    record.update(
        previousState=record["state"],
        previousStateTransitionTime=record["stateTransitionTime"],
        state="completed",
        stateTransitionTime=now,
        endTime=now,
        result=outcome.result,
    )
    if outcome.exit_code is not None:
        record["exitCode"] = outcome.exit_code
    if outcome.failure_info:
        record["failureInfo"] = outcome.failure_info
