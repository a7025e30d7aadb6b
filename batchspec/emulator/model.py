"""Resource documents: timestamps, state transitions, validation of create bodies, and the
small pure rules (dependency and exit-condition evaluation) shared by the API and scheduler.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone

from batchspec import durations  # the one shared module (see durations.py)

from . import errors
from .store import new_etag

_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")

MAX_NODES_PER_POOL = 64  # the emulator's "quota": every node is a directory and processes


def now_iso() -> str:
    """The current UTC time in the service's ISO 8601 form."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def iso(dt: datetime) -> str:
    """A datetime (naive means UTC) in the service's ISO 8601 form."""
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def new_resource(resource_id: str, url: str) -> dict:
    """What a new pool, job or job schedule starts with: its id and URL, created now, active."""
    now = now_iso()
    return {"id": resource_id, "url": url, "creationTime": now, "state": "active", "stateTransitionTime": now}


def touch(doc: dict) -> None:
    """A client-visible change: new ETag and lastModified."""
    doc["eTag"] = new_etag()
    doc["lastModified"] = now_iso()


def set_state(doc: dict, state: str, *, field: str = "state") -> None:
    """Move a document to `state`, keeping previousState and the transition times."""
    if doc.get(field) == state:
        return
    now = now_iso()
    if field == "state":
        if doc.get("state") is not None:
            doc["previousState"] = doc["state"]
            doc["previousStateTransitionTime"] = doc.get("stateTransitionTime", now)
        doc["stateTransitionTime"] = now
    else:
        doc[f"{field}TransitionTime"] = now
    doc[field] = state


def set_state_only(node: dict, state: str) -> None:
    """Nodes (and pools) have no previousState in the REST model: state and its time only."""
    if node.get("state") != state:
        node["state"] = state
        node["stateTransitionTime"] = now_iso()


# The properties the API definition marks `x-ms-secret` (UserAccount.password, the mount
# configurations' accountKey, sasKey and password, ContainerRegistryReference.password,
# LinuxUserConfiguration.sshPrivateKey): the service never returns them, and the emulator, which
# has no use for them, does not keep them.
SECRETS = frozenset({"password", "accountKey", "sasKey", "sshPrivateKey"})


def without_secrets(value: object) -> object:
    """`value` with every secret property left out, at any depth."""
    if isinstance(value, dict):
        return {k: without_secrets(v) for k, v in value.items() if k not in SECRETS}
    if isinstance(value, list):
        return [without_secrets(v) for v in value]
    return value


def hidden(doc: dict, name: str) -> dict:
    """`doc` as answers show it, without `name`: what the emulator keeps in a document for
    itself (a node's users, a job's preparation status, a task's subtasks)."""
    return {k: v for k, v in doc.items() if k != name} if name in doc else doc


def filled(defaults: dict, given: dict | None) -> dict:
    """`defaults` with every value `given` sets (a None is no value): a property the service
    fills in when a request leaves it out."""
    return {**defaults, **{k: v for k, v in (given or {}).items() if v is not None}}


# BatchTaskConstraints as the service fills them in: no wall clock limit, 7 days' retention
# (the definition's retentionTime default), no retry.
TASK_CONSTRAINTS = {"maxWallClockTime": durations.UNLIMITED, "retentionTime": "P7D", "maxTaskRetryCount": 0}
JOB_CONSTRAINTS = {"maxWallClockTime": durations.UNLIMITED, "maxTaskRetryCount": 0}


def auto_user() -> dict:
    """The user identity a task runs as when it names none (AutoUserSpecification: the scope's
    default is pool, the elevation's nonAdmin)."""
    return {"autoUser": {"scope": "pool", "elevationLevel": "nonadmin"}}


_WORKING_DIRECTORIES = ("taskWorkingDirectory", "containerImageDefault")  # ContainerWorkingDirectory
_MOUNT_SOURCES = (
    "Shared",
    "Startup",
    "VfsMounts",
    "Task",
    "JobPrep",
    "Applications",
)  # ContainerHostDataPath


def check_container_settings(body: dict, path: str) -> None:
    """BatchTaskContainerSettings, as the service checks it at add (imageName required, the
    enums). The emulator has no container runtime: such a task's command runs on this host."""
    settings = body.get("containerSettings")
    if settings is None:
        return
    where = f"{path}containerSettings"
    if not isinstance(settings, dict):
        raise errors.invalid_value(where, settings)
    if not isinstance(settings.get("imageName"), str) or not settings["imageName"]:
        raise errors.missing_property(f"{where}.imageName")
    directory = settings.get("workingDirectory")
    if directory is not None and directory not in _WORKING_DIRECTORIES:
        raise errors.invalid_value(f"{where}.workingDirectory", directory)
    for i, mount in enumerate(
        _list(settings, "containerHostBatchBindMounts", f"{where}.containerHostBatchBindMounts")
    ):
        if not isinstance(mount, dict) or mount.get("source") not in _MOUNT_SOURCES:
            raise errors.invalid_value(f"{where}.containerHostBatchBindMounts[{i}].source", mount)


