"""REST handlers for jobs and job task counts."""

from __future__ import annotations

from aiohttp import web

from . import autopools, errors, jobprep, model
from .common import Ctx, check_conditions, created, empty, entity, find, json_response, paged
from .store import key


def get_job_doc(ctx: Ctx, job_id: str, *, allow_deleting: bool = True) -> dict:
    """The job or JobNotFound (JobBeingDeleted when a change targets a deleting job)."""
    return find(ctx.store.jobs, job_id, "Job", allow_deleting=allow_deleting)


def _check_pool_info(info: object, *, on_schedule: bool = False) -> dict:
    """The poolInfo as kept: a pool's id, or an auto pool specification (autopools.py)."""
    if not isinstance(info, dict):
        raise errors.missing_property("poolInfo")
    if info.get("autoPoolSpecification") is not None:
        return {
            "autoPoolSpecification": autopools.check(info["autoPoolSpecification"], on_schedule=on_schedule)
        }
    if not info.get("poolId"):
        raise errors.missing_property("poolInfo.poolId")
    return {"poolId": info["poolId"]}


def _check_job_options(body: dict) -> None:
    model.check_int(body, "priority", -1000, 1000)
    model.check_int(body, "maxParallelTasks", -1)
    if body.get("maxParallelTasks") == 0:
        raise errors.invalid_value("maxParallelTasks", 0)
    model.check_constraints(body, "")
    for name, allowed in (
        ("onAllTasksComplete", ("noaction", "terminatejob")),
        ("onTaskFailure", ("noaction", "performexitoptionsjobaction")),
    ):
        if body.get(name) is not None and body[name] not in allowed:
            raise errors.invalid_value(name, body[name])
    model.check_type(body, "metadata", list)


def check_job_body(body: dict, *, on_schedule: bool = False) -> dict:
    """What a job (or a schedule's job specification) must be; its poolInfo as kept."""
    pool_info = _check_pool_info(body.get("poolInfo"), on_schedule=on_schedule)
    _check_job_options(body)
    model.check_env(body, "commonEnvironmentSettings")
    _check_prep_release(body)
    manager = body.get("jobManagerTask")
    if manager is not None:
        from .api_tasks import check_task  # late: api_tasks imports this module

        if not isinstance(manager, dict):
            raise errors.invalid_value("jobManagerTask", manager)
        check_task(manager, body)
    return pool_info


def _check_prep_release(body: dict) -> None:
    """BatchJobReleaseTask: "A Job Release Task cannot be specified without also specifying a
    Job Preparation Task for the Job"; its maxWallClockTime is 15 minutes at most."""
    for name in ("jobPreparationTask", "jobReleaseTask"):
        task = body.get(name)
        if task is None:
            continue
        if (
            not isinstance(task, dict)
            or not isinstance(task.get("commandLine"), str)
            or not task["commandLine"]
        ):
            raise errors.missing_property(f"{name}.commandLine")
        model.check_container_settings(task, f"{name}.")
        if task.get("id") is not None:
            model.check_id(task)
    if body.get("jobReleaseTask") is not None and body.get("jobPreparationTask") is None:
        raise errors.invalid_value("jobReleaseTask", "...", "a job release task needs a job preparation task")
    limit = (body.get("jobReleaseTask") or {}).get("maxWallClockTime")
    if limit is not None and (model.parse_duration(limit) or 0) > 15 * 60:
        raise errors.invalid_value("jobReleaseTask.maxWallClockTime", limit, "at most 15 minutes")


# What a job (or a schedule's job specification) has when the request leaves it out.
_JOB_DEFAULTS = {
    "priority": 0,
    "maxParallelTasks": -1,
    "allowTaskPreemption": False,
    "usesTaskDependencies": False,
    "onAllTasksComplete": "noaction",
    "onTaskFailure": "noaction",
}


