"""REST handlers for tasks: add, add collection, list, get, update, delete, terminate,
reactivate."""

from __future__ import annotations

from aiohttp import web

from . import errors, model
from .api_jobs import get_job_doc
from .common import Ctx, check_conditions, created, empty, entity, json_response, paged
from .multi import SUBTASKS
from .store import key

MAX_TASKS_PER_COLLECTION = 100


_SPECIAL_TASKS = (
    ("jobPreparationTask", "TaskIdSameAsJobPreparationTask", "job preparation task"),
    ("jobReleaseTask", "TaskIdSameAsJobReleaseTask", "job release task"),
)


def _check_multi_instance(body: dict) -> None:
    """MultiInstanceSettings: coordinationCommandLine is required, numberOfInstances at least 1
    (the default)."""
    settings = body.get("multiInstanceSettings")
    if settings is None:
        return
    if not isinstance(settings, dict):
        raise errors.invalid_value("multiInstanceSettings", settings)
    command = settings.get("coordinationCommandLine")
    if not isinstance(command, str) or not command:
        raise errors.missing_property("multiInstanceSettings.coordinationCommandLine")
    model.check_int(settings, "numberOfInstances", 1)
    model.check_type(settings, "commonResourceFiles", list, "multiInstanceSettings.commonResourceFiles")


def check_task(body: dict, job: dict) -> str:
    """Validate a task add body; returns its id. Raises BatchServiceError."""
    task_id = model.check_id(body)
    for name, code, what in _SPECIAL_TASKS:  # their ids are taken in the job
        if key(task_id) == key((job.get(name) or {}).get("id") or "\0"):
            raise errors.conflict(code, f"The specified task id is same as the {what}.")
    if not body.get("commandLine"):
        raise errors.missing_property("commandLine")
    if not isinstance(body["commandLine"], str):
        raise errors.invalid_value("commandLine", body["commandLine"])
    _check_multi_instance(body)
    model.check_container_settings(body, "")
    for name in ("resourceFiles", "outputFiles", "applicationPackageReferences"):
        model.check_type(body, name, list)
    if (job.get("onTaskFailure") or "noaction") == "noaction":
        # ExitOptions.jobAction: "If the Job's onTaskFailed property is noaction, then specifying
        # this property returns an error and the add Task request fails with an invalid property
        # value error; ... the HTTP status code is 400 (Bad Request)."
        for where, options in model.exit_option_sets(body.get("exitConditions")):
            if options.get("jobAction") is not None:
                raise errors.invalid_value(
                    f"exitConditions.{where}.jobAction",
                    options["jobAction"],
                    "the job's onTaskFailure is noaction: a jobAction needs performExitOptionsJobAction",
                )
    model.check_env(body, "environmentSettings")
    for i, rf in enumerate(body.get("resourceFiles") or []):
        if not isinstance(rf, dict) or not any(
            isinstance(rf.get(s), str) and rf[s]
            for s in ("httpUrl", "storageContainerUrl", "autoStorageContainerName")
        ):
            raise errors.invalid_value(
                f"resourceFiles[{i}]", rf, "one source (httpUrl, storageContainerUrl) is required"
            )
    for i, of in enumerate(body.get("outputFiles") or []):
        if not isinstance(of, dict):
            raise errors.invalid_value(f"outputFiles[{i}]", of)
        if not isinstance(of.get("filePattern"), str) or not of["filePattern"]:
            raise errors.missing_property(f"outputFiles[{i}].filePattern")
        dest = of.get("destination")
        container = dest.get("container") if isinstance(dest, dict) else None
        if not isinstance(container, dict) or not isinstance(container.get("containerUrl"), str):
            raise errors.missing_property(f"outputFiles[{i}].destination.container.containerUrl")
        options = of.get("uploadOptions")
        cond = options.get("uploadCondition") if isinstance(options, dict) else None
        if cond not in ("tasksuccess", "taskfailure", "taskcompletion"):
            raise errors.invalid_value(f"outputFiles[{i}].uploadOptions.uploadCondition", cond)
    model.check_int(body, "requiredSlots", 1)
    model.check_constraints(body, "")
    model.check_exit_conditions(body)
    if body.get("dependsOn") is not None:
        if not job.get("usesTaskDependencies"):
            raise errors.BatchServiceError(
                409,
                "TaskDependenciesNotSpecifiedOnJob",
                "The Task has dependencies, but the job does not allow Task dependencies.",
            )
        model.check_depends_on(body)
    model.check_type(body, "displayName", str)
    return task_id


