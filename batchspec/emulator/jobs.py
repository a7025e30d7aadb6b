"""Job lifecycle rules, mixed into the Scheduler: terminate (running tasks end, the job
completes once none runs), onAllTasksComplete, constraints.maxWallClockTime, async delete, and
the task directories a deleted task or job leaves on its nodes.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import uuid
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from . import autopools, model
from .store import key

if TYPE_CHECKING:
    from .scheduler import Running

_TEN_YEARS = 10 * 365 * 86400.0  # "unlimited" durations are ~10675199 days
# How a run ended when the job decided: its task was terminated, or deleted with the job.
# (REQUEUE: its node went away or its job was disabled with requeue; the task is queued again.)
TERMINATE, DELETE, REQUEUE = "terminate", "delete", "requeue"


class JobLifecycle:
    """Job state transitions; expects the Scheduler's store, running, job_running, queues,
    schedules."""

    running: dict[tuple[str, str], Running]
    job_running: dict[str, int]

    def terminate_job(self, jk: str, reason: str) -> None:
        """Job -> terminating; running tasks are ended; completed once none runs."""
        job = self.store.jobs[jk]
        if job["state"] in ("completed", "terminating", "deleting"):
            return
        model.set_state(job, "terminating")
        job.setdefault("executionInfo", {})["terminateReason"] = reason
        model.touch(job)
        self.store.put_job(job)
        for r in [r for r in self.running.values() if r.job_key == jk]:
            r.end_reason = r.end_reason or TERMINATE
            self._kill(r)
        self._maybe_finish_terminate(jk)

    def disable_job(self, jk: str, disable_tasks: str) -> None:
        """Job -> disabling -> disabled; running tasks are requeued, terminated or waited for."""
        job = self.store.jobs[jk]
        model.set_state(job, "disabling")
        model.touch(job)
        self.store.put_job(job)
        runs = [r for r in self.running.values() if r.job_key == jk]
        if disable_tasks != "wait":
            for r in runs:
                r.end_reason = r.end_reason or (REQUEUE if disable_tasks == "requeue" else TERMINATE)
                self._kill(r)
        self.spawn(self._finish_disable(jk, runs))

    async def _finish_disable(self, jk: str, runs: list[Running]) -> None:
        for r in runs:
            await r.done.wait()
        job = self.store.jobs.get(jk)
        if job is not None and job["state"] == "disabling":
            model.set_state(job, "disabled")
            model.touch(job)
            self.store.put_job(job)

    def enable_job(self, jk: str) -> None:
        """A disabled job becomes active again (enabling is instantaneous here)."""
        job = self.store.jobs[jk]
        model.set_state(job, "enabling")
        model.set_state(job, "active")
        model.touch(job)
        self.store.put_job(job)
        self.check_job(jk)
        self.kick()

    def arm_job_timer(self, jk: str) -> None:
        """Enforce the job's constraints.maxWallClockTime (from its creation time)."""
        old = self._job_timers.pop(jk, None)
        if old:
            old.cancel()
        job = self.store.jobs.get(jk)
        if job is None or job["state"] not in ("active", "disabled"):
            return
        limit = model.parse_duration((job.get("constraints") or {}).get("maxWallClockTime"))
        if limit is None or limit > _TEN_YEARS:
            return
        created = datetime.strptime(job["creationTime"], "%Y-%m-%dT%H:%M:%S.%fZ")
        elapsed = (datetime.now(timezone.utc).replace(tzinfo=None) - created).total_seconds()
        self._job_timers[jk] = asyncio.get_running_loop().call_later(
            max(0.0, limit - elapsed), self._job_expired, jk
        )

    def _job_expired(self, jk: str) -> None:
        self._job_timers.pop(jk, None)
        job = self.store.jobs.get(jk)
        if job is not None and job["state"] in ("active", "disabled"):
            self.terminate_job(jk, "MaxWallClockTimeExpiry")

    def _maybe_finish_terminate(self, jk: str) -> None:
        job = self.store.jobs.get(jk)
        if job is None or job["state"] != "terminating":
            return
        if self.job_running.get(jk, 0) > 0:
            self.spawn(self._finish_terminate_later(jk))
            return
        model.set_state(job, "completed")
        job.setdefault("executionInfo", {})["endTime"] = model.now_iso()
        model.touch(job)
        self.store.put_job(job)
        self.spawn(self.run_releases(jk))
        autopools.job_ended(self, job)
        self.schedules.job_ended(job["id"])

    async def _finish_terminate_later(self, jk: str) -> None:
        runs = [r for r in self.running.values() if r.job_key == jk]
        for r in runs:
            await r.done.wait()
        # The finishing runs completed their tasks; give their callbacks a turn.
        await asyncio.sleep(0)
        if self.job_running.get(jk, 0) == 0:
            self._maybe_finish_terminate(jk)

    def check_job(self, jk: str) -> None:
        """onAllTasksComplete=terminatejob: terminate once every task is completed.

        As in the service, a job with no tasks has all its tasks complete.
        """
        job = self.store.jobs.get(jk)
        if job is None:
            return
        if job["state"] == "terminating":
            self._maybe_finish_terminate(jk)
            return
        manager = job.get("jobManagerTask")
        if manager and manager.get("killJobOnCompletion", True) and job["state"] in ("active", "disabled"):
            # BatchJobManagerTask.killJobOnCompletion: "when the Job Manager Task completes,
            # the Batch service marks the Job as complete" (terminateReason JMComplete).
            done = self.store.tasks.get(jk, {}).get(key(manager["id"]), {}).get("state") == "completed"
            if done:
                self.terminate_job(jk, "JMComplete")
                return
        if job["state"] != "active" or job.get("onAllTasksComplete") != "terminatejob":
            return
        if all(t.get("state") == "completed" for t in self.store.tasks.get(jk, {}).values()):
            self.terminate_job(jk, "AllTasksComplete")

    async def delete_job(self, jk: str) -> None:
        """Finish an asynchronous job delete: end its runs, then drop it, its tasks and their
        directories on the nodes (Jobs_DeleteJob: "the Batch services deletes those Tasks'
        working directories and all their contents")."""
        runs = [r for r in self.running.values() if r.job_key == jk]
        for r in runs:
            r.end_reason = DELETE
            self._kill(r)
        for r in runs:
            await r.done.wait()
        job = self.store.jobs.get(jk)
        if job is not None:
            await self.run_releases(jk)
            await self.remove_task_dirs(job["id"])
        await asyncio.sleep(self.nodes.timing.job_delete)
        self.queues.pop(jk, None)
        self.job_running.pop(jk, None)
        self.store.delete_job(jk)
        if job is not None:
            autopools.job_ended(self, job)
            self.schedules.job_ended(job["id"])

    async def remove_task_dirs(
        self, job_id: str, task_id: str | None = None, run: Running | None = None
    ) -> None:
        """The directories of a job's tasks (or of one task) on every node, once `run` ended.
        Tasks_DeleteTask: "all of the files in its directory on the Compute Node where it ran
        are also deleted (regardless of the retention time)"."""
        if run is not None:
            await run.done.wait()
        pattern = f"*/*/workitems/{job_id}" + (f"/job-1/{task_id}" if task_id is not None else "")
        # Each is moved aside before it is removed (in a thread, while the loop goes on): a task
        # added again with the same id at once makes its directory at the same path meanwhile,
        # and an rmtree of that path took the new one's files ("ResourceDirectoryCreateFailed").
        doomed = []
        for path in list(self.nodes.root.glob(pattern)):
            aside = path.with_name(f".deleted-{path.name}-{uuid.uuid4().hex[:8]}")
            with contextlib.suppress(OSError):
                path.rename(aside)
                doomed.append(aside)
        for path in doomed:
            await asyncio.to_thread(shutil.rmtree, path, True)
