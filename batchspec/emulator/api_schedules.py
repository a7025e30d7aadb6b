"""REST handlers for job schedules (schedules.py runs them): create, get, exists, list,
update (PATCH), replace (PUT), disable, enable, terminate, delete, and the jobs of a schedule."""

from __future__ import annotations

from aiohttp import web

from . import errors, model
from .api_jobs import check_job_body, filled_job, shown
from .common import Ctx, Readers, check_conditions, created, empty, find, paged
from .schedules import jobs_of, parse_time
from .store import key

_MINUTE = 60.0  # the shortest recurrenceInterval and startWindow the service takes


def get_schedule_doc(ctx: Ctx, schedule_id: str, *, allow_deleting: bool = True) -> dict:
    return find(ctx.store.schedules, schedule_id, "Job schedule", allow_deleting=allow_deleting)


def _check_schedule(config: object) -> dict:
    """BatchJobScheduleConfiguration: times are date-times; recurrenceInterval and startWindow
    are durations of a minute or more ("If you specify a lower value, the Batch service rejects
    the schedule with an error; ... 400")."""
    if config is None:
        return {}
    if not isinstance(config, dict):
        raise errors.invalid_value("schedule", config)
    for name in ("doNotRunUntil", "doNotRunAfter"):
        if config.get(name) is not None:
            try:
                parse_time(config[name])
            except (AttributeError, TypeError, ValueError):
                raise errors.invalid_value(f"schedule.{name}", config[name]) from None
    for name in ("recurrenceInterval", "startWindow"):
        if config.get(name) is not None:
            seconds = model.parse_duration(config[name])
            if seconds is None or seconds < _MINUTE:
                raise errors.invalid_value(f"schedule.{name}", config[name], "the minimum is 1 minute")
    return {k: v for k, v in config.items() if v is not None}


def _check_spec(spec: object) -> dict:
    """A checked job specification, with the defaults the service fills in and returns."""
    if not isinstance(spec, dict):
        raise errors.missing_property("jobSpecification")
    pool_info = check_job_body(spec, on_schedule=True)
    return {**filled_job(spec), "poolInfo": pool_info}


def create_schedule(ctx: Ctx) -> web.Response:
    """POST /jobschedules: 201; the schedule starts creating jobs when they are due."""
    body = ctx.body()
    schedule_id = model.check_id(body)
    if body.get("schedule") is None:
        raise errors.missing_property("schedule")
    config = _check_schedule(body.get("schedule"))
    spec = _check_spec(body.get("jobSpecification"))
    model.check_type(body, "metadata", list)
    sk = key(schedule_id)
    existing = ctx.store.schedules.get(sk)
    if existing is not None:
        if existing["state"] == "deleting":
            get_schedule_doc(ctx, schedule_id, allow_deleting=False)
        raise errors.conflict("JobScheduleExists", "The specified job schedule already exists.")
    if ctx.store.jobs.get(sk) is not None:
        raise errors.conflict(
            "JobWithSameIdExists",
            "A job with the specified job schedule id exists. Job and job schedule cannot have the same id.",
        )
    doc = model.new_resource(schedule_id, f"{ctx.base_url}/jobschedules/{schedule_id}")
    doc |= {
        "schedule": config,
        "jobSpecification": spec,
        "executionInfo": {},
    }
    for opt in ("displayName", "metadata"):
        if body.get(opt) is not None:
            doc[opt] = body[opt]
    model.touch(doc)
    ctx.store.put_schedule(doc)
    ctx.sched.schedules.arm(sk)
    return created(ctx, doc, f"/jobschedules/{schedule_id}")


# GET /jobschedules/{jobScheduleId}, HEAD (200 or 404, no body), GET /jobschedules.
_READERS = Readers("jobschedules", "schedules", get_schedule_doc)
get_schedule, schedule_exists, list_schedules = _READERS.get, _READERS.exists, _READERS.list