def filled_job(body: dict) -> dict:
    """A checked job body (or job specification) with the defaults the service fills in."""
    return {
        **model.filled(_JOB_DEFAULTS, body),
        "constraints": model.filled(model.JOB_CONSTRAINTS, body.get("constraints")),
    }


def add_job(store, sched, base_url: str, job_id: str, body: dict, *, auto_pool: str | None = None) -> dict:
    """Store a new job from a checked body, and start serving it; its auto pool is created
    with it (or is `auto_pool`, the one its schedule's jobs share)."""
    pool_info = _check_pool_info(body.get("poolInfo"), on_schedule=True)
    pool_id, failure = pool_info.get("poolId"), None
    if "autoPoolSpecification" in pool_info:
        pool_id = auto_pool
        if pool_id is None:
            pool_id, failure = autopools.create(store, sched, base_url, pool_info["autoPoolSpecification"])
    spec = filled_job(body)
    jk = key(job_id)
    doc = model.new_resource(job_id, f"{base_url}/jobs/{job_id}")
    now = doc["creationTime"]
    doc |= {
        "usesTaskDependencies": bool(spec["usesTaskDependencies"]),
        "priority": spec["priority"],
        "allowTaskPreemption": bool(spec["allowTaskPreemption"]),
        "maxParallelTasks": spec["maxParallelTasks"],
        "constraints": spec["constraints"],
        "poolInfo": pool_info,
        "onAllTasksComplete": spec["onAllTasksComplete"],
        "onTaskFailure": spec["onTaskFailure"],
        "executionInfo": {"startTime": now, **({"poolId": pool_id} if pool_id else {})},
    }
    if failure is not None:  # BatchPoolInfo: the job completes, with the pool's error
        model.set_state(doc, "completed")
        doc["executionInfo"].update(endTime=now, schedulingError=failure)
    for opt in ("displayName", "commonEnvironmentSettings", "metadata", "networkConfiguration"):
        if body.get(opt) is not None:
            doc[opt] = body[opt]
    if body.get("jobPreparationTask") is not None:
        doc["jobPreparationTask"] = jobprep.filled_prep(body["jobPreparationTask"])
    if body.get("jobReleaseTask") is not None:
        doc["jobReleaseTask"] = jobprep.filled_release(body["jobReleaseTask"])
    if body.get("jobManagerTask") is not None:
        doc["jobManagerTask"] = filled_manager(body["jobManagerTask"])
    model.touch(doc)
    store.put_job(doc)
    sched.queues[jk] = {}
    if "jobManagerTask" in doc and doc["state"] == "active":
        _start_manager(store, sched, base_url, doc)
    sched.arm_job_timer(jk)
    sched.check_job(jk)
    return doc


# BatchJobManagerTask's documented defaults: killJobOnCompletion, runExclusive and
# allowLowPriorityNode true, one slot, no constraints beyond the task defaults.
_MANAGER_DEFAULTS = {
    "requiredSlots": 1,
    "killJobOnCompletion": True,
    "runExclusive": True,
    "allowLowPriorityNode": True,
}


def filled_manager(task: dict) -> dict:
    """The job manager task with the defaults the service fills in and returns."""
    return {
        **model.filled({**_MANAGER_DEFAULTS, "userIdentity": model.auto_user()}, task),
        "constraints": model.filled(model.TASK_CONSTRAINTS, task.get("constraints")),
    }


def _start_manager(store, sched, base_url: str, job: dict) -> None:
    """BatchJobManagerTask: "automatically started when the Job is created", scheduled "before
    any other Tasks in the Job" (it is first in the job's queue). It is one of the job's tasks."""
    from .api_tasks import new_task_doc  # late: api_tasks imports this module

    manager = job["jobManagerTask"]
    store.put_task(key(job["id"]), new_task_doc(base_url, job, manager))
    sched.enqueue(key(job["id"]), [key(manager["id"])])


