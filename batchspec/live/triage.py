"""Why a run went wrong, by cause: failed tasks grouped by what failed them, and what happened
to the pool and its nodes on the way (preemptions, unusable nodes, start tasks, allocation).

Read from the live documents alone (the codes and states of the Batch REST API: failureInfo,
requeueCount, node states and errors, the pool's resizeErrors), so `apply` and `status` say the
same, and a later `status` still can.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

EXAMPLES = 3

# Keys a cause is known by, with what to do next.
EXIT_CODE = "exit code {}"
HINTS = {
    "exit code": "the command failed: read its stderr (the tail of the first is shown)",
    "wall clock exceeded": "the task ran past its maxWallClockTime: raise the limit or split the work",
    "terminated": "the task or its job was terminated (by a user, or the job's constraints)",
    "resource file unreadable": (
        "an input could not be read: its SAS expired or lacks read permission, or the blob is "
        "gone; apply again to give the tasks fresh SAS URLs"
    ),
    "output upload failed": (
        "the outputs could not be uploaded: check the output container exists, and the write "
        "SAS or the pool identity's role on it"
    ),
    "command could not start": "the program was not found or could not start: check the command and image",
    "start task failed": "the start task failed on these nodes: its stderr is the node's startup/stderr.txt",
    "preparation task failed": (
        "the job preparation task failed on these nodes, so the job's tasks do not run there: its "
        "stderr is the node's workitems/<job>/job-1/jobpreparation/stderr.txt; fix it and apply "
        "again (a changed preparation task replaces the job)"
    ),
    "node unusable": "nodes turned unusable (their tasks ran again elsewhere); apply again to replace them",
    "preempted and requeued": "spot nodes were preempted and these tasks ran again: no failure",
    "allocation error": (
        "the pool could not get all its nodes: raise the account's core quota, or ask for fewer or "
        "smaller nodes"
    ),
    "failed": "see the task's failureInfo with `batchspec status SPEC --json`",
}


@dataclass
class Cause:
    """One cause: how many tasks (or nodes) it hit, a few of them, and what to do."""

    key: str
    count: int
    kind: str = "task"  # what `examples` name: task, node or pool
    examples: list[str] = field(default_factory=list)
    detail: str = ""  # the service's own words for the first example
    failure: bool = True  # False: something that happened, not something that failed
    stderr: str | None = None  # the tail of the first failed task's stderr, when read

    @property
    def hint(self) -> str:
        return HINTS.get(self.key.split(":")[0] if not self.key.startswith("exit code") else "exit code", "")

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "hint": self.hint}


def task_cause(task: dict[str, Any]) -> str | None:
    """The cause of a failed task, from its executionInfo; None if it did not fail."""
    info = task.get("executionInfo") or {}
    if info.get("result") != "failure":
        return None
    failure = info.get("failureInfo") or {}
    code = str(failure.get("code") or "")
    details = {d.get("name") for d in failure.get("details") or []}
    if code == "TaskEnded":
        wall = "MaxWallClockTime" in details or "wall clock" in str(failure.get("message", "")).lower()
        return "wall clock exceeded" if wall else "terminated"
    if code.startswith("FileUpload"):
        return "output upload failed"
    if code.startswith(("Blob", "Resource", "ContainerNotFound")):
        return "resource file unreadable"
    if code.startswith("Command"):
        return "command could not start"
    if info.get("exitCode") not in (None, 0):
        return EXIT_CODE.format(info["exitCode"])
    return "failed"


def preparation_failure(status: dict[str, Any]) -> dict[str, Any] | None:
    """A node's job preparation task execution info if it failed there for good."""
    info = status.get("jobPreparationTaskExecutionInfo") or {}
    return info if info.get("state") == "completed" and info.get("result") == "failure" else None


def triage(
    tasks: Iterable[dict[str, Any]],
    nodes: Iterable[dict[str, Any]] = (),
    pool: dict[str, Any] | None = None,
    preparations: Iterable[dict[str, Any]] = (),
) -> list[Cause]:
    """The causes, failures first (most tasks first), then what happened on the way;
    `preparations` are the job preparation task's statuses per node."""
    causes: dict[str, Cause] = {}

    def add(key: str, example: str, detail: str = "", kind: str = "task", failure: bool = True) -> None:
        cause = causes.setdefault(key, Cause(key, 0, kind, failure=failure))
        cause.count += 1
        if len(cause.examples) < EXAMPLES:
            cause.examples.append(example)
        if not cause.detail and detail:
            cause.detail = detail

    for task in tasks:
        info = task.get("executionInfo") or {}
        key = task_cause(task)
        if key is not None:
            failure = info.get("failureInfo") or {}
            add(key, task["id"], f"{failure.get('code', '')}: {failure.get('message', '')}".strip(": "))
        if info.get("requeueCount"):
            add(
                "preempted and requeued",
                task["id"],
                f"requeued {info['requeueCount']} time(s)",
                failure=False,
            )
    for node in nodes:
        if node.get("state") == "starttaskfailed":
            start = (node.get("startTaskInfo") or {}).get("exitCode")
            add("start task failed", node["id"], f"exit code {start}", kind="node")
        elif node.get("state") == "unusable":
            errors = node.get("errors") or [{}]
            detail = f"{errors[0].get('code', '')}: {errors[0].get('message', '')}".strip(": ")
            add("node unusable", node["id"], detail, kind="node", failure=False)
    for node in preparations:
        if (info := preparation_failure(node)) is not None:
            failure = info.get("failureInfo") or {}
            detail = f"exit code {info.get('exitCode')}" if info.get("exitCode") is not None else ""
            add(
                "preparation task failed",
                node.get("nodeId", "?"),
                detail or failure.get("code", ""),
                kind="node",
            )
    for error in (pool or {}).get("resizeErrors") or []:
        # The pool got fewer nodes than asked for: its tasks ran on those it got.
        key, message = f"allocation error: {error.get('code')}", str(error.get("message") or "")
        add(key, pool["id"], message, kind="pool", failure=False)
    return sorted(causes.values(), key=lambda c: (not c.failure, -c.count, c.key))
