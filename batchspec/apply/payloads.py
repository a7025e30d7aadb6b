"""REST request bodies (camelCase JSON) for the desired records, with storage access granted at apply.

SAS URLs are never part of a fingerprint or a plan: `grants` mints them when a request is made.
"""

from __future__ import annotations

import os
from typing import Any

from batchspec.apply.grants import Grants
from batchspec.errors import UsageError
from batchspec.model import (
    OWNER,
    SAS_EXPIRY,
    TASK_FINGERPRINT_ENV,
    TASKS_STAMP,
    Job,
    JobTask,
    OutputFile,
    Pool,
    PoolContainers,
    Registry,
    ResourceFile,
    StartTask,
    Task,
    TaskContainer,
    dependencies,
)
from batchspec.plan import job_stamps, pool_stamps

_UPON = {"taskSuccess": "tasksuccess", "taskFailure": "taskfailure", "taskCompletion": "taskcompletion"}


def _meta(pairs: dict[str, str]) -> list[dict[str, str]]:
    return [{"name": k, "value": v} for k, v in pairs.items()]


def _env(pairs: tuple[tuple[str, str], ...]) -> list[dict[str, str]]:
    return [{"name": k, "value": v} for k, v in pairs]


def _admin() -> dict[str, Any]:
    return {"autoUser": {"scope": "pool", "elevationLevel": "admin"}}


def resource_file(rf: ResourceFile, grants: Grants) -> dict[str, Any]:
    body: dict[str, Any]
    if rf.blob:
        container, _, name = rf.blob.partition("/")
        body = {**grants.blob_read(container, name), "filePath": rf.file_path or name}
    elif rf.container:
        body = grants.container_read(rf.container)
        if rf.blob_prefix:
            body["blobPrefix"] = rf.blob_prefix
        if rf.file_path:
            body["filePath"] = rf.file_path
    else:
        body = {"httpUrl": rf.http_url, "filePath": rf.file_path}
    if rf.file_mode:
        body["fileMode"] = rf.file_mode
    return body


def output_file(of: OutputFile, grants: Grants) -> dict[str, Any]:
    container: dict[str, Any] = grants.container_write(of.container)
    if of.path:
        container["path"] = of.path
    return {
        "filePattern": of.pattern,
        "destination": {"container": container},
        "uploadOptions": {"uploadCondition": _UPON[of.upon]},
    }


def start_task(st: StartTask, grants: Grants) -> dict[str, Any]:
    body: dict[str, Any] = {
        "commandLine": st.command_line,
        "resourceFiles": [resource_file(r, grants) for r in st.resource_files],
        "environmentSettings": _env(st.environment),
        "waitForSuccess": st.wait_for_success,
    }
    if st.elevated:
        body["userIdentity"] = _admin()
    if st.max_task_retry_count is not None:
        body["maxTaskRetryCount"] = st.max_task_retry_count
    return body


def pool_metadata(pool: Pool, owner: str, grants: Grants) -> list[dict[str, str]]:
    """The user's metadata, the owner tag, the stamps, and when the start task's SAS expire."""
    meta = {**dict(pool.metadata), OWNER: owner, **pool_stamps(pool)}
    if pool.start_task and pool.start_task.resource_files and grants.expiry is not None:
        meta[SAS_EXPIRY] = grants.expiry.strftime("%Y-%m-%dT%H:%M:%SZ")
    return _meta(meta)


def pool(p: Pool, owner: str, node_agent_sku_id: str | None, grants: Grants) -> dict[str, Any]:
    """The body of a pool create; `grants` are the start task's."""
    body: dict[str, Any] = {
        "id": p.id,
        "vmSize": p.vm_size,
        "virtualMachineConfiguration": {
            "imageReference": p.image.to_dict(),
            "nodeAgentSKUId": node_agent_sku_id,
        },
        "taskSlotsPerNode": p.task_slots_per_node,
        "metadata": pool_metadata(p, owner, grants),
    }
    if p.display_name:
        body["displayName"] = p.display_name
    if p.autoscale_formula:
        body.update(enableAutoScale=True, autoScaleFormula=p.autoscale_formula)
        if p.autoscale_interval:
            body["autoScaleEvaluationInterval"] = p.autoscale_interval
    else:
        body.update(
            targetDedicatedNodes=p.target_dedicated_nodes, targetLowPriorityNodes=p.target_low_priority_nodes
        )
    if p.start_task:
        body["startTask"] = start_task(p.start_task, grants)
    if p.containers:
        body["virtualMachineConfiguration"]["containerConfiguration"] = _container_configuration(p.containers)
    return {**body, **p.extra}


def _container_configuration(c: PoolContainers) -> dict[str, Any]:
    body: dict[str, Any] = {"type": c.type}
    if c.images:
        body["containerImageNames"] = list(c.images)
    if c.registries:
        body["containerRegistries"] = [registry(r) for r in c.registries]
    return body


def registry(r: Registry) -> dict[str, Any]:
    """A registry as the service takes it, its password read from the environment now."""
    body: dict[str, Any] = {"registryServer": r.server}
    if r.identity:
        body["identityReference"] = {"resourceId": r.identity}
    if r.password_env:
        body.update(username=r.username, password=registry_password(r))
    return body


def registry_password(r: Registry) -> str:
    """UsageError (before anything is made: the executor asks first) if it is not set."""
    value = os.environ.get(r.password_env or "")
    if not value:
        raise UsageError(
            f"pool.containers.registries: the environment variable {r.password_env} (the password "
            f"of {r.server}) is not set",
            hint=f"export {r.password_env}=... before apply; the spec never holds the password",
        )
    return value