def create_job(ctx: Ctx) -> web.Response:
    """POST /jobs."""
    body = ctx.body()
    job_id = model.check_id(body)
    check_job_body(body)
    existing = ctx.store.jobs.get(key(job_id))
    if existing is not None:
        raise (errors.being_deleted("Job") if existing["state"] == "deleting" else errors.exists("Job"))
    doc = add_job(ctx.store, ctx.sched, ctx.base_url, job_id, body)
    return created(ctx, doc, f"/jobs/{job_id}")


def shown(job: dict) -> dict:
    """A job as answers show it: without the status of its preparation and release tasks."""
    return model.hidden(job, jobprep.STATUS)


def get_job(ctx: Ctx, job_id: str) -> web.Response:
    """GET /jobs/{jobId}."""
    return entity(ctx, shown(get_job_doc(ctx, job_id)), "jobs")


def list_jobs(ctx: Ctx) -> web.Response:
    """GET /jobs."""
    return paged(ctx, "jobs", [shown(j) for j in ctx.store.jobs.values()])


def list_prep_release_status(ctx: Ctx, job_id: str) -> web.Response:
    """GET /jobs/{jobId}/jobpreparationandreleasetaskstatus: per node that ran the job's
    preparation task; 409 JobPreparationTaskNotSpecified for a job without one."""
    job = get_job_doc(ctx, job_id)
    if job.get("jobPreparationTask") is None:
        raise errors.conflict(
            "JobPreparationTaskNotSpecified", "The specified job does not have job preparation task."
        )
    return paged(ctx, "jobpreparationandreleasetaskstatus", list(job.get(jobprep.STATUS, {}).values()))


def delete_job(ctx: Ctx, job_id: str) -> web.Response:
    """DELETE /jobs/{jobId}: 202; the job is `deleting` until its tasks are gone. Again while it
    is: 409 JobBeingDeleted (Jobs_DeleteJob: "All update operations on a Job that is in deleting
    state will fail with status code 409")."""
    job = get_job_doc(ctx, job_id, allow_deleting=False)
    check_conditions(ctx, job)
    model.set_state(job, "deleting")
    model.touch(job)
    ctx.store.put_job(job)
    ctx.sched.spawn(ctx.sched.delete_job(key(job_id)))
    return empty(202, None, ctx, f"/jobs/{job_id}")


def terminate_job(ctx: Ctx, job_id: str) -> web.Response:
    """POST /jobs/{jobId}/terminate: 202; running tasks end, active ones stay active."""
    job = get_job_doc(ctx, job_id, allow_deleting=False)
    check_conditions(ctx, job)
    if job["state"] == "completed":
        raise errors.conflict("JobCompleted", "The specified job is already in a completed state.")
    reason = "UserTerminate"
    if ctx.raw_body.strip():
        reason = ctx.body().get("terminateReason") or reason
    ctx.sched.terminate_job(key(job_id), reason)
    return empty(202, job, ctx, f"/jobs/{job_id}/terminate")


def disable_job(ctx: Ctx, job_id: str) -> web.Response:
    """POST /jobs/{jobId}/disable: 202; no new tasks start until the job is enabled."""
    job = get_job_doc(ctx, job_id, allow_deleting=False)
    body = ctx.body()
    check_conditions(ctx, job)
    how = body.get("disableTasks")
    if how is None:
        raise errors.missing_property("disableTasks")
    if how not in ("requeue", "terminate", "wait"):
        raise errors.invalid_value("disableTasks", how)
    if job["state"] in ("completed", "terminating"):
        raise errors.conflict("JobCompleted", "The specified job is already in a completed state.")
    if job["state"] != "active":
        raise errors.conflict("JobNotActive", "The specified job is not active.")
    ctx.sched.disable_job(key(job_id), how)
    return empty(202, job, ctx, f"/jobs/{job_id}/disable")