def new_task_doc(base_url: str, job: dict, body: dict) -> dict:
    """A task as stored, from a checked add body, with the defaults the service fills in."""
    now = model.now_iso()
    retries = (job.get("constraints") or {}).get("maxTaskRetryCount", 0)
    constraints = model.filled(
        {**model.TASK_CONSTRAINTS, "maxTaskRetryCount": retries}, body.get("constraints")
    )
    doc = {
        "id": body["id"],
        "url": f"{base_url}/jobs/{job['id']}/tasks/{body['id']}",
        "creationTime": now,
        "state": "active",
        "stateTransitionTime": now,
        "commandLine": body["commandLine"],
        "constraints": constraints,
        "requiredSlots": body.get("requiredSlots") or 1,
        "userIdentity": body.get("userIdentity") or model.auto_user(),
        "executionInfo": {"retryCount": 0, "requeueCount": 0},
    }
    for opt in (
        "displayName",
        "exitConditions",
        "resourceFiles",
        "outputFiles",
        "environmentSettings",
        "affinityInfo",
        "dependsOn",
        "applicationPackageReferences",
    ):
        if body.get(opt) is not None:
            doc[opt] = body[opt]
    if body.get("multiInstanceSettings") is not None:
        doc["multiInstanceSettings"] = model.filled({"numberOfInstances": 1}, body["multiInstanceSettings"])
    if body.get("containerSettings") is not None:  # a registry's password is never kept
        doc["containerSettings"] = model.without_secrets(body["containerSettings"])
    model.touch(doc)
    return doc


def _job_accepting_tasks(ctx: Ctx, job_id: str) -> dict:
    job = get_job_doc(ctx, job_id, allow_deleting=False)
    if job["state"] in ("completed", "terminating"):
        raise errors.conflict("JobCompleted", "The specified job is already in a completed state.")
    return job


def create_task(ctx: Ctx, job_id: str) -> web.Response:
    """POST /jobs/{jobId}/tasks."""
    job = _job_accepting_tasks(ctx, job_id)
    body = ctx.body()
    task_id = check_task(body, job)
    jk = key(job["id"])
    if key(task_id) in ctx.store.tasks.get(jk, {}):
        raise errors.exists("Task")
    doc = new_task_doc(ctx.base_url, job, body)
    ctx.store.put_task(jk, doc)
    ctx.sched.enqueue(jk, [key(task_id)])
    return created(ctx, doc, f"/jobs/{job['id']}/tasks/{task_id}")


def add_task_collection(ctx: Ctx, job_id: str) -> web.Response:
    """POST /jobs/{jobId}/addtaskcollection: at most 100 tasks / 1 MB; per-task results.

    Valid tasks are stored in one transaction; invalid or duplicate ones get a clienterror
    result, as the service answers (the request itself still succeeds).
    """
    job = _job_accepting_tasks(ctx, job_id)
    body = ctx.body()
    values = body.get("value")
    if not isinstance(values, list):
        raise errors.missing_property("value")
    if len(values) > MAX_TASKS_PER_COLLECTION:
        raise errors.BatchServiceError(
            413,
            "RequestBodyTooLarge",
            f"A task collection holds at most {MAX_TASKS_PER_COLLECTION} tasks.",
            [("MaxTasks", str(MAX_TASKS_PER_COLLECTION))],
        )
    # A result names its task (TaskAddResult.taskId is required by the API definition), so a
    # task without a string id is not one result's error: the whole body is refused.
    if not all(isinstance(item, dict) and isinstance(item.get("id"), str) for item in values):
        raise errors.invalid_body("each task must be a JSON object with a string id")
    jk = key(job["id"])
    existing = ctx.store.tasks.get(jk, {})
    results, docs, seen = [], [], set()
    for item in values:
        tid = item["id"]
        try:
            check_task(item, job)
            if key(tid) in existing or key(tid) in seen:
                raise errors.exists("Task")
        except errors.BatchServiceError as exc:
            err = exc.body(ctx.base_url, ctx.request_id)
            err.pop("odata.metadata", None)
            results.append({"status": "clienterror", "taskId": tid, "error": err})
            continue
        seen.add(key(tid))
        doc = new_task_doc(ctx.base_url, job, item)
        docs.append(doc)
        results.append(
            {
                "status": "success",
                "taskId": tid,
                "eTag": doc["eTag"],
                "lastModified": doc["lastModified"],
                "location": doc["url"],
            }
        )
    if docs:
        ctx.store.put_tasks(jk, docs)
        ctx.sched.enqueue(jk, [key(d["id"]) for d in docs])
    return json_response(200, {"odata.metadata": f"{ctx.base_url}/$metadata#taskaddresult", "value": results})


