"""Waiting for the tasks (riding out an unreachable service) and the summary rows of the outcome."""

from __future__ import annotations

import heapq
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from azure.core.exceptions import HttpResponseError, ServiceRequestError, ServiceResponseError

from batchspec import waiting
from batchspec.apply.attempts import Attempts
from batchspec.apply.common import duration, indent, short
from batchspec.errors import ApplyError
from batchspec.live import batch as live_batch
from batchspec.live import status, triage

if TYPE_CHECKING:
    from batchspec.apply.executor import Applier

SHOWN = 50  # tasks the summary lists
EXIT_OK, EXIT_ERROR, EXIT_TASK_FAILED, EXIT_TIMEOUT = 0, 1, 3, 4
_OUTAGE = 300.0  # seconds of an unreachable Batch service that waiting for tasks rides out


@dataclass(slots=True)  # one a task of the spec: 100,000 at the end of a large apply
class TaskRow:
    id: str
    state: str
    node: str | None = None
    exit_code: int | None = None
    duration: float | None = None
    result: str | None = None
    failure: str | None = None


@dataclass
class Outcome:
    exit_code: int
    # The tasks the summary lists (`SHOWN` of them, failed ones first, then by id): a row each
    # for 100,000 tasks was ~15 MB at the end of an apply, when its memory peaks.
    rows: list[TaskRow] = field(default_factory=list)
    tasks: int = 0  # the spec's tasks, of which
    succeeded: int = 0
    failed: int = 0
    uploaded: int = 0
    uploaded_bytes: int = 0
    submitted: int = 0
    downloaded: int = 0
    timed_out: bool = False
    problems: list[str] = field(default_factory=list)
    causes: list[triage.Cause] = field(default_factory=list)
    # The pool, its nodes and the tasks as the apply last read them (for the run report).
    seen: dict[str, Any] = field(default_factory=dict)


def wait(run: Applier) -> bool:
    """Wait until every task of the job completed; False on timeout.

    The tasks run on without us, so an unreachable service (a restart, a network blip) is
    waited out here, up to `_OUTAGE` in a row, rather than failing the apply.
    """
    job_id = run.desired.job.id
    start = time.monotonic()
    said = False
    outage_since: float | None = None
    done_at_start: int | None = None
    attempts = Attempts(run)

    def look() -> bool:
        nonlocal said, done_at_start
        counts = run.t.batch.get_job_task_counts(job_id).task_counts
        attempts.look(run)
        finished = counts.active + counts.running == 0 and none_incomplete(run, job_id)
        if finished and not said:
            return True  # all done at the first look: nothing to show
        if not said:
            run.ui.step("waiting for tasks")
            said = True
        figures = {"active": counts.active, "running": counts.running}
        figures |= {"succeeded": counts.succeeded, "failed": counts.failed}
        completed, elapsed = counts.succeeded + counts.failed, time.monotonic() - start
        done_at_start = completed if done_at_start is None else done_at_start
        figures |= pace(completed - done_at_start, counts.active + counts.running, elapsed)
        figures |= troubled_nodes(run)
        run.ui.task_counts(figures, elapsed)
        if counts.active and not counts.running and run.prepares:
            check_preparation(run)
        return finished

    def done() -> bool:
        """One look; an unreachable service at any request of it is waited out."""
        nonlocal outage_since
        try:
            finished = look()
        except (ServiceRequestError, ServiceResponseError) as exc:
            now = time.monotonic()
            if outage_since is None:
                outage_since = now
                run.ui.note("the Batch service cannot be reached; still waiting for it")
            elif now - outage_since > _OUTAGE:
                raise ApplyError(
                    f"the Batch service could not be reached for {_OUTAGE:.0f} s ({short(exc)}); "
                    "the tasks go on: run apply again to resume waiting"
                ) from None
            return False
        outage_since = None
        return finished

    if waiting.poll(done, waiting.Deadline(run.timeout, "--timeout (wait.timeout)"), run.poll) is None:
        run.outcome.timed_out = True
        return False
    return True


def check_preparation(run: Applier) -> None:
    """Tasks wait and none runs: if the job preparation task failed on every node of the pool,
    none ever will there (waitForSuccess keeps the job's tasks off such a node), so stop now
    rather than at the timeout."""
    job_id, pool_id = run.desired.job.id, run.desired.pool.id
    failed = [s for s in live_batch.read_preparations(run.t.batch, job_id) if triage.preparation_failure(s)]
    if not failed or not run.desired.job.preparation_task.wait_for_success:
        return
    pool = live_batch.read_pool(run.t.batch, pool_id) or {}
    if len(failed) < (pool.get("currentDedicatedNodes") or 0) + (pool.get("currentLowPriorityNodes") or 0):
        return
    node = failed[0]["nodeId"]
    path = f"workitems/{job_id}/job-1/jobpreparation/stderr.txt"
    stderr = run.tail(
        lambda **kw: run.t.batch.download_node_file(pool_id, node, path, **kw),
        lambda: run.t.batch.get_node_file_properties(pool_id, node, path),
    )
    code = triage.preparation_failure(failed[0]).get("exitCode")
    lines = [
        f"the job preparation task failed on every node of pool {pool_id} ({len(failed)}), so no "
        f"task of job {job_id} can run; node {node}: exit code {code}"
    ]
    if stderr:
        lines.append("stderr (tail):\n" + indent(stderr))
    raise ApplyError("\n".join(lines), hint="fix job.preparationTask and apply again: the job is replaced")


