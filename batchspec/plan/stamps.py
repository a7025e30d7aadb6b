"""The fingerprints batchspec stamps on what it creates, and the digests saved plans carry.

A stamp is computed from the desired record only (never from SAS URLs or other per-apply
values), so the planner compares it with the one stored on the live resource to know whether
that resource is as the spec asks.
"""

from __future__ import annotations

import functools
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import parse_qs, urlsplit

from batchspec.model import (
    FINGERPRINT,
    DesiredState,
    Job,
    LiveState,
    Pool,
    Task,
    canonical_json,
    metadata,
    sha256_text,
    task_fingerprint,
)

# The start task's SAS URLs live six days (within the seven a user-delegation key may last) and
# are issued again by the plan once under half is left (see apply.grants).
START_TASK_SAS = timedelta(days=6)
REFRESH_BELOW = START_TASK_SAS / 2


def parse_time(text: str | None) -> datetime | None:
    """An ISO 8601 time as UTC (None if it is not one)."""
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(timezone.utc) if text else None
    except ValueError:
        return None


def sas_expiry(url: str) -> datetime | None:
    """When a SAS URL expires (its `se`), None for a URL without one (an identity's)."""
    values = parse_qs(urlsplit(url).query).get("se")
    return parse_time(values[0]) if values else None


TASK_PARTS = ("commandLine", "resourceFiles", "outputFiles", "environment", "settings", "application")
_NOT_SETTINGS = frozenset(("id", "commandLine", "resourceFiles", "outputFiles", "environment"))


def task_stamp(task: Task, pool: Pool) -> str:
    """The fingerprint a task carries: a digest of the whole, then one short digest per part.

    The parts let the planner name what changed without reading the live task's details (its
    resource files hold SAS URLs that change on every apply). The whole is the digest of
    `canonical_json` of the parts' mapping, written out here from the parts' own encodings
    (keys in sorted order, as canonical_json writes them): a 10,000-task apply computes it
    10,000 times.
    """
    d = task.to_dict()
    encoded = {
        "commandLine": canonical_json(d.get("commandLine")),
        "resourceFiles": canonical_json(d.get("resourceFiles")),
        "outputFiles": canonical_json(d.get("outputFiles")),
        "environment": canonical_json(d.get("environment")),
        "settings": canonical_json({k: v for k, v in d.items() if k not in _NOT_SETTINGS}),
        "application": _application_json(pool),
    }
    whole = "{" + ",".join(f'"{k}":{encoded[k]}' for k in sorted(encoded)) + "}"
    short = ".".join(sha256_text(encoded[p])[:8] for p in TASK_PARTS)
    return f"{sha256_text(whole)[:32]}:{short}"


@functools.lru_cache(maxsize=8)
def _application_json(pool: Pool) -> str:
    return canonical_json(pool.start_task.fingerprint() if pool.start_task else None)


POOL_CONTAINERS = "batchspec-containers"


def pool_stamps(pool: Pool) -> dict[str, str]:
    """The pool's fingerprint and the parts the plan tells apart: the start task (updated in
    place), `extra` and the container configuration (which force a new pool). A pool without
    containers carries no POOL_CONTAINERS stamp, as pools made before they existed."""
    start = pool.start_task.fingerprint() if pool.start_task else ""
    if start and pool.identity:  # its resource files reach storage another way
        start = sha256_text(f"{start}\n{pool.identity}")
    stamps = {
        FINGERPRINT: pool.fingerprint(),
        "batchspec-starttask": start,
        "batchspec-extra": sha256_text(pool.extra_json),
    }
    if pool.containers:
        stamps[POOL_CONTAINERS] = pool.containers.fingerprint()
    return stamps


JOB_EXTRA = "batchspec-extra"
JOB_TASKS = "batchspec-jobtasks"


def job_stamps(job: Job) -> dict[str, str]:
    """The stamps of a job: its fingerprint, and the parts whose change forces a new job (what
    `extra` passes through, and the preparation and release tasks, which no update changes).
    A job without those tasks carries no JOB_TASKS stamp, as jobs made before they existed."""
    stamps = {FINGERPRINT: job.fingerprint(), JOB_EXTRA: sha256_text(job.extra_json)}
    if tasks := job_tasks_stamp(job):
        stamps[JOB_TASKS] = tasks
    return stamps


def job_tasks_stamp(job: Job) -> str:
    """The digest of the preparation and release tasks; empty without them."""
    if job.preparation_task is None and job.release_task is None:
        return ""
    parts = [t.to_dict() if t else None for t in (job.preparation_task, job.release_task)]
    return sha256_text(canonical_json(parts))


def desired_digest(desired: DesiredState) -> str:
    return sha256_text(
        canonical_json(
            desired.to_dict() | {"spec": None, "blobs": [(b.ref, b.sha256) for b in desired.blobs]}
        )
    )


def live_digest(live: LiveState) -> str:
    """A digest of the live facts plans are made from, leaving out transient progress."""
    pool = live.pool or {}
    job = live.job or {}
    facts = {
        "containers": {n: c.metadata for n, c in sorted(live.containers.items())},
        "blobs": {
            n: sorted((b.name, b.sha256) for b in blobs.values() if b.sha256)
            for n, blobs in sorted(live.blobs.items())
        },
        "pool": [
            pool.get("id"),
            pool.get("state") == "deleting",
            pool.get("vmSize"),
            pool.get("targetDedicatedNodes"),
            pool.get("targetLowPriorityNodes"),
            pool.get("enableAutoScale"),
            pool.get("autoScaleFormula"),
            metadata(pool),
        ],
        "job": [
            job.get("id"),
            job.get("state") in ("completed", "terminating", "deleting"),
            job.get("priority"),
            job.get("maxParallelTasks"),
            job.get("constraints"),
            metadata(job),
        ],
        "tasks": sorted((t["id"], task_fingerprint(t), failed(t)) for t in live.tasks),
    }
    return sha256_text(canonical_json(facts))


def failed(task: dict[str, Any]) -> bool:
    info = task.get("executionInfo") or {}
    return task.get("state") == "completed" and info.get("result") == "failure"