def get_task_doc(ctx: Ctx, job_id: str, task_id: str) -> tuple[str, str, dict]:
    """(job key, task key, task) or JobNotFound / TaskNotFound."""
    job = get_job_doc(ctx, job_id)
    jk, tk = key(job["id"]), key(task_id)
    task = ctx.store.tasks.get(jk, {}).get(tk)
    if task is None:
        raise errors.not_found("Task")
    return jk, tk, task


def list_tasks(ctx: Ctx, job_id: str) -> web.Response:
    """GET /jobs/{jobId}/tasks."""
    job = get_job_doc(ctx, job_id)
    jk = key(job["id"])
    tasks = ctx.store.tasks.get(jk, {})
    ids, keys = ctx.store.tasks_by_id(jk) if "id" in ctx.query.get("$filter", "").lower() else ([], [])
    return paged(
        ctx,
        "tasks",
        tasks.values(),
        shown=lambda t: model.hidden(t, SUBTASKS),
        by_id=(ids, lambda start, end: (tasks[k] for k in keys[start:end])),
    )


def get_task(ctx: Ctx, job_id: str, task_id: str) -> web.Response:
    """GET /jobs/{jobId}/tasks/{taskId}."""
    return entity(ctx, model.hidden(get_task_doc(ctx, job_id, task_id)[2], SUBTASKS), "tasks")


def list_subtasks(ctx: Ctx, job_id: str, task_id: str) -> web.Response:
    """GET /jobs/{jobId}/tasks/{taskId}/subtasksinfo: a multi-instance task's subtasks (none for
    any other task)."""
    task = get_task_doc(ctx, job_id, task_id)[2]
    return json_response(200, {"value": task.get(SUBTASKS, [])})


def replace_task(ctx: Ctx, job_id: str, task_id: str) -> web.Response:
    """PUT /jobs/{jobId}/tasks/{taskId}: only constraints can change."""
    jk, tk, task = get_task_doc(ctx, job_id, task_id)
    body = ctx.body()
    check_conditions(ctx, task)
    model.check_constraints(body, "")
    if task["state"] == "completed":
        raise errors.conflict("TaskCompleted", "The specified task is already completed.")
    task["constraints"] = model.filled(model.TASK_CONSTRAINTS, body.get("constraints"))
    model.touch(task)
    ctx.store.put_task(jk, task)
    return empty(200, task, ctx, f"/jobs/{job_id}/tasks/{task_id}")


def delete_task(ctx: Ctx, job_id: str, task_id: str) -> web.Response:
    """DELETE /jobs/{jobId}/tasks/{taskId}: a running task is killed first, then its directory
    goes from the node (200)."""
    jk, tk, task = get_task_doc(ctx, job_id, task_id)
    check_conditions(ctx, task)
    run = ctx.sched.forget_task(jk, tk)
    ctx.store.delete_task(jk, tk)
    job_id = ctx.store.jobs[jk]["id"]
    ctx.sched.spawn(ctx.sched.remove_task_dirs(job_id, task["id"], run))
    ctx.sched.check_job(jk)
    return empty(200)


def terminate_task(ctx: Ctx, job_id: str, task_id: str) -> web.Response:
    """POST .../terminate: the task completes with failureInfo TaskEnded (204)."""
    jk, tk, task = get_task_doc(ctx, job_id, task_id)
    check_conditions(ctx, task)
    ctx.sched.terminate_task(jk, tk)
    return empty(204, task, ctx, f"/jobs/{job_id}/tasks/{task_id}/terminate")


def reactivate_task(ctx: Ctx, job_id: str, task_id: str) -> web.Response:
    """POST .../reactivate: a failed, completed task becomes active again (204)."""
    jk, tk, task = get_task_doc(ctx, job_id, task_id)
    check_conditions(ctx, task)
    job = ctx.store.jobs[jk]
    if job["state"] in ("completed", "terminating", "deleting"):
        raise errors.conflict("JobCompleted", "The specified job is already in a completed state.")
    if task["state"] != "completed":
        raise errors.conflict("TaskNotCompleted", "Only a completed task can be reactivated.")
    if (task.get("executionInfo") or {}).get("result") == "success":
        raise errors.conflict("TaskCompletedSuccessfully", "A task that succeeded cannot be reactivated.")
    ctx.sched.reactivate_task(jk, tk)
    return empty(204, task, ctx, f"/jobs/{job_id}/tasks/{task_id}/reactivate")
