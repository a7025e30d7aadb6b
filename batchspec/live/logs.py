"""A task's stdout.txt or stderr.txt: from its node while it runs (and while the node keeps it),
from the spec's logs container once it completed, so it outlives the node and the pool."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

from azure.core.exceptions import HttpResponseError, ResourceNotFoundError

from batchspec.errors import ApplyError, UsageError
from batchspec.live.batch import file_bytes
from batchspec.model import ATTEMPT_END, ATTEMPT_NODE, ATTEMPT_START, DesiredState

_FOLLOW_POLL = 1.0  # seconds between looks at a running task's file


def _node_bytes(target: Any, job_id: str, task_id: str, name: str, start: int) -> bytes | None:
    """The task's file on its node from byte `start`; None when the node no longer has it."""
    try:
        return file_bytes(
            lambda **kw: target.batch.download_task_file(job_id, task_id, name, **kw),
            lambda: target.batch.get_task_file_properties(job_id, task_id, name),
            start=start,
        )
    except HttpResponseError:  # not found, or the node is gone
        return None


def _stored_bytes(target: Any, desired: DesiredState, task_id: str, name: str) -> bytes | None:
    if desired.logs is None:
        return None
    blob = f"{desired.logs.path(desired.job.id, task_id)}/{name}"
    try:
        return target.blob.get_blob_client(desired.logs.container, blob).download_blob().readall()
    except ResourceNotFoundError:
        return None


def read(target: Any, desired: DesiredState, task_id: str, name: str, state: str | None = None) -> bytes:
    """The whole file: the stored copy of a completed task, else the node's. `state`: the
    task's, when the caller has just read it."""
    completed = (state or _state(target, desired, task_id)) == "completed"
    data = _stored_bytes(target, desired, task_id, name) if completed else None
    if data is None:
        data = _node_bytes(target, desired.job.id, task_id, name, 0)
    if data is None:
        where = "its node no longer has it"
        if desired.logs is None:
            where += ", and the spec keeps no logs (logs: false)"
        raise ApplyError(f"no {name} for task {task_id!r}: {where}")
    return data


def read_attempt(target: Any, desired: DesiredState, task_id: str, name: str, attempt: int) -> bytes:
    """Attempt `attempt`'s file (1 the first): the last attempt's as `read` gives it, an earlier
    one's from the copy apply kept while it waited (apply/attempts.py), if it kept one."""
    if desired.logs is None:
        raise ApplyError(f"no attempts of task {task_id!r} are kept: the spec keeps no logs (logs: false)")
    retries, state = _retries(target, desired, task_id)
    if retries is not None and attempt == retries + 1:
        return read(target, desired, task_id, name, state)
    if retries is not None and attempt > retries + 1:
        raise UsageError(f"task {task_id!r} has run {retries + 1} attempt(s), not {attempt}")
    blob = f"{desired.logs.attempt_path(desired.job.id, task_id, attempt)}/{name}"
    try:
        return target.blob.get_blob_client(desired.logs.container, blob).download_blob().readall()
    except ResourceNotFoundError:
        pass
    kept = _kept(target, desired, task_id)
    raise ApplyError(
        f"attempt {attempt} of task {task_id!r} was not kept ({name})",
        hint=f"kept: {', '.join(map(str, kept)) or 'none'} and the last attempt; an attempt that "
        "began and ended between two looks of apply's wait, or while no apply waited, is not kept, "
        "and a requeued attempt (its node was lost) uploads nothing",
    )


def _kept(target: Any, desired: DesiredState, task_id: str) -> list[int]:
    """The earlier attempts whose logs were kept."""
    return sorted(kept_attempts(target, desired, [task_id]).get(task_id, {}))


