"""The live state of a spec's resources, for `batchspec status`."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, overload

from batchspec.live import batch, logs, storage, triage
from batchspec.model import OWNER, DesiredState, metadata

TASK_FIELDS = ["id", "state", "executionInfo", "nodeInfo"]
_ENDED = ("startTime", "endTime", "exitCode", "result", "retryCount", "requeueCount", "failureInfo")


def read_tasks(target: Any, desired: DesiredState) -> list[TaskView]:
    """The job's tasks as status, triage and the run report read them (`reported_view`), in id
    ranges of the spec's tasks."""
    ids = [t.id for t in desired.tasks]
    return batch.read_tasks(target.batch, desired.job.id, TASK_FIELDS, ids=ids, keep=reported_view())


def reported_view() -> Callable[[dict[str, Any]], TaskView]:
    """What status, triage and the run report read of a task, as a `keep` for
    `batch.read_tasks`: a `TaskView` (of its node only the id, and each state, result and node
    id kept once: 100,000 tasks are read at every apply's end)."""
    shared: dict[Any, Any] = {}

    def view(task: dict[str, Any]) -> TaskView:
        info = task.get("executionInfo") or {}
        ended = [info.get(k, _ABSENT) for k in _ENDED]
        ended[_RESULT] = shared.setdefault(ended[_RESULT], ended[_RESULT])
        state, node = task.get("state"), (task.get("nodeInfo") or {}).get("nodeId")
        return TaskView(task["id"], shared.setdefault(state, state), shared.setdefault(node, node), *ended)

    return view


_ABSENT = object()  # a field the listing did not have (not the same as one that is null)
_RESULT = _ENDED.index("result")


class TaskView(Mapping[str, Any]):
    """A listed task as the JSON it was read from (`id`, `state`, `executionInfo` with the
    `_ENDED` fields it had, `nodeInfo` with the `nodeId`), kept in slots: as a dict of dicts one
    took ~740 bytes, 74 MB for 100,000 tasks; as this ~340. `executionInfo` and `nodeInfo` are
    made when they are looked up, so readers of the listing's JSON read this the same."""

    __slots__ = ("_id", "_state", "_node", *(f"_{k}" for k in _ENDED))

    def __init__(self, task_id: str, state: str | None, node: str | None, *ended: Any):
        self._id, self._state, self._node = task_id, state, node
        for key, value in zip(_ENDED, ended, strict=True):
            setattr(self, f"_{key}", value)

    def _info(self) -> dict[str, Any] | None:
        info = {k: v for k in _ENDED if (v := getattr(self, f"_{k}")) is not _ABSENT}
        return info or None

    def __getitem__(self, key: str) -> Any:
        if key == "id":
            return self._id
        value = self.get(key, _ABSENT)
        if value is _ABSENT:
            raise KeyError(key)
        return value

    def get(self, key: str, default: Any = None) -> Any:
        if key == "id":
            return self._id
        if key == "state":
            return default if self._state is None else self._state
        if key == "executionInfo":
            info = self._info()
            return default if info is None else info
        if key == "nodeInfo":
            return default if self._node is None else {"nodeId": self._node}
        return default

    def __iter__(self) -> Iterator[str]:
        keys = ("id", "state", "executionInfo", "nodeInfo")
        return (k for k in keys if self.get(k, _ABSENT) is not _ABSENT)

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def __repr__(self) -> str:
        return f"TaskView({dict(self)!r})"


def read(target: Any, desired: DesiredState, known: dict[str, Any] | None = None) -> dict[str, Any]:
    """The spec's live state; `known` holds documents just read ("pool", "nodes", "tasks", as
    an apply ends with them), which are not read again."""
    known = known or {}
    containers = storage.read_containers(target.blob, {c.name for c in desired.containers})
    pool = known["pool"] if "pool" in known else batch.read_pool(target.batch, desired.pool.id)
    job = batch.read_job(target.batch, desired.job.id)
    if "nodes" in known:
        nodes = known["nodes"]
    else:
        nodes = batch.read_nodes(target.batch, desired.pool.id) if pool else []
    if "tasks" in known:
        tasks = known["tasks"]
    else:
        tasks = read_tasks(target, desired) if job else []
    has_preparation = job is not None and job.get("jobPreparationTask") is not None
    preparations = batch.read_preparations(target.batch, desired.job.id) if has_preparation else []
    return {
        "name": desired.name,
        "containers": [
            {
                "name": c.name,
                "exists": c.name in containers,
                "owned": containers[c.name].owner == desired.name if c.name in containers else None,
            }
            for c in desired.containers
        ],
        "pool": None
        if pool is None
        else {
            "id": pool["id"],
            "state": pool.get("state"),
            "allocationState": pool.get("allocationState"),
            "vmSize": pool.get("vmSize"),
            "owned": metadata(pool).get(OWNER) == desired.name,
            "nodes": dict(Counter(n.get("state") for n in nodes)),
            "nodeList": [_node(n) for n in nodes],
        },
        "job": None
        if job is None
        else {
            "id": job["id"],
            "state": job.get("state"),
            "owned": metadata(job).get(OWNER) == desired.name,
            "preparation": [_preparation(p) for p in preparations] if has_preparation else None,
        },
        "tasks": TaskRows(tasks, _earlier(target, desired, tasks)),
        "causes": [c.as_dict() for c in triage.triage(tasks, nodes, pool, preparations)],
    }


