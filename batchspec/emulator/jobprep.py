"""Job preparation and release tasks, mixed into the Scheduler.

As the API definition's BatchJobPreparationTask and BatchJobReleaseTask say: the preparation
task runs on a node before any task of the job runs there (retried on a nonzero exit code up to
its maxTaskRetryCount); with waitForSuccess (the default) the job's tasks run on that node only
once it succeeded. When the job ends (completed or deleted) the release task runs on every node
that ran the preparation task, for at most its maxWallClockTime (15 minutes at most).

Each node's runs are kept in the job document under STATUS (never shown with the job): the
job's preparation and release task status listing reads them.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from . import model
from .store import key

if TYPE_CHECKING:
    from .scheduler import Scheduler

STATUS = "_prepRelease"  # node key -> BatchJobPreparationAndReleaseTaskStatus
PREP_ID, RELEASE_ID = "jobpreparation", "jobrelease"
_RELEASE_LIMIT = "PT15M"  # BatchJobReleaseTask.maxWallClockTime: the default, and the most


def filled_prep(task: dict) -> dict:
    """The preparation task with the defaults the service fills in and returns."""
    defaults = {"id": PREP_ID, "userIdentity": model.auto_user(), "waitForSuccess": True}
    return {
        **model.filled({**defaults, "rerunOnNodeRebootAfterSuccess": True}, task),
        "constraints": model.filled(model.TASK_CONSTRAINTS, task.get("constraints")),
    }


def filled_release(task: dict) -> dict:
    defaults = {"id": RELEASE_ID, "userIdentity": model.auto_user(), "maxWallClockTime": _RELEASE_LIMIT}
    return model.filled({**defaults, "retentionTime": "P7D"}, task)


class JobPreparation:
    """Expects the Scheduler's store, nodes, account_url, spawn and kick."""

    def prep_done(self: Scheduler, jk: str, job: dict, pk: str, nk: str) -> bool:
        """Whether the job's tasks may run on the node; starts the preparation task there the
        first time it is asked."""
        prep = job["jobPreparationTask"]
        entry = job.setdefault(STATUS, {}).get(nk)
        if entry is None:
            self._start_prep(jk, job, pk, nk)
            return False
        info = entry["jobPreparationTaskExecutionInfo"]
        if info["state"] != "completed":
            return False
        return info.get("result") == "success" or not prep.get("waitForSuccess", True)

    def _entry(self: Scheduler, job: dict, pk: str, nk: str, task_id: str) -> tuple[dict, dict]:
        pool, node = self.store.pools[pk], self.store.nodes[pk][nk]
        node_url = f"{self.account_url}/pools/{pool['id']}/nodes/{node['id']}"
        rel = f"workitems/{job['id']}/job-1/{task_id}"
        location = {"taskRootDirectory": rel, "taskRootDirectoryUrl": f"{node_url}/files/{rel}"}
        entry = job[STATUS].setdefault(nk, {"poolId": pool["id"], "nodeId": node["id"], "nodeUrl": node_url})
        return entry, location

    def _start_prep(self: Scheduler, jk: str, job: dict, pk: str, nk: str) -> None:
        entry, location = self._entry(job, pk, nk, job["jobPreparationTask"]["id"])
        entry["jobPreparationTaskExecutionInfo"] = {
            "startTime": model.now_iso(),
            "state": "running",
            "retryCount": 0,
            **location,
        }
        self.store.put_job(job)
        self.spawn(self._run_prep(jk, pk, nk))

    async def _run_prep(self: Scheduler, jk: str, pk: str, nk: str) -> None:
        from .agent import TaskRun  # late: the agent is an independent module

        job = self.store.jobs[jk]
        prep = job["jobPreparationTask"]
        limit = prep["constraints"].get("maxTaskRetryCount", 0)
        env = model.env_dict(job.get("commonEnvironmentSettings"))
        retries = 0
        while True:
            run = TaskRun(self.nodes.context(pk, nk), job["id"], dict(prep), retry_count=retries, job_env=env)
            outcome = await run.run()
            if outcome.exit_code in (None, 0) or (limit != -1 and retries >= limit):
                break
            retries += 1
        job = self.store.jobs.get(jk)
        if job is None or nk not in job.get(STATUS, {}):
            return
        info = job[STATUS][nk]["jobPreparationTaskExecutionInfo"]
        info.update(_ended(outcome), state="completed", retryCount=retries)
        if retries:
            info["lastRetryTime"] = model.now_iso()
        self.store.put_job(job)
        self.kick()

    async def run_releases(self: Scheduler, jk: str) -> None:
        """The job ended: its release task on every node that ran its preparation task."""
        from .agent import TaskRun

        job = self.store.jobs.get(jk)
        release = (job or {}).get("jobReleaseTask")
        if not release or not job.get("jobPreparationTask"):
            return
        runs = []
        for nk, entry in list(job.get(STATUS, {}).items()):
            pk = key(entry["poolId"])
            if nk not in self.store.nodes.get(pk, {}) or "jobReleaseTaskExecutionInfo" in entry:
                continue
            _, location = self._entry(job, pk, nk, release["id"])
            entry["jobReleaseTaskExecutionInfo"] = {
                "startTime": model.now_iso(),
                "state": "running",
                **location,
            }
            spec = {**release, "constraints": {"maxWallClockTime": release["maxWallClockTime"]}}
            env = model.env_dict(job.get("commonEnvironmentSettings"))
            runs.append((entry, TaskRun(self.nodes.context(pk, nk), job["id"], spec, job_env=env).run()))
        self.store.put_job(job)
        outcomes = await asyncio.gather(*(run for _, run in runs), return_exceptions=True)
        for (entry, _), outcome in zip(runs, outcomes, strict=True):
            ended = _ended(outcome) if not isinstance(outcome, BaseException) else {"result": "failure"}
            entry["jobReleaseTaskExecutionInfo"].update(ended, state="completed")
        if self.store.jobs.get(jk) is job:
            self.store.put_job(job)


def _ended(outcome) -> dict:
    info = {"endTime": model.now_iso(), "result": outcome.result}
    if outcome.exit_code is not None:
        info["exitCode"] = outcome.exit_code
    if outcome.failure_info:
        info["failureInfo"] = outcome.failure_info
    return info