def container_settings(c: TaskContainer, pool: Pool) -> dict[str, Any]:
    body: dict[str, Any] = {"imageName": c.image}
    if c.options:
        body["containerRunOptions"] = c.options
    if c.working_directory:
        body["workingDirectory"] = c.working_directory
    if c.registry and pool.containers:
        body["registry"] = registry(next(r for r in pool.containers.registries if r.server == c.registry))
    return body


def pool_properties(p: Pool, owner: str, grants: Grants) -> dict[str, Any]:
    """The body of updateproperties: it replaces the start task, packages and metadata.

    BatchPoolReplaceOptions requires certificateReferences, applicationPackageReferences and
    metadata (an empty list clears each), so all three are sent although certificates are
    deprecated (the SDK's own model omits certificateReferences).
    """
    body: dict[str, Any] = {
        "certificateReferences": [],
        "applicationPackageReferences": [],
        "metadata": pool_metadata(p, owner, grants),
    }
    if p.start_task:
        body["startTask"] = start_task(p.start_task, grants)
    return body


def job_metadata(job: Job, owner: str, tasks_stamp: str | None = None) -> list[dict[str, str]]:
    """A job's metadata: the spec's, the owner, the stamps, and TASKS_STAMP when given."""
    tasks = {TASKS_STAMP: tasks_stamp} if tasks_stamp else {}
    return _meta({**dict(job.metadata), OWNER: owner, **job_stamps(job), **tasks})


def _job_constraints(job: Job) -> dict[str, Any]:
    constraints: dict[str, Any] = {}
    if job.max_wall_clock_time:
        constraints["maxWallClockTime"] = job.max_wall_clock_time
    if job.max_task_retry_count is not None:
        constraints["maxTaskRetryCount"] = job.max_task_retry_count
    return constraints


def job(j: Job, owner: str, grants: Grants) -> dict[str, Any]:
    """The body of a job create; `grants` are its preparation and release tasks'."""
    body: dict[str, Any] = {"id": j.id, "poolInfo": {"poolId": j.pool_id}}
    body.update(job_update(j, owner))
    if j.preparation_task:
        body["jobPreparationTask"] = job_task(j.preparation_task, grants)
    if j.release_task:
        body["jobReleaseTask"] = job_task(j.release_task, grants)
    if j.display_name:
        body["displayName"] = j.display_name
    if j.uses_task_dependencies:
        body["usesTaskDependencies"] = True
    if j.on_task_failure:
        body["onTaskFailure"] = j.on_task_failure
    return {**body, **j.extra}


def job_update(j: Job, owner: str, tasks_stamp: str | None = None) -> dict[str, Any]:
    """The body of a job patch: the properties the service updates in place (its metadata
    whole, so the TASKS_STAMP it carries is kept: no task changes with it)."""
    return {
        "priority": j.priority or 0,
        "maxParallelTasks": j.max_parallel_tasks or -1,
        "constraints": _job_constraints(j),
        "onAllTasksComplete": j.on_all_tasks_complete or "noaction",
        "metadata": job_metadata(j, owner, tasks_stamp),
    }


def job_task(t: JobTask, grants: Grants) -> dict[str, Any]:
    """A job preparation or release task: the service's ids for them (jobpreparation,
    jobrelease) are its defaults, and their limits sit in different places."""
    body: dict[str, Any] = {
        "commandLine": t.command_line,
        "resourceFiles": [resource_file(r, grants) for r in t.resource_files],
        "environmentSettings": _env(t.environment),
    }
    if t.elevated:
        body["userIdentity"] = _admin()
    limits = {"maxWallClockTime": t.max_wall_clock_time, "retentionTime": t.retention_time}
    limits = {k: v for k, v in limits.items() if v is not None}
    if t.wait_for_success is None:  # a release task: its limits are its own properties
        return {**body, **limits}
    if t.max_task_retry_count is not None:
        limits["maxTaskRetryCount"] = t.max_task_retry_count
    if limits:
        body["constraints"] = limits
    body.update(waitForSuccess=t.wait_for_success, rerunOnNodeRebootAfterSuccess=t.rerun_on_node_reboot)
    return body


def task(t: Task, stamp: str, grants: Grants, pool: Pool) -> dict[str, Any]:
    """The body of a task; `pool` (the spec's) holds the registries its container may name."""
    body: dict[str, Any] = {
        "id": t.id,
        "commandLine": t.command_line,
        "resourceFiles": [resource_file(r, grants) for r in t.resource_files],
        "outputFiles": [output_file(o, grants) for o in t.output_files],
        "environmentSettings": _env(t.environment) + [{"name": TASK_FINGERPRINT_ENV, "value": stamp}],
    }
    if t.display_name:
        body["displayName"] = t.display_name
    constraints = {
        k: v
        for k, v in (
            ("maxWallClockTime", t.max_wall_clock_time),
            ("retentionTime", t.retention_time),
            ("maxTaskRetryCount", t.max_task_retry_count),
        )
        if v is not None
    }
    if constraints:
        body["constraints"] = constraints
    if t.required_slots:
        body["requiredSlots"] = t.required_slots
    if t.elevated:
        body["userIdentity"] = _admin()
    if t.depends_on:
        body["dependsOn"] = dependencies(t.depends_on).to_rest()
    if t.container:
        body["containerSettings"] = container_settings(t.container, pool)
    return {**body, **t.extra}