def enable_job(ctx: Ctx, job_id: str) -> web.Response:
    """POST /jobs/{jobId}/enable: 202; a disabled job schedules tasks again."""
    job = get_job_doc(ctx, job_id, allow_deleting=False)
    check_conditions(ctx, job)
    if job["state"] in ("completed", "terminating"):
        raise errors.conflict("JobCompleted", "The specified job is already in a completed state.")
    if job["state"] != "disabled":
        raise errors.conflict("JobNotDisabled", "The specified job is not disabled.")
    ctx.sched.enable_job(key(job_id))
    return empty(202, job, ctx, f"/jobs/{job_id}/enable")


def _apply_update(ctx: Ctx, job: dict, body: dict, replace: bool) -> None:
    _check_job_options(body)
    if "poolInfo" in body or replace:
        _change_pool(job, _check_pool_info(body.get("poolInfo")))
    if job["onAllTasksComplete"] == "terminatejob" and body.get("onAllTasksComplete") == "noaction":
        raise errors.invalid_value(
            "onAllTasksComplete", "noaction", "cannot be changed back once set to terminatejob"
        )
    defaults = {
        "priority": 0,
        "allowTaskPreemption": False,
        "maxParallelTasks": -1,
        "onAllTasksComplete": job["onAllTasksComplete"],
        "metadata": None,
    }
    for name, default in defaults.items():
        if name in body and body[name] is not None:
            job[name] = body[name]
        elif replace:
            if default is None:
                job.pop(name, None)
            else:
                job[name] = default
    if "constraints" in body or replace:
        job["constraints"] = model.filled(model.JOB_CONSTRAINTS, body.get("constraints"))


def _change_pool(job: dict, info: dict) -> None:
    """Jobs_UpdateJob: the pool may change only while the job is disabled; of an auto pool,
    "only the keepAlive property ... can be updated, and then only if the
    autoPoolSpecification has a poolLifetimeOption of Job"."""
    given, current = info.get("autoPoolSpecification"), autopools.spec_of(job)
    if given is not None:
        if current is None or current["poolLifetimeOption"] != "job" or given["poolLifetimeOption"] != "job":
            raise errors.invalid_value(
                autopools.PATH, "...", "only keepAlive of an auto pool with poolLifetimeOption job can change"
            )
        current["keepAlive"] = given["keepAlive"]
        return
    if key(info["poolId"]) != key(model.pool_of(job)) and job["state"] != "disabled":
        raise errors.conflict("JobNotDisabled", "The job must be disabled to change its pool.")
    job["poolInfo"] = info
    job.setdefault("executionInfo", {})["poolId"] = info["poolId"]


def _update(ctx: Ctx, job_id: str, replace: bool) -> web.Response:
    job = get_job_doc(ctx, job_id, allow_deleting=False)
    body = ctx.body()
    check_conditions(ctx, job)
    if job["state"] in ("completed", "terminating"):
        raise errors.conflict("JobCompleted", "The specified job is already in a completed state.")
    _apply_update(ctx, job, body, replace)
    model.touch(job)
    ctx.store.put_job(job)
    ctx.sched.arm_job_timer(key(job_id))
    ctx.sched.check_job(key(job_id))
    ctx.sched.kick()
    return empty(200, job, ctx, f"/jobs/{job_id}")


def update_job(ctx: Ctx, job_id: str) -> web.Response:
    """PATCH /jobs/{jobId}: changes only what the body names."""
    return _update(ctx, job_id, replace=False)


def replace_job(ctx: Ctx, job_id: str) -> web.Response:
    """PUT /jobs/{jobId}: replaces the updatable properties (absent ones reset)."""
    return _update(ctx, job_id, replace=True)


def task_counts(ctx: Ctx, job_id: str) -> web.Response:
    """GET /jobs/{jobId}/taskcounts: task and slot counts by state."""
    job = get_job_doc(ctx, job_id)
    counts, slots = ctx.store.task_counts(key(job["id"]))
    return json_response(
        200,
        {
            "odata.metadata": f"{ctx.base_url}/$metadata#taskcounts/@Element",
            "taskCounts": counts,
            "taskSlotCounts": slots,
        },
    )
