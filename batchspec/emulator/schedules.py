"""Job schedules: each active schedule creates its jobs when they are due, as the API
definition's BatchJobScheduleConfiguration describes.

- A job is due at `doNotRunUntil` (or the schedule's creation), then every `recurrenceInterval`.
- It must be created within `startWindow` of that time (default: no limit, though a due job is
  never carried into the next interval); a missed occurrence creates no job.
- At most one active job at a time: a due job waits for the previous one to complete.
- No job after `doNotRunAfter`; the schedule completes once that is past (or, without a
  recurrence, once its one job completed) and it has no active job.

Jobs are named `<schedule>:job-<n>` as the service names them; `:` is not allowed in ids a client
chooses, so the prefix tells a schedule's jobs. One coroutine per schedule sleeps until the next
due time; a job of the schedule ending wakes it (`job_ended`). Nothing polls.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING

from . import autopools, model
from .store import key

if TYPE_CHECKING:
    from .scheduler import Scheduler

log = logging.getLogger("batchspec.emulator.schedules")


def parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def _seconds(value: str | None) -> float | None:
    return model.parse_duration(value) if value else None


def jobs_of(store, schedule_id: str) -> list[dict]:
    prefix = key(schedule_id) + ":job-"
    return [job for jk, job in store.jobs.items() if jk.startswith(prefix)]


class ScheduleRunner:
    def __init__(self, scheduler: Scheduler):
        self.sched = scheduler
        self.store = scheduler.store
        self._runners: dict[str, asyncio.Task] = {}
        self._wake: dict[str, asyncio.Event] = {}

    def recover(self) -> None:
        for sk, schedule in list(self.store.schedules.items()):
            if schedule["state"] == "deleting":
                self.sched.spawn(self.delete(sk))
            else:
                self.arm(sk)

    def stop(self) -> None:
        for task in self._runners.values():
            task.cancel()

    def arm(self, sk: str) -> None:
        """(Re)start serving a schedule after it was created or changed."""
        old = self._runners.pop(sk, None)
        if old is not None:
            old.cancel()
        self._wake[sk] = asyncio.Event()
        self._runners[sk] = self.sched.spawn(self._serve(sk))

    def job_ended(self, job_id: str) -> None:
        """A job completed or was deleted: its schedule may create the next or complete."""
        if ":job-" in job_id:
            event = self._wake.get(key(job_id.split(":job-")[0]))
            if event is not None:
                event.set()

    def active_job(self, schedule_id: str) -> dict | None:
        return next((j for j in jobs_of(self.store, schedule_id) if j["state"] != "completed"), None)

    async def _serve(self, sk: str) -> None:
        try:
            while await self._step(sk):
                await asyncio.sleep(0)  # a step may not have waited: let the loop breathe
        except asyncio.CancelledError:
            raise
        except Exception:  # a bug here must not take the service down
            log.exception("job schedule %s failed", sk)

    async def _step(self, sk: str) -> bool:
        """One due job (or the end of the schedule); False when there is nothing more to do."""
        schedule = self.store.schedules.get(sk)
        if schedule is None or schedule["state"] not in ("active", "terminating"):
            return False
        if schedule["state"] == "terminating":
            return await self._finish(sk, schedule)
        config = schedule.get("schedule") or {}
        due, window_end = self._next(schedule)
        not_after = parse_time(config.get("doNotRunAfter"))
        if due is None or (not_after is not None and max(due, datetime.now(timezone.utc)) > not_after):
            return await self._finish(sk, schedule)
        self._set_next_run(schedule, due)
        await self._sleep_until(sk, due)
        while self.active_job(schedule["id"]) is not None:  # at most one active job
            if not await self._sleep_until(sk, window_end):
                return True  # the window passed: this occurrence creates no job
        if window_end is not None and datetime.now(timezone.utc) > window_end:
            return True
        if self.store.schedules.get(sk) is not schedule or schedule["state"] != "active":
            return True  # it changed meanwhile: the next step looks again
        self._create_job(schedule)
        return True

    def _next(self, schedule: dict) -> tuple[datetime | None, datetime | None]:
        """The next due time without a job yet, and the end of its start window."""
        config = schedule.get("schedule") or {}
        base = parse_time(config.get("doNotRunUntil")) or parse_time(schedule["creationTime"])
        interval = _seconds(config.get("recurrenceInterval"))
        window = _seconds(config.get("startWindow"))
        recent = self._last_created(schedule)
        if interval is None:
            if recent is not None:
                return None, None  # its one job was created
            return base, base + timedelta(seconds=window) if window else None
        now = datetime.now(timezone.utc)
        # The first occurrence not yet served, skipping those whose window already passed.
        n = 0 if recent is None else int((recent - base).total_seconds() // interval) + 1
        while True:
            due = base + timedelta(seconds=n * interval)
            limit = min(window or interval, interval)
            end = due + timedelta(seconds=limit)
            if end >= now:
                return due, end
            n += 1

    def _last_created(self, schedule: dict) -> datetime | None:
        """When the schedule's most recent job was created (its job, else when it was noted)."""
        recent = ((schedule.get("executionInfo") or {}).get("recentJob") or {}).get("id")
        if recent is None:
            return None
        job = self.store.jobs.get(key(recent))
        return parse_time(job["creationTime"]) if job else parse_time(schedule.get("lastModified"))

    async def _sleep_until(self, sk: str, when: datetime | None) -> bool:
        """Sleep until `when` (forever if None) or a wake-up; False once `when` has passed.
        A runner replaced meanwhile (the schedule changed) stops here."""
        event = self._wake[sk]
        event.clear()
        delay = None if when is None else (when - datetime.now(timezone.utc)).total_seconds()
        woken = False
        if delay is None or delay > 0:
            waiter = asyncio.ensure_future(event.wait())
            done, _ = await asyncio.wait([waiter], timeout=delay)
            waiter.cancel()
            woken = bool(done)
        if self._runners.get(sk) is not asyncio.current_task():
            raise asyncio.CancelledError  # (asyncio.wait_for could lose a cancellation on 3.11)
        return woken

    def _set_next_run(self, schedule: dict, due: datetime) -> None:
        info = schedule.setdefault("executionInfo", {})
        info["nextRunTime"] = model.iso(due)
        self.store.put_schedule(schedule)

    def _create_job(self, schedule: dict) -> None:
        from .api_jobs import add_job  # late: api_jobs is a REST module above this one

        numbers = (int(j["id"].rsplit(":job-", 1)[1]) for j in jobs_of(self.store, schedule["id"]))
        n = 1 + max(numbers, default=0)
        job_id = f"{schedule['id']}:job-{n}"
        job = add_job(
            self.store,
            self.sched,
            self.sched.account_url,
            job_id,
            schedule["jobSpecification"],
            auto_pool=autopools.for_schedule(self.store, schedule["id"]),
        )
        info = schedule.setdefault("executionInfo", {})
        info["recentJob"] = {"id": job_id, "url": job["url"]}
        model.touch(schedule)
        self.store.put_schedule(schedule)
        self.sched.kick()

    async def _finish(self, sk: str, schedule: dict) -> bool:
        """Complete the schedule once it has no active job."""
        while self.active_job(schedule["id"]) is not None:
            await self._sleep_until(sk, None)
            schedule = self.store.schedules.get(sk)
            if schedule is None:
                return False
        model.set_state(schedule, "completed")
        info = schedule.setdefault("executionInfo", {})
        info.pop("nextRunTime", None)
        info["endTime"] = model.now_iso()
        model.touch(schedule)
        self.store.put_schedule(schedule)
        self._release_pool(schedule)
        return False

    def _release_pool(self, schedule: dict) -> None:
        """The schedule's lifetime ended: so does the auto pool its jobs shared."""
        pool_id = autopools.for_schedule(self.store, schedule["id"])
        spec = (schedule["jobSpecification"].get("poolInfo") or {}).get("autoPoolSpecification")
        autopools.release(self.sched, pool_id, spec, "jobschedule")

    def terminate(self, sk: str) -> None:
        """terminating: its active job is terminated; completed once that job is."""
        schedule = self.store.schedules[sk]
        model.set_state(schedule, "terminating")
        model.touch(schedule)
        self.store.put_schedule(schedule)
        job = self.active_job(schedule["id"])
        if job is not None:
            # BatchJobExecutionInfo.terminateReason: "TerminateJobSchedule - the Job ran as
            # part of a schedule, and the schedule terminated".
            self.sched.terminate_job(key(job["id"]), "TerminateJobSchedule")
        self.arm(sk)

    async def delete(self, sk: str) -> None:
        """Delete the schedule's jobs, then the schedule (state `deleting` meanwhile)."""
        old = self._runners.pop(sk, None)
        if old is not None:
            old.cancel()
        schedule = self.store.schedules.get(sk)
        if schedule is None:
            return
        self._release_pool(schedule)
        for job in jobs_of(self.store, schedule["id"]):
            jk = key(job["id"])
            if job["state"] != "deleting":
                model.set_state(job, "deleting")
                self.store.put_job(job)
            await self.sched.delete_job(jk)
        self.store.delete_schedule(sk)
        self._wake.pop(sk, None)
