"""Apply's job and task steps: create, replace or update the job; remove replaced tasks and add
the new ones in collections, telling a retried add of our own from somebody else's task."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from itertools import groupby
from typing import TYPE_CHECKING

from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError

from batchspec import waiting
from batchspec.apply import payloads, submit
from batchspec.apply.common import start_delete
from batchspec.errors import ApplyError
from batchspec.live import batch as live_batch
from batchspec.model import task_fingerprint
from batchspec.plan import Action, Change, task_stamp

if TYPE_CHECKING:
    from batchspec.apply.executor import Applier

_PART = 10_000  # tasks whose bodies are made and sent together


def job(run: Applier) -> None:
    job = run.desired.job
    changes = run.plan.of("job")
    if not changes:
        return
    change = changes[0]
    owner = run.desired.name
    read = lambda: live_batch.read_job(run.t.batch, job.id)  # noqa: E731
    if change.action == Action.REPLACE:
        run.ui.step(f"deleting job {job.id} to replace it")
        poller = start_delete(run.t.batch.begin_delete_job, job.id, run.poll)
        if poller is not None:
            waiting.finish(poller, run.setup, f"job {job.id} to be deleted")
    if change.action in (Action.CREATE, Action.REPLACE):
        run.wait_gone(read, f"job {job.id}")
        run.ui.step(f"creating job {job.id}")
        try:
            run.t.batch.create_job(payloads.job(job, owner, run.grants(start_task=True)))
        except ResourceExistsError:
            run.check_own_create("job", read(), job.fingerprint())
    elif change.action == Action.UPDATE:
        run.ui.step(f"updating job {job.id}")
        run.t.batch.update_job(job.id, payloads.job_update(job, owner, run.plan.tasks_stamp))


def tasks(run: Applier) -> None:
    """Remove and add the plan's tasks; then stamp the job with the spec's TasksDigest (it
    holds exactly the spec's tasks), which lets the next plans count them instead of reading
    each. The stamp comes off before the tasks change: an apply stopped halfway leaves none."""
    changes = run.plan.of("task")
    if changes and run.plan.tasks_stamp:
        stamp_tasks(run, None)
    _change_tasks(run, changes)
    if run.plan.tasks_digest and (changes or run.plan.tasks_stamp != run.plan.tasks_digest):
        stamp_tasks(run, run.plan.tasks_digest)


def stamp_tasks(run: Applier, digest: str | None) -> None:
    job = run.desired.job
    body = {"metadata": payloads.job_metadata(job, run.desired.name, digest)}
    try:
        run.t.batch.update_job(job.id, body)
    except HttpResponseError as exc:
        if digest is None or exc.status_code != 409:
            raise
        # A job that completed (onAllTasksComplete) takes no update: its plans read every task.


def _change_tasks(run: Applier, changes: list[Change]) -> None:
    job_id = run.desired.job.id
    removals = [c.id for c in changes if c.action in (Action.DELETE, Action.REPLACE, Action.RERUN)]
    if removals:
        run.ui.step(f"removing {len(removals)} task(s)")
        with ThreadPoolExecutor(max_workers=run.parallelism) as pool:
            list(pool.map(lambda tid: delete_task(run, job_id, tid), removals))
    wanted = {c.id for c in changes if c.action in (Action.CREATE, Action.REPLACE, Action.RERUN)}
    tasks = [t for t in run.desired.tasks if t.id in wanted]
    if not tasks:
        return
    run.ui.step(f"submitting {len(tasks)} task(s)")
    stamps = {t.id: task_stamp(t, run.desired.pool) for t in tasks}
    grants = run.grants(start_task=False)
    refused: list[submit.Refused] = []
    # Stage by stage, each after those it depends on (the collections of one stage go in
    # parallel, so a later stage's task could otherwise be added before a task it names), and
    # the bodies of a part at a time: 100,000 of them at once held ~150 MB.
    for _, stage in groupby(tasks, key=lambda t: (t.stage, bool(t.depends_on))):
        wave = list(stage)
        for start in range(0, len(wave), _PART):
            part = wave[start : start + _PART]
            bodies = [payloads.task(t, stamps[t.id], grants, run.desired.pool) for t in part]
            refused += submit.add_tasks(run.t.batch, job_id, bodies, threads=min(run.parallelism, 8))
    if refused:
        check_refused(run, refused, stamps)
    run.outcome.submitted = len(tasks)


def delete_task(run: Applier, job_id: str, task_id: str) -> None:
    try:
        run.t.batch.delete_task(job_id, task_id)
    except ResourceNotFoundError:
        pass


def check_refused(run: Applier, refused: list[submit.Refused], stamps: dict[str, str]) -> None:
    """TaskExists with our own fingerprint is a retried request that had succeeded; any
    other refusal, a TaskExists of somebody else's task included, fails the apply."""
    problems = []
    existing = None
    for r in refused:
        if r.code == "TaskExists":
            if existing is None:
                existing = {t["id"]: t for t in live_batch.read_tasks(run.t.batch, run.desired.job.id)}
            live = existing.get(r.task_id)
            if live and task_fingerprint(live) == stamps.get(r.task_id):
                continue
        problems.append(f"task {r.task_id}: {r.code} {r.message}".strip())
    if problems:
        raise ApplyError(f"{len(problems)} task(s) could not be added: " + "; ".join(problems[:5]))
