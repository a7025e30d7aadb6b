"""The fingerprints batchspec stamps on what it creates, and the digests saved plans carry.

A stamp is computed from the desired record only (never from SAS URLs or other per-apply
values), so the planner compares it with the one stored on the live resource to know whether
that resource is as the spec asks.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
from collections.abc import Iterable
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
_SORTED_PARTS = tuple(sorted(TASK_PARTS))
_NOT_SETTINGS = frozenset(("id", "commandLine", "resourceFiles", "outputFiles", "environment"))
# The Task fields behind the settings part: all but those of the other parts (and the id).
_SETTINGS_FIELDS = tuple(
    f.name
    for f in dataclasses.fields(Task)
    if f.name not in ("id", "command_line", "resource_files", "output_files", "environment")
)
_REMEMBERED = 4096  # settings encodings kept: the tasks of a template share one


def task_stamp(task: Task, pool: Pool) -> str:
    """The fingerprint a task carries: a digest of the whole, then one short digest per part.

    The parts let the planner name what changed without reading the live task's details (its
    resource files hold SAS URLs that change on every apply). The whole is the digest of
    `canonical_json` of the parts' mapping, written out here from the parts' own encodings
    (keys in sorted order, as canonical_json writes them). Each part is that of
    `task.to_dict()`, made without the rest of it, and the parts the tasks of a template share
    (environment, settings, application) are encoded and digested once: a converged plan of
    100,000 tasks computes 100,000 stamps, ~30 us each from `to_dict`, ~12 us so.
    """
    encoded = {
        "commandLine": canonical_json(task.command_line),
        "resourceFiles": canonical_json([r.to_dict() for r in task.resource_files] or None),
        "outputFiles": canonical_json([o.to_dict() for o in task.output_files] or None),
        "environment": canonical_json(dict(task.environment)) if task.environment else "null",
        "settings": _settings_json(task),
        "application": _application_json(pool),
    }
    whole = "{" + ",".join(f'"{k}":{encoded[k]}' for k in _SORTED_PARTS) + "}"
    short = ".".join(
        (_shared_digest if p in ("environment", "settings", "application") else _digest)(encoded[p])
        for p in TASK_PARTS
    )
    return f"{sha256_text(whole)[:32]}:{short}"


def _digest(encoded: str) -> str:
    return sha256_text(encoded)[:8]


_shared_digest = functools.lru_cache(maxsize=_REMEMBERED)(_digest)
_settings_seen: dict[tuple[Any, ...], str] = {}


def _settings_json(task: Task) -> str:
    """The settings part: what `to_dict()` holds beyond the other parts, once per distinct set."""
    key = tuple(getattr(task, name) for name in _SETTINGS_FIELDS)
    found = _settings_seen.get(key)
    if found is None:
        if len(_settings_seen) >= _REMEMBERED:
            _settings_seen.clear()
        d = task.to_dict()
        found = _settings_seen[key] = canonical_json({k: v for k, v in d.items() if k not in _NOT_SETTINGS})
    return found


_application_seen: list[tuple[Pool, str]] = []


def _application_json(pool: Pool) -> str:
    """The application part: the pool's start task (by identity first: a Pool's hash is its
    every field, and each stamp asks)."""
    for seen, encoded in _application_seen:
        if seen is pool:
            return encoded
    encoded = canonical_json(pool.start_task.fingerprint() if pool.start_task else None)
    _application_seen[:] = [*_application_seen[-7:], (pool, encoded)]
    return encoded


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


class TasksDigest:
    """The digest of a spec's tasks, by id and stamp in the spec's order, each added as its
    stamp is made (a plan of 100,000 tasks keeps no stamp, ~19 MB, and makes none twice). A job
    carries it as TASKS_STAMP once it holds exactly those tasks."""

    def __init__(self):
        self._digest = hashlib.sha256(b"tasks")

    def add(self, task_id: str, stamp: str) -> None:
        self._digest.update(b"\n" + canonical_json((task_id, stamp)).encode())

    def hexdigest(self) -> str:
        return self._digest.hexdigest()


def tasks_digest(desired: DesiredState) -> str:
    digest = TasksDigest()
    for task in desired.tasks:
        digest.add(task.id, task_stamp(task, desired.pool))
    return digest.hexdigest()


class DesiredDigest:
    """The digest of the desired state (what a saved plan checks): blobs by their content,
    tasks by their TasksDigest (`tasks`, added to as the diff makes the stamps, or `known`
    when a job's TASKS_STAMP already said what it is)."""

    def __init__(self, desired: DesiredState):
        whole = dataclasses.replace(desired, blobs=(), tasks=()).to_dict() | {"spec": None}
        self._digest = hashlib.sha256(canonical_json(whole).encode())
        self._digest.update(b"\n--")
        for ref, sha256 in ((b.ref, b.sha256) for b in desired.blobs):
            self._digest.update(b"\n" + canonical_json((ref, sha256)).encode())
        self.tasks = TasksDigest()
        self.known: str | None = None

    def add(self, task_id: str, stamp: str) -> None:
        self.tasks.add(task_id, stamp)

    def tasks_hexdigest(self) -> str:
        return self.known or self.tasks.hexdigest()

    def hexdigest(self) -> str:
        whole = self._digest.copy()
        whole.update(b"\n--\n" + self.tasks_hexdigest().encode())
        return whole.hexdigest()


def desired_digest(desired: DesiredState) -> str:
    digest = DesiredDigest(desired)
    digest.known = tasks_digest(desired)
    return digest.hexdigest()


def live_digest(live: LiveState) -> str:
    """A digest of the live facts plans are made from, leaving out transient progress."""
    pool = live.pool or {}
    job = live.job or {}
    facts = {
        "containers": {n: c.metadata for n, c in sorted(live.containers.items())},
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
    }
    blobs = (
        (n, b.name, b.sha256)
        for n, in_container in sorted(live.blobs.items())
        for b in sorted(in_container.values(), key=lambda b: b.name)
        if b.sha256
    )
    if live.tally:  # counted, not read: the job's stamp stands for the tasks (live/state.py)
        facts["tally"] = [live.tally.digest, live.tally.failed]
    tasks = sorted(live.tasks, key=lambda t: t["id"])
    return _digest_of(facts, blobs, ((t["id"], task_fingerprint(t), failed(t)) for t in tasks))


def _digest_of(facts: dict[str, Any], *items: Iterable[tuple]) -> str:
    """The sha256 of `facts` then of each item, one canonical line each: hashed as they come,
    not made into one text (for 100,000 tasks and blobs, ~60 MB at the plan's peak)."""
    digest = hashlib.sha256(canonical_json(facts).encode())
    for group in items:
        digest.update(b"\n--")
        for item in group:
            digest.update(b"\n" + canonical_json(item).encode())
    return digest.hexdigest()


def failed(task: dict[str, Any]) -> bool:
    info = task.get("executionInfo") or {}
    return task.get("state") == "completed" and info.get("result") == "failure"
