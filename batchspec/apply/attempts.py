"""The logs of a task's earlier attempts, kept while apply waits.

The service keeps a task's last attempt only, and each attempt's upload of its stdout.txt and
stderr.txt (the logs output file, `taskCompletion`) replaces the one before: an output file's
path takes no per-attempt part (OutputFileBlobContainerDestination.path), and the upload
happens "after the task process exits" (OutputFileUploadCondition), before the retry. So when
a task's `retryCount` has grown to k, the logs container holds attempt k's logs until attempt
k+1 ends: they are copied then to `<job>/<task>/attempt-<k>/` beside the last attempt's.

The kept stdout.txt carries what the wait saw of that attempt (`ATTEMPT_NODE`, `_START`,
`_END`), which the service forgets at the retry and the run report draws: its node and start as
the running task showed them at an earlier look, its end as its logs' Last-Modified.

Best effort, and said so where it shows (`logs --attempt`): an attempt that began and ended
between two looks, or while no apply waited, is not kept (nor drawn); a requeued attempt (its
node was preempted or went away) uploads nothing to keep.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from azure.core import MatchConditions
from azure.core.exceptions import HttpResponseError

from batchspec.live import batch as live_batch
from batchspec.model import ATTEMPT_END, ATTEMPT_NODE, ATTEMPT_START

if TYPE_CHECKING:
    from batchspec.apply.executor import Applier

NAMES = ("stdout.txt", "stderr.txt")
_EVERY = 1.0  # seconds between looks at least: each lists the job's retried tasks


class Attempts:
    """What the wait calls at each look; nothing for a spec whose tasks do not retry or whose
    logs are not kept."""

    def __init__(self, run: Applier):
        self._on = run.desired.logs is not None and any(t.max_task_retry_count for t in run.desired.tasks)
        self._seen: dict[str, int] = {}  # task id -> the retryCount whose logs were looked at
        # task id -> (retryCount, startTime, node) of the attempt last seen running
        self._running: dict[str, tuple[int, str | None, str | None]] = {}
        self._last = time.monotonic()  # the first look a second in: no attempt has ended before

    def look(self, run: Applier) -> None:
        if not self._on or time.monotonic() - self._last < _EVERY:
            return
        self._last = time.monotonic()
        try:
            fields = ["id", "state", "executionInfo", "nodeInfo"]
            where = "state eq 'running' or executionInfo/retryCount gt 0"
            listed = live_batch.read_tasks(run.t.batch, run.desired.job.id, fields, where=where)
        except HttpResponseError:  # the next look tries again
            return
        for task in listed:
            info = task.get("executionInfo") or {}
            count = info.get("retryCount") or 0
            if count > self._seen.get(task["id"], 0):
                self._seen[task["id"]] = count
                running = self._running.get(task["id"])
                seen = running[1:] if running is not None and running[0] == count - 1 else (None, None)
                keep(run, task["id"], count, info.get("lastRetryTime"), *seen)
            if task.get("state") == "running":
                node = (task.get("nodeInfo") or {}).get("nodeId")
                self._running[task["id"]] = (count, info.get("startTime"), node)


def keep(
    run: Applier,
    task_id: str,
    attempt: int,
    retried_at: str | None,
    started: str | None = None,
    node: str | None = None,
) -> None:
    """Copy the task's logs to attempt `attempt`'s folder, if they are still that attempt's:
    written before the retry began (Last-Modified has whole seconds; attempts are longer).
    `started` and `node`: where and when that attempt ran, if a look saw it running."""
    logs, job_id = run.desired.logs, run.desired.job.id
    assert logs is not None
    retried = datetime.fromisoformat(retried_at.replace("Z", "+00:00")) if retried_at else None
    for name in NAMES:
        source = run.t.blob.get_blob_client(logs.container, f"{logs.path(job_id, task_id)}/{name}")
        try:
            props = source.get_blob_properties()
            if retried is not None and props.last_modified > retried:
                continue  # the next attempt's already: this one's are gone
            unchanged = {"etag": props.etag, "match_condition": MatchConditions.IfNotModified}
            data = source.download_blob(**unchanged).readall()
            seen = {ATTEMPT_NODE: node, ATTEMPT_START: started, ATTEMPT_END: _iso(props.last_modified)}
            meta = {k: v for k, v in seen.items() if v} if name == NAMES[0] else None
            kept = f"{logs.attempt_path(job_id, task_id, attempt)}/{name}"
            run.t.blob.get_blob_client(logs.container, kept).upload_blob(data, overwrite=True, metadata=meta)
        except HttpResponseError:  # not uploaded, replaced meanwhile, or refused: not kept
            continue


def _iso(when: datetime) -> str:
    return when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
