"""Execute a destroy plan: job, then pool, then containers, waiting for the service's deletions."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from azure.core.exceptions import ResourceNotFoundError

from batchspec import waiting
from batchspec.apply.common import start_delete
from batchspec.live import batch as live_batch
from batchspec.plan import Plan

TIMEOUT = 1800.0  # seconds; deleting a pool removes its nodes first, minutes on Azure


def run(
    target: Any,
    plan: Plan,
    step: Callable[[str], None],
    *,
    timeout: float = TIMEOUT,
    guard: Callable[[], None] = lambda: None,
) -> None:
    """`guard` is called before each deletion (the lock's check): it raises to stop."""
    deadline = waiting.Deadline(timeout, "destroy's limit of 30 min")
    poll = target.poll
    deleters = {
        "job": (target.batch.begin_delete_job, live_batch.read_job, ""),
        "pool": (
            target.batch.begin_delete_pool,
            live_batch.read_pool,
            " (the service removes its nodes first)",
        ),
    }
    for kind, (delete, read, aside) in deleters.items():  # jobs before the pools they run on
        for change in plan.of(kind):
            guard()
            step(f"deleting {kind} {change.id}{aside}")
            what = f"{kind} {change.id} to be deleted"
            poller = start_delete(delete, change.id, poll)
            if poller is not None:
                waiting.finish(poller, deadline, what)
            waiting.until(lambda r=read, i=change.id: r(target.batch, i) is None, deadline, poll, what)
    for change in plan.of("container"):
        guard()
        step(f"deleting container {change.id}")
        try:
            target.blob.delete_container(change.id)
        except ResourceNotFoundError:
            pass