def pool_of(job: dict) -> str:
    """The id of the pool a job's tasks run on: the one it names, or the auto pool made for it."""
    return (job.get("executionInfo") or {}).get("poolId") or (job.get("poolInfo") or {}).get("poolId") or ""


def is_windows(pool: dict) -> bool:
    sku = (pool.get("virtualMachineConfiguration") or {}).get("nodeAgentSKUId") or ""
    return sku.lower().startswith("batch.node.windows")


def require_object(body: object) -> dict:
    """The request body must be a JSON object."""
    if not isinstance(body, dict):
        raise errors.invalid_body("the request body must be a JSON object")
    return body


def check_id(body: dict, name: str = "id") -> str:
    """A required Batch id: letters, digits, hyphens and underscores, at most 64 characters."""
    value = body.get(name)
    if value is None or value == "":
        raise errors.missing_property(name)
    if not isinstance(value, str) or not _ID.match(value):
        raise errors.invalid_value(name, value, "ids contain letters, digits, hyphens and underscores (1-64)")
    return value


def check_type(body: dict, name: str, kind: type | tuple, path: str | None = None) -> None:
    """An optional property, if present, must have the given JSON type."""
    value = body.get(name)
    if value is None:
        return
    ok = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
    if not ok:
        raise errors.invalid_value(path or name, value)


def check_int(body: dict, name: str, low: int, high: int | None = None) -> None:
    """An optional integer within [low, high]."""
    value = body.get(name)
    if value is None:
        return
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or value < low
        or (high is not None and value > high)
    ):
        raise errors.invalid_value(name, value)


def parse_duration(value: str) -> float | None:
    """An ISO 8601 duration in seconds, or None if it does not parse (batchspec.durations)."""
    try:
        return durations.seconds(value)
    except ValueError:
        return None


def check_constraints(body: dict, prefix: str) -> None:
    """Validate a constraints object's durations and retry count."""
    c = body.get("constraints")
    if c is None:
        return
    if not isinstance(c, dict):
        raise errors.invalid_value(f"{prefix}constraints", c)
    for name in ("maxWallClockTime", "retentionTime"):
        if c.get(name) is not None and (not isinstance(c[name], str) or parse_duration(c[name]) is None):
            raise errors.invalid_value(f"{prefix}constraints.{name}", c[name])
    if c.get("maxTaskRetryCount") is not None:
        check_int(c, "maxTaskRetryCount", -1)


def check_env(body: dict, name: str, path: str | None = None) -> None:
    """environmentSettings: a list of {name: str, value: str}."""
    items = body.get(name)
    path = path or name
    if items is None:
        return
    if not isinstance(items, list):
        raise errors.invalid_value(path, items)
    for i, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("name"), str) or not item["name"]:
            raise errors.invalid_value(f"{path}[{i}].name", item)
        if item.get("value") is not None and not isinstance(item["value"], str):
            raise errors.invalid_value(f"{path}[{i}].value", item["value"])


def _check_exit_options(value: object, path: str) -> None:
    if value is None:
        return
    if not isinstance(value, dict):
        raise errors.invalid_value(path, value)
    if value.get("jobAction") not in (None, "none", "disable", "terminate"):
        raise errors.invalid_value(f"{path}.jobAction", value["jobAction"])
    if value.get("dependencyAction") not in (None, "satisfy", "block"):
        raise errors.invalid_value(f"{path}.dependencyAction", value["dependencyAction"])


def check_exit_conditions(body: dict) -> None:
    """exitConditions: exit code mappings, ranges and the error/default exit options."""
    cond = body.get("exitConditions")
    if cond is None:
        return
    if not isinstance(cond, dict):
        raise errors.invalid_value("exitConditions", cond)
    for i, m in enumerate(_list(cond, "exitCodes", "exitConditions.exitCodes")):
        if not isinstance(m, dict) or not _is_int(m.get("code")):
            raise errors.invalid_value(f"exitConditions.exitCodes[{i}].code", m)
        _check_exit_options(m.get("exitOptions"), f"exitConditions.exitCodes[{i}].exitOptions")
    for i, r in enumerate(_list(cond, "exitCodeRanges", "exitConditions.exitCodeRanges")):
        if not isinstance(r, dict) or not (_is_int(r.get("start")) and _is_int(r.get("end"))):
            raise errors.invalid_value(f"exitConditions.exitCodeRanges[{i}]", r)
        _check_exit_options(r.get("exitOptions"), f"exitConditions.exitCodeRanges[{i}].exitOptions")
    for name in ("preProcessingError", "fileUploadError", "default"):
        _check_exit_options(cond.get(name), f"exitConditions.{name}")


MAX_DEPENDENCY_CHARS = 64_000  # the service's limit on dependsOn.taskIds, all ids together


