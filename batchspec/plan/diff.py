"""diff(desired, live) -> Plan: typed changes with their reasons, as English. Pure: no I/O.

`live.state.read` gathers what this compares; `apply` executes the changes; `ui` prints them.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from batchspec.errors import PlanError
from batchspec.model import (
    FINGERPRINT,
    OWNER,
    TASKS_STAMP,
    DesiredState,
    LiveState,
    Task,
    metadata,
    task_fingerprint,
)
from batchspec.plan import preflight
from batchspec.plan.pool import pool_change
from batchspec.plan.reasons import clash, was
from batchspec.plan.records import Action, Change, Plan, Size
from batchspec.plan.stamps import (
    JOB_EXTRA,
    JOB_TASKS,
    REFRESH_BELOW,
    TASK_PARTS,
    DesiredDigest,
    failed,
    job_stamps,
    live_digest,
    sas_expiry,
    task_stamp,
)


def diff(desired: DesiredState, live: LiveState) -> Plan:
    """The changes that take `live` to `desired`. Raises PlanError on a clash with unowned resources."""
    changes: list[Change] = []
    clashes: list[str] = []
    changes += _containers(desired, live, clashes)
    changes += _blobs(desired, live)
    pool = pool_change(desired, live, clashes)
    stamp = functools.partial(task_stamp, pool=desired.pool)
    job_change = _job(desired, live, clashes, stamp)
    if clashes:
        raise PlanError(
            "; ".join(clashes),
            hint="batchspec never changes what it did not create: rename the resource "
            "in the spec, or remove the existing one yourself",
        )
    digest = DesiredDigest(desired)
    task_changes, pending = _tasks(desired, live, job_change, stamp, digest)
    if _runs(task_changes) and (why := _job_sas_expiring(live)):
        job_change = Change("job", desired.job.id, Action.REPLACE, (why,))
        digest = DesiredDigest(desired)
        task_changes, pending = _tasks(desired, live, job_change, stamp, digest)
    changes += [c for c in (pool, job_change) if c]
    changes += task_changes
    if desired.download:
        changes += _download(desired, live, task_changes)
    changes += [
        Change("container", name, Action.DELETE, ("owned by this spec, no longer in it",))
        for name in live.owned_containers
    ]
    plan = Plan(
        name=desired.name,
        spec=desired.spec_path,
        changes=changes,
        pending_tasks=pending,
        vars=dict(desired.overrides),
        desired_digest=digest.hexdigest(),
        live_digest=live_digest(live),
        tasks_digest=digest.tasks_hexdigest(),
        upload_metadata=_upload_metadata(desired, live, changes),
        tasks_stamp=_tasks_stamp(live, job_change),
        checks=preflight.checks(desired, live, pool, job_change),
        notes=[
            f"uploads to {name}: taken as the last apply left them (its stamp); --refresh lists them"
            for name in live.uploads_stamped
        ],
    )
    return plan


def _upload_metadata(
    desired: DesiredState, live: LiveState, changes: list[Change]
) -> dict[str, dict[str, str]]:
    """The live metadata of the containers the spec uploads to that the plan does not rewrite."""
    rewritten = {c.id for c in changes if c.kind == "container"}
    names = {b.container for b in desired.blobs} - rewritten
    return {n: dict(live.containers[n].metadata) for n in sorted(names) if n in live.containers}


def _containers(desired: DesiredState, live: LiveState, clashes: list[str]) -> list[Change]:
    changes = []
    for container in desired.containers:
        existing = live.containers.get(container.name)
        if existing is None:
            changes.append(Change("container", container.name, Action.CREATE))
        elif (
            not clash("container", container.name, existing.owner, desired.name, clashes)
            and existing.fingerprint != container.fingerprint()
        ):
            changes.append(Change("container", container.name, Action.UPDATE, ("metadata changed",)))
    return changes


def _blobs(desired: DesiredState, live: LiveState) -> list[Change]:
    """The uploads to make or remove; none in a container whose stamp stands for its listing."""
    changes = []
    wanted = {b.ref: b for b in desired.blobs}
    stamped = set(live.uploads_stamped)
    for blob in desired.blobs:
        if blob.container in stamped:
            continue
        current = live.blobs.get(blob.container, {}).get(blob.name)
        if current is None:
            changes.append(Change("blob", blob.ref, Action.CREATE, details=Size(bytes=blob.size)))
        elif current.sha256 != blob.sha256:
            was = (current.sha256 or "unknown")[:12]
            changes.append(
                Change(
                    "blob",
                    blob.ref,
                    Action.UPDATE,
                    (f"content changed (sha256 {was} -> {blob.sha256[:12]})",),
                    details=Size(bytes=blob.size),
                )
            )
    uploaded_to = {b.container for b in desired.blobs} | {c.name for c in desired.containers}
    for container, blobs in live.blobs.items():
        if container not in uploaded_to:
            continue
        for name, current in blobs.items():
            # Only blobs batchspec uploaded carry a sha256; task outputs are left alone.
            if current.sha256 and f"{container}/{name}" not in wanted:
                changes.append(
                    Change(
                        "blob",
                        f"{container}/{name}",
                        Action.DELETE,
                        ("no longer matched by the spec's uploads",),
                    )
                )
    return changes


def _job(desired: DesiredState, live: LiveState, clashes: list[str], stamp: Callable[[Task], str]):
    job, current = desired.job, live.job
    if current is None:
        return Change("job", job.id, Action.CREATE)
    meta = metadata(current)
    if clash("job", job.id, meta.get(OWNER), desired.name, clashes):
        return None
    if current.get("state") == "deleting":
        return Change("job", job.id, Action.CREATE, ("the existing job is being deleted",))
    reasons = []
    pool_id = (current.get("poolInfo") or {}).get("poolId")
    if pool_id != job.pool_id:
        reasons.append(f"poolInfo.poolId: {was(pool_id, job.pool_id)} (forces replacement)")
    uses = bool(current.get("usesTaskDependencies"))
    if uses != job.uses_task_dependencies:
        reasons.append(f"usesTaskDependencies: {was(uses, job.uses_task_dependencies)} (forces replacement)")
    stamps = job_stamps(job)
    if meta.get(JOB_EXTRA) != stamps[JOB_EXTRA]:
        reasons.append("extra: changed (forces replacement)")
    if meta.get(JOB_TASKS, "") != stamps.get(JOB_TASKS, ""):
        reasons.append("preparationTask or releaseTask: changed (forces replacement)")
    if current.get("state") in ("completed", "terminating", "disabling", "disabled") and live.tally:
        if live.tally.failed:  # the tasks are the spec's (its stamp), some failed
            reasons.append(
                f"state: {current.get('state')} (a {current.get('state')} job takes no "
                "new tasks; forces replacement)"
            )
    elif current.get("state") in ("completed", "terminating", "disabling", "disabled"):
        wanted = {t.id.lower(): t for t in desired.tasks}
        live_ids = {t["id"].lower() for t in live.tasks}
        stale = any(k not in live_ids for k in wanted) or any(
            task_fingerprint(t) != stamp(wanted[t["id"].lower()])
            for t in live.tasks
            if t["id"].lower() in wanted
        )
        if stale or any(failed(t) for t in live.tasks):
            reasons.append(
                f"state: {current.get('state')} (a {current.get('state')} job takes no "
                "new tasks; forces replacement)"
            )
    if reasons:
        return Change("job", job.id, Action.REPLACE, tuple(reasons))
    update = []
    if meta.get(FINGERPRINT) != job.fingerprint():
        for key, want in (
            ("priority", job.priority or 0),
            ("maxParallelTasks", job.max_parallel_tasks or -1),
            ("onAllTasksComplete", job.on_all_tasks_complete or "noaction"),
            ("onTaskFailure", job.on_task_failure or "noaction"),
        ):
            have = current.get(key, {"priority": 0, "maxParallelTasks": -1}.get(key, "noaction"))
            if have != want:
                update.append(f"{key}: {was(have, want)}")
        if not update:
            update.append("constraints or metadata changed")
    return Change("job", job.id, Action.UPDATE, tuple(update)) if update else None


def _runs(task_changes: list[Change]) -> bool:
    return any(c.action in (Action.CREATE, Action.REPLACE, Action.RERUN) for c in task_changes)


def _job_sas_expiring(live: LiveState) -> str | None:
    """Why the job must be made again before tasks run: its preparation or release task reads
    storage through SAS URLs that expire soon (a node that joins later runs the preparation
    task, and no update changes it), under the rule the pool's start task follows."""
    job = live.job or {}
    urls = [
        url
        for key in ("jobPreparationTask", "jobReleaseTask")
        for rf in (job.get(key) or {}).get("resourceFiles") or []
        for url in (rf.get("httpUrl"), rf.get("storageContainerUrl"))
        if url
    ]
    ends = [e for e in map(sas_expiry, urls) if e is not None]
    if not ends or live.read_at is None or min(ends) - live.read_at >= REFRESH_BELOW:
        return None
    verb = "expired" if min(ends) <= live.read_at else "expire"
    return (
        f"preparationTask: resource file SAS {verb} {min(ends):%Y-%m-%d %H:%M} UTC "
        "(nodes that join run it; forces replacement)"
    )