def _preparation(status: dict[str, Any]) -> dict[str, Any]:
    """How the job's preparation and release tasks went on one node."""

    def run(info: dict[str, Any] | None) -> dict[str, Any] | None:
        return (
            {k: info.get(k) for k in ("state", "result", "exitCode", "startTime", "endTime")}
            if info
            else None
        )

    return {
        "node": status.get("nodeId"),
        "preparationTask": run(status.get("jobPreparationTaskExecutionInfo")),
        "releaseTask": run(status.get("jobReleaseTaskExecutionInfo")),
    }


def _task(task: dict[str, Any]) -> dict[str, Any]:
    """A task's last attempt: where, when, how it ended and why; its retries and requeues."""
    info = task.get("executionInfo") or {}
    return {
        "id": task["id"],
        "state": task.get("state"),
        "result": info.get("result"),
        "exitCode": info.get("exitCode"),
        "node": (task.get("nodeInfo") or {}).get("nodeId"),
        "startTime": info.get("startTime"),
        "endTime": info.get("endTime"),
        "retries": info.get("retryCount") or 0,
        "requeues": info.get("requeueCount") or 0,
        "cause": triage.task_cause(task),
    }


Earlier = dict[str, list[dict[str, Any]]]  # task id -> its earlier attempts, as status shows them


class TaskRows(Sequence[dict[str, Any]]):
    """The tasks as status rows (`_task`), each made when it is looked at and not kept: the
    rows of 100,000 tasks are ~70 MB, which the end of a large apply (its outcome, its report)
    holds beside the tasks themselves. Each pass makes them again; `list()` keeps them."""

    def __init__(self, tasks: list[dict[str, Any]], earlier: Earlier):
        self._tasks = tasks
        self._earlier = earlier

    def __len__(self) -> int:
        return len(self._tasks)

    @overload
    def __getitem__(self, index: int) -> dict[str, Any]: ...

    @overload
    def __getitem__(self, index: slice) -> list[dict[str, Any]]: ...

    def __getitem__(self, index: int | slice) -> dict[str, Any] | list[dict[str, Any]]:
        if isinstance(index, slice):
            return [self._row(t) for t in self._tasks[index]]
        return self._row(self._tasks[index])

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return map(self._row, self._tasks)

    def _row(self, task: dict[str, Any]) -> dict[str, Any]:
        row = _task(task)
        if row["id"] in self._earlier:
            row["earlier"] = self._earlier[row["id"]]
        return row


def _earlier(target: Any, desired: DesiredState, tasks: list[dict[str, Any]]) -> Earlier:
    """The retried tasks' earlier attempts whose logs apply kept: number, node, startTime,
    endTime as far as apply saw them (the service keeps only the last)."""
    retried = [t["id"] for t in tasks if (t.get("executionInfo") or {}).get("retryCount")]
    kept = logs.kept_attempts(target, desired, retried) if retried else {}
    return {
        task_id: [{"attempt": n, **seen} for n, seen in sorted(attempts.items())]
        for task_id, attempts in kept.items()
    }


def _node(node: dict[str, Any]) -> dict[str, Any]:
    start = node.get("startTaskInfo") or {}
    start_task = {k: start.get(k) for k in ("startTime", "endTime", "result", "exitCode")}
    return {
        "id": node["id"],
        "state": node.get("state"),
        "dedicated": node.get("isDedicated", True),
        "allocationTime": node.get("allocationTime"),
        "startTask": start_task if start else None,
    }