def check_depends_on(body: dict) -> None:
    """dependsOn: taskIds (strings) and taskIdRanges ({start <= end} integers)."""
    dep = body.get("dependsOn")
    if dep is None:
        return
    if not isinstance(dep, dict):
        raise errors.invalid_value("dependsOn", dep)
    ids = _list(dep, "taskIds", "dependsOn.taskIds")
    for i, tid in enumerate(ids):
        if not isinstance(tid, str) or not tid:
            raise errors.invalid_value(f"dependsOn.taskIds[{i}]", tid)
    if sum(len(tid) for tid in ids) > MAX_DEPENDENCY_CHARS:
        raise errors.BatchServiceError(
            400,
            "TaskDependencyListTooLong",
            "The task depends on too many tasks: the ids in dependsOn.taskIds exceed "
            f"{MAX_DEPENDENCY_CHARS} characters in all.",
        )
    for i, r in enumerate(_list(dep, "taskIdRanges", "dependsOn.taskIdRanges")):
        if (
            not isinstance(r, dict)
            or not (_is_int(r.get("start")) and _is_int(r.get("end")))
            or r["start"] > r["end"]
            or r["end"] - r["start"] > 100_000
        ):
            raise errors.invalid_value(f"dependsOn.taskIdRanges[{i}]", r)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _list(body: dict, name: str, path: str) -> list:
    value = body.get(name)
    if value is None:
        return []
    if not isinstance(value, list):
        raise errors.invalid_value(path, value)
    return value


def env_dict(settings: list | None) -> dict[str, str]:
    """environmentSettings ([{name, value}]) as a dict."""
    return {e["name"]: e.get("value") or "" for e in settings or [] if isinstance(e, dict) and "name" in e}


# Task rules


def exit_option_sets(conditions: object) -> list[tuple[str, dict]]:
    """Every ExitOptions of an exitConditions, named by where it is."""
    if not isinstance(conditions, dict):
        return []
    found = []
    for name in ("exitCodes", "exitCodeRanges"):
        for i, entry in enumerate(conditions.get(name) or []):
            if isinstance(entry, dict) and isinstance(entry.get("exitOptions"), dict):
                found.append((f"{name}[{i}].exitOptions", entry["exitOptions"]))
    for name in ("preProcessingError", "fileUploadError", "default"):
        if isinstance(conditions.get(name), dict):
            found.append((name, conditions[name]))
    return found


def upload_failed(task: dict) -> bool:
    """Whether the task's output files failed to upload (its failureInfo is an upload error)."""
    failure = (task.get("executionInfo") or {}).get("failureInfo") or {}
    return (failure.get("code") or "").startswith("FileUpload")


def exit_options(task: dict) -> dict:
    """The exitConditions entry that applies to a completed task (may be empty).

    The API definition's ExitConditions: a listed exit code (or range) wins, even over a file
    upload error that follows it; then `fileUploadError` for an upload error and
    `preProcessingError` for a task that could not start; `default` for any other failure
    (a nonzero exit code, or those two when absent). Exit code 0 without a failure: nothing.
    """
    cond = task.get("exitConditions") or {}
    info = task.get("executionInfo") or {}
    code = info.get("exitCode")
    if code is not None:
        for m in cond.get("exitCodes") or []:
            if m.get("code") == code:
                return m.get("exitOptions") or {}
        for r in cond.get("exitCodeRanges") or []:
            if r.get("start", 0) <= code <= r.get("end", -1):
                return r.get("exitOptions") or {}
    if info.get("result") == "success":
        return {}
    if upload_failed(task) and cond.get("fileUploadError"):
        return cond["fileUploadError"]
    if code is None and not upload_failed(task) and cond.get("preProcessingError"):
        return cond["preProcessingError"]
    return cond.get("default") or {}


def dependency_action(task: dict) -> str:
    """'satisfy' or 'block' for the dependents of a completed task.

    By default a success satisfies and a failure blocks; exitConditions may override either.
    """
    opts = exit_options(task)
    if opts.get("dependencyAction"):
        return opts["dependencyAction"]
    return "satisfy" if (task.get("executionInfo") or {}).get("result") == "success" else "block"


def job_action(task: dict) -> str:
    """The job action for a completed task when the job's onTaskFailure asks for exit options.

    The service's default is none for success and terminate for any failure.
    """
    opts = exit_options(task)
    if opts.get("jobAction"):
        return opts["jobAction"]
    return "none" if (task.get("executionInfo") or {}).get("result") == "success" else "terminate"


def dependency_ids(task: dict) -> list[str]:
    """Every task id named by dependsOn (explicit ids, then ranges expanded)."""
    dep = task.get("dependsOn") or {}
    ids = list(dep.get("taskIds") or [])
    for r in dep.get("taskIdRanges") or []:
        ids.extend(str(i) for i in range(int(r["start"]), int(r["end"]) + 1))
    return ids