def _tasks(
    desired: DesiredState,
    live: LiveState,
    job_change: Change | None,
    stamp: Callable[[Task], str],
    digest: DesiredDigest,
) -> tuple[list[Change], int]:
    """The task changes; every task's stamp is made once, here, and added to `digest`."""
    fresh_job = job_change is not None and job_change.action in (Action.CREATE, Action.REPLACE)
    if fresh_job:
        reason = () if job_change.action == Action.CREATE else ("the job is replaced",)
        for t in desired.tasks:
            digest.add(t.id, stamp(t))
        return [Change("task", t.id, Action.CREATE, reason) for t in desired.tasks], 0
    if live.tally is not None:
        return _counted_tasks(desired, live, digest)
    current = {t["id"].lower(): t for t in live.tasks}
    changes = []
    by_id: dict[str, Change] = {}
    pending: set[str] = set()
    for task in desired.tasks:
        want = stamp(task)
        digest.add(task.id, want)
        existing = current.pop(task.id.lower(), None)
        if existing is None:
            change = Change("task", task.id, Action.CREATE)
        elif (have := task_fingerprint(existing)) != want:
            change = Change("task", task.id, Action.REPLACE, tuple(_task_reasons(task, existing, have, want)))
        elif failed(existing):
            change = Change("task", task.id, Action.RERUN, (_failure(existing),))
        else:
            if existing.get("state") != "completed":
                pending.add(task.id.lower())
            continue
        changes.append(change)
        by_id[task.id.lower()] = change
    changes += _downstream(desired.tasks, by_id, pending)
    for task in current.values():
        changes.append(Change("task", task["id"], Action.DELETE, ("no longer in the spec",)))
    return changes, len(pending)