def pace(completed: int, remaining: int, elapsed: float) -> dict[str, float]:
    """Tasks completed a second since the wait began, and the seconds left at that pace."""
    if completed <= 0 or elapsed <= 0:
        return {}
    rate = completed / elapsed
    return {"rate": rate, "left": remaining / rate}


def troubled_nodes(run: Applier) -> dict[str, int]:
    """The pool's preempted and unusable nodes, which the live line shows (their tasks are
    requeued and run again: the wait goes on)."""
    try:
        found = run.t.batch.list_pool_node_counts(filter=f"poolId eq '{run.desired.pool.id}'")
        counts = next(iter(found), None)
    except HttpResponseError:  # the line goes without them
        return {}
    if counts is None:
        return {}
    figures = {}
    for state in ("preempted", "unusable"):
        total = sum(getattr(getattr(counts, kind), state, 0) or 0 for kind in ("dedicated", "low_priority"))
        if total:
            figures[state] = total
    return figures


def none_incomplete(run: Applier, job_id: str) -> bool:
    # Task counts are eventually consistent on the real service; a filtered page is not.
    page = run.t.batch.list_tasks(job_id, filter="state ne 'completed'", select=["id"], max_results=1)
    return next(iter(page), None) is None


def row(task_id: str, live: dict | None) -> TaskRow:
    """The summary row of one task of the spec, from its live document (None: not there)."""
    if live is None:
        return TaskRow(task_id, "missing")
    info = live.get("executionInfo") or {}
    failure = info.get("failureInfo") or {}
    return TaskRow(
        id=task_id,
        state=live.get("state", "?"),
        node=(live.get("nodeInfo") or {}).get("nodeId"),
        exit_code=info.get("exitCode"),
        duration=duration(info),
        result=info.get("result"),
        failure=f"{failure.get('code')}: {failure.get('message')}" if failure else None,
    )


def exit_code(outcome: Outcome) -> int:
    """The apply's exit code: 4 the wait timed out, 3 a task failed, 1 another problem, else 0."""
    if outcome.timed_out:
        return EXIT_TIMEOUT
    if outcome.failed:
        return EXIT_TASK_FAILED
    return EXIT_ERROR if outcome.problems else EXIT_OK


def summarize(run: Applier) -> list[Any]:
    """Count the spec's tasks by result into the outcome, with the rows the summary lists;
    returns the tasks' live documents (`status.read_tasks`)."""
    tasks = status.read_tasks(run.t, run.desired)
    live = {t["id"]: t for t in tasks}
    o = run.outcome
    o.rows, results = tally((task.id for task in run.desired.tasks), live)
    o.tasks, o.succeeded, o.failed = results.total(), results["success"], results["failure"]
    return tasks


def tally(
    task_ids: Iterable[str], live: Mapping[str, Any], shown: int = SHOWN
) -> tuple[list[TaskRow], Counter]:
    """The rows of the first `shown` tasks (failed ones first, then by id) and how many tasks
    ended with each result (None: not complete or missing), in one pass."""
    results: Counter = Counter()

    def counted(task_id: str) -> TaskRow:
        made = row(task_id, live.get(task_id))
        results[made.result] += 1
        return made

    first = heapq.nsmallest(shown, map(counted, task_ids), key=lambda r: (r.result != "failure", r.id))
    return first, results


def causes(
    run: Applier, tasks: list[dict], nodes: list[dict], pool: dict | None, preparations: list[dict]
) -> list[triage.Cause]:
    """What went wrong, by cause (live/triage.py), with the stderr tail of each failed cause's
    first task: one read per cause, not per task."""
    found = triage.triage(tasks, nodes, pool, preparations)
    for cause in found:
        if cause.failure and cause.kind == "task":
            cause.stderr = run.tail(
                lambda tid=cause.examples[0], **kw: run.t.batch.download_task_file(
                    run.desired.job.id, tid, "stderr.txt", **kw
                ),
                lambda tid=cause.examples[0]: run.t.batch.get_task_file_properties(
                    run.desired.job.id, tid, "stderr.txt"
                ),
            )
    return found
