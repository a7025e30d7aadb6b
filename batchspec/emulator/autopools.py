"""Auto pools: a pool the service creates for a job, or for the jobs of a schedule, and deletes
when that lifetime ends unless it is kept alive.

The API definition (BatchAutoPoolSpecification, BatchPoolLifetimeOption, BatchPoolInfo):
- `job`: the pool is created with the job and lives as long as it; on a schedule, every job
  gets its own. `jobschedule`: created with the schedule's first job, shared by its jobs,
  for schedules only.
- "If auto Pool creation fails, the Batch service moves the Job to a completed state, and the
  Pool creation error is set in the Job's scheduling error property": a pool specification the
  service refuses does not refuse the job.
- keepAlive false (the default): the pool is deleted "when the Job or Job Schedule completes".
- "The Batch service assigns each auto Pool a unique identifier on creation", after the prefix
  (up to 20 characters). The form of that identifier is not documented: `<prefix>_<GUID>` here.
"""

from __future__ import annotations

import re
import uuid

from . import errors, model
from .store import key

MAX_PREFIX = 20
_PREFIX = re.compile(r"^[A-Za-z0-9_-]*$")
PATH = "poolInfo.autoPoolSpecification"


def check(spec: object, *, on_schedule: bool) -> dict:
    """A checked auto pool specification as the job keeps and shows it (keepAlive filled in,
    secrets left out)."""
    if not isinstance(spec, dict):
        raise errors.invalid_value(PATH, spec)
    lifetime = spec.get("poolLifetimeOption")
    if lifetime is None:
        raise errors.missing_property(f"{PATH}.poolLifetimeOption")
    if lifetime not in ("job", "jobschedule"):
        raise errors.invalid_value(f"{PATH}.poolLifetimeOption", lifetime)
    if lifetime == "jobschedule" and not on_schedule:
        raise errors.invalid_value(
            f"{PATH}.poolLifetimeOption", lifetime, "jobschedule applies to job schedules only"
        )
    prefix = spec.get("autoPoolIdPrefix")
    if prefix is not None and (
        not isinstance(prefix, str) or len(prefix) > MAX_PREFIX or not _PREFIX.match(prefix)
    ):
        raise errors.invalid_value(f"{PATH}.autoPoolIdPrefix", prefix, f"up to {MAX_PREFIX} characters")
    if spec.get("keepAlive") is not None and not isinstance(spec["keepAlive"], bool):
        raise errors.invalid_value(f"{PATH}.keepAlive", spec["keepAlive"])
    if not isinstance(spec.get("pool"), dict):
        raise errors.missing_property(f"{PATH}.pool")
    kept = {k: v for k, v in model.without_secrets(spec).items() if v is not None}
    return {**kept, "keepAlive": bool(spec.get("keepAlive", False))}


def spec_of(job: dict) -> dict | None:
    return (job.get("poolInfo") or {}).get("autoPoolSpecification")


def create(store, sched, base_url: str, spec: dict) -> tuple[str | None, dict | None]:
    """Create the auto pool of `spec`: (its id, None), or (None, the job's scheduling error)."""
    from .api_pools import new_pool  # late: a REST module above this one

    prefix = spec.get("autoPoolIdPrefix")
    pool_id = f"{prefix}_{str(uuid.uuid4()).upper()}" if prefix else str(uuid.uuid4()).upper()
    try:
        new_pool(store, sched, base_url, pool_id, spec["pool"])
    except errors.BatchServiceError as exc:
        details = [{"name": name, "value": value} for name, value in exc.values]
        error = {"category": "usererror", "code": exc.code, "message": exc.message}
        return None, {**error, **({"details": details} if details else {})}
    return pool_id, None


def for_schedule(store, schedule_id: str) -> str | None:
    """The live auto pool a schedule's jobs share (lifetime jobschedule), if there is one."""
    from .schedules import jobs_of

    for job in sorted(jobs_of(store, schedule_id), key=lambda j: j["creationTime"], reverse=True):
        spec = spec_of(job)
        pool = store.pools.get(key(model.pool_of(job)))
        if spec and spec["poolLifetimeOption"] == "jobschedule" and pool and pool["state"] != "deleting":
            return pool["id"]
    return None


def release(sched, pool_id: str | None, spec: dict | None, lifetime: str) -> None:
    """A `lifetime` (job or jobschedule) ended: delete its auto pool unless kept alive."""
    if not pool_id or not spec or spec["poolLifetimeOption"] != lifetime or spec.get("keepAlive"):
        return
    pool = sched.store.pools.get(key(pool_id))
    if pool is not None and pool["state"] != "deleting":
        sched.nodes.begin_delete(key(pool_id))


def job_ended(sched, job: dict) -> None:
    """A job completed or was deleted: its own auto pool goes."""
    release(sched, model.pool_of(job), spec_of(job), "job")