def _counted_tasks(desired: DesiredState, live: LiveState, digest: DesiredDigest) -> tuple[list[Change], int]:
    """The task changes of a job that holds exactly the spec's tasks (its TASKS_STAMP is the
    spec's: `live.tally`): the failed ones run again, the rest stand as counted. Failed tasks
    come this way only in a spec without dependencies (live.state reads the rest in full)."""
    assert live.tally is not None
    digest.known = live.tally.digest
    failed = {t["id"].lower(): t for t in live.tasks}
    changes = [
        Change("task", t.id, Action.RERUN, (_failure(failed[t.id.lower()]),))
        for t in desired.tasks
        if t.id.lower() in failed
    ]
    return changes, live.tally.active + live.tally.running


def _failure(task: dict[str, Any]) -> str:
    info = task.get("executionInfo") or {}
    code = info.get("exitCode")
    failure = (info.get("failureInfo") or {}).get("code")
    what = f"exit code {code}" if code is not None else (failure or "failure")
    return f"completed with failure ({what})"


def _tasks_stamp(live: LiveState, job_change: Change | None) -> str | None:
    """The job's TASKS_STAMP as it stands when apply comes to the tasks (none on a new job)."""
    if live.job is None or (job_change is not None and job_change.action in (Action.CREATE, Action.REPLACE)):
        return None
    return metadata(live.job).get(TASKS_STAMP)


_RUNS_AGAIN = {Action.CREATE: "is new", Action.REPLACE: "is replaced", Action.RERUN: "runs again"}


def _downstream(tasks: tuple[Task, ...], by_id: dict[str, Change], pending: set[str]) -> list[Change]:
    """The tasks that depend, directly or not, on a task that runs anew: replaced too, since
    what they read is made again (a completed one would not run again by itself). `tasks` come
    each after those it depends on; a stage's tasks share one tuple of the ids they depend on,
    so the answer for a tuple is found once."""
    changes = []
    found: dict[int, str | None] = {}
    for task in tasks:
        if not task.depends_on or task.id.lower() in by_id:
            continue
        key = id(task.depends_on)
        if key not in found:
            found[key] = next((d for d in task.depends_on if d.lower() in by_id), None)
        dep = found[key]
        if dep is None:
            continue
        why = f"depends on {dep}, which {_RUNS_AGAIN[by_id[dep.lower()].action]}"
        change = Change("task", task.id, Action.REPLACE, (why,))
        by_id[task.id.lower()] = change
        pending.discard(task.id.lower())
        changes.append(change)
    return changes


def _task_reasons(task: Task, existing: dict[str, Any], have: str | None, stamp: str) -> list[str]:
    if not have or ":" not in have:
        return ["not created by this version of batchspec (no fingerprint)"]
    old_parts, new_parts = have.split(":", 1)[1].split("."), stamp.split(":", 1)[1].split(".")
    reasons = []
    for name, old, new in zip(TASK_PARTS, old_parts, new_parts, strict=False):
        if old == new:
            continue
        if name == "commandLine":
            reasons.append(f"commandLine: {was(existing.get('commandLine'), task.command_line)}")
        elif name == "resourceFiles":
            reasons.append("resourceFiles: inputs or their content changed")
        elif name == "application":
            reasons.append("the pool's start task (application files) changed")
        else:
            reasons.append(f"{name}: changed")
    return reasons or ["fingerprint changed"]


def _download(desired: DesiredState, live: LiveState, task_changes: list[Change]) -> list[Change]:
    d = desired.download
    runs = any(c.action in (Action.CREATE, Action.REPLACE, Action.RERUN) for c in task_changes)
    if runs:
        return [Change("download", d.container, Action.CREATE, (f"to {d.to} after the tasks complete",))]
    if live.download_pending:
        n = len(live.download_pending)
        return [
            Change(
                "download",
                d.container,
                Action.CREATE,
                (f"{n} blob(s) missing or different in {d.to}",),
                details=Size(blobs=len(live.download_pending)),
            )
        ]
    return []