def kept_attempts(target: Any, desired: DesiredState, task_ids: list[str]) -> dict[str, dict[int, dict]]:
    """The tasks' earlier attempts whose logs apply kept (apply/attempts.py), by task and
    attempt, each with what apply saw of it: {"node", "startTime", "endTime"}, those it saw.
    One listing per task, or one of the whole job's logs for more than `_ONE_BY_ONE` tasks."""
    if desired.logs is None or not task_ids:
        return {}
    container = target.blob.get_container_client(desired.logs.container)
    job = desired.logs.path(desired.job.id, "")
    prefixes = [f"{job}{t}/attempt-" for t in task_ids] if len(task_ids) <= _ONE_BY_ONE else [job]
    wanted = set(task_ids)
    found: dict[str, dict[int, dict]] = {}
    try:
        for prefix in prefixes:
            for blob in container.list_blobs(name_starts_with=prefix, include=["metadata"]):
                task, _, rest = blob.name[len(job) :].partition("/attempt-")
                number, _, name = rest.partition("/")
                if task not in wanted or not number.isdigit():
                    continue
                seen = found.setdefault(task, {}).setdefault(int(number), {})
                if name == "stdout.txt":
                    meta = blob.metadata or {}
                    seen |= {k: meta[m] for k, m in _SEEN.items() if meta.get(m)}
    except ResourceNotFoundError:
        return {}
    return found


_ONE_BY_ONE = 50
_SEEN = {"node": ATTEMPT_NODE, "startTime": ATTEMPT_START, "endTime": ATTEMPT_END}


def _retries(target: Any, desired: DesiredState, task_id: str) -> tuple[int | None, str]:
    """The task's retryCount and state; None and "completed" when it is gone from the job (its
    stored logs remain)."""
    try:
        task = target.batch.get_task(desired.job.id, task_id, select=["id", "state", "executionInfo"])
    except ResourceNotFoundError:
        return None, _state(target, desired, task_id)  # a task the spec does not have: a usage error
    return (task.execution_info.retry_count if task.execution_info else 0), task.state


def follow(
    target: Any,
    desired: DesiredState,
    task_id: str,
    name: str,
    *,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[bytes]:
    """The file as it grows on the node while the task runs; once it completed, the rest."""
    offset = 0
    while True:
        completed = _state(target, desired, task_id) == "completed"
        chunk = _node_bytes(target, desired.job.id, task_id, name, offset)
        if chunk is None and completed and offset == 0:  # its node is gone: the stored copy
            yield read(target, desired, task_id, name, "completed")
            return
        if chunk:
            offset += len(chunk)
            yield chunk
        if completed:
            return
        sleep(_FOLLOW_POLL)


def _state(target: Any, desired: DesiredState, task_id: str) -> str:
    try:
        return target.batch.get_task(desired.job.id, task_id, select=["id", "state"]).state
    except ResourceNotFoundError:
        known = {t.id for t in desired.tasks}
        if task_id not in known:
            hint = "`batchspec logs SPEC` lists the failed tasks"
            raise UsageError(f"the spec has no task {task_id!r}", hint=hint) from None
        return "completed"  # gone from the job (destroyed): its stored logs remain


def start_task(target: Any, desired: DesiredState, node_id: str, name: str) -> bytes:
    """A node's start task stdout.txt or stderr.txt: from the node while it is there, else the
    copy apply keeps in the logs container."""
    pool_id = desired.pool.id
    try:
        return file_bytes(
            lambda **kw: target.batch.download_node_file(pool_id, node_id, f"startup/{name}", **kw),
            lambda: target.batch.get_node_file_properties(pool_id, node_id, f"startup/{name}"),
        )
    except HttpResponseError:  # the node (or its pool) is gone
        pass
    if desired.logs is not None:
        blob = f"{desired.logs.start_task_path(pool_id, node_id)}/{name}"
        try:
            return target.blob.get_blob_client(desired.logs.container, blob).download_blob().readall()
        except ResourceNotFoundError:
            pass
    raise ApplyError(
        f"no start task {name} for node {node_id!r} of pool {pool_id}: the node is gone and no copy was kept",
        hint="`batchspec status SPEC` lists the pool's nodes",
    )