def list_schedule_jobs(ctx: Ctx, schedule_id: str) -> web.Response:
    """GET /jobschedules/{jobScheduleId}/jobs."""
    get_schedule_doc(ctx, schedule_id)
    return paged(ctx, "jobs", [shown(j) for j in jobs_of(ctx.store, schedule_id)])


def _changeable(ctx: Ctx, schedule_id: str) -> dict:
    schedule = get_schedule_doc(ctx, schedule_id, allow_deleting=False)
    check_conditions(ctx, schedule)
    if schedule["state"] in ("completed", "terminating"):
        raise errors.conflict(
            "JobScheduleCompleted", "The specified job schedule is already in completed state."
        )
    return schedule


def _changed(ctx: Ctx, schedule: dict, status: int = 200) -> web.Response:
    model.touch(schedule)
    ctx.store.put_schedule(schedule)
    ctx.sched.schedules.arm(key(schedule["id"]))
    return empty(status, schedule, ctx, f"/jobschedules/{schedule['id']}")


def update_schedule(ctx: Ctx, schedule_id: str) -> web.Response:
    """PATCH /jobschedules/{jobScheduleId}: the properties given change (jobs created later
    use a new job specification)."""
    schedule = _changeable(ctx, schedule_id)
    body = ctx.body()
    if "schedule" in body:
        schedule["schedule"] = _check_schedule(body["schedule"])
    if "jobSpecification" in body:
        schedule["jobSpecification"] = _check_spec(body["jobSpecification"])
    if "metadata" in body:
        model.check_type(body, "metadata", list)
        schedule["metadata"] = body["metadata"] or []
    return _changed(ctx, schedule)


def replace_schedule(ctx: Ctx, schedule_id: str) -> web.Response:
    """PUT /jobschedules/{jobScheduleId}: every updatable property is replaced; one left out
    takes its default."""
    schedule = _changeable(ctx, schedule_id)
    body = ctx.body()
    schedule["schedule"] = _check_schedule(body.get("schedule"))
    schedule["jobSpecification"] = _check_spec(body.get("jobSpecification"))
    model.check_type(body, "metadata", list)
    schedule["metadata"] = body.get("metadata") or []
    return _changed(ctx, schedule)


def disable_schedule(ctx: Ctx, schedule_id: str) -> web.Response:
    """POST .../disable: 204; no job is created until it is enabled (its active job goes on)."""
    schedule = _changeable(ctx, schedule_id)
    if schedule["state"] == "active":
        model.set_state(schedule, "disabled")
        schedule.setdefault("executionInfo", {}).pop("nextRunTime", None)
    return _changed(ctx, schedule, 204)


def enable_schedule(ctx: Ctx, schedule_id: str) -> web.Response:
    """POST .../enable: 204."""
    schedule = _changeable(ctx, schedule_id)
    if schedule["state"] == "disabled":
        model.set_state(schedule, "active")
    return _changed(ctx, schedule, 204)


def terminate_schedule(ctx: Ctx, schedule_id: str) -> web.Response:
    """POST .../terminate: 202; its active job is terminated, then the schedule completes."""
    schedule = _changeable(ctx, schedule_id)
    ctx.sched.schedules.terminate(key(schedule["id"]))
    return empty(202, schedule, ctx, f"/jobschedules/{schedule_id}/terminate")


def delete_schedule(ctx: Ctx, schedule_id: str) -> web.Response:
    """DELETE /jobschedules/{jobScheduleId}: 202; its jobs and their tasks go with it."""
    schedule = get_schedule_doc(ctx, schedule_id, allow_deleting=False)
    check_conditions(ctx, schedule)
    model.set_state(schedule, "deleting")
    model.touch(schedule)
    ctx.store.put_schedule(schedule)
    ctx.sched.spawn(ctx.sched.schedules.delete(key(schedule["id"])))
    return empty(202, None, ctx, f"/jobschedules/{schedule_id}")
