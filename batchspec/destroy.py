"""Execute a destroy plan: job, then pool, then containers, waiting for the service's deletions."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from azure.core.exceptions import ResourceNotFoundError

from batchspec.live import batch as live_batch
from batchspec.plan import Plan


def run(target: Any, plan: Plan, step: Callable[[str], None], *, timeout: float = 1800) -> None:
    deadline = time.monotonic() + timeout
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
            step(f"deleting {kind} {change.id}{aside}")
            _delete_and_wait(
                lambda d=delete, i=change.id: d(i, polling_interval=poll).result(),
                lambda r=read, i=change.id: r(target.batch, i),
                poll,
                deadline,
            )
    for change in plan.of("container"):
        step(f"deleting container {change.id}")
        try:
            target.blob.delete_container(change.id)
        except ResourceNotFoundError:
            pass


def _delete_and_wait(delete, read, poll: float, deadline: float) -> None:
    from batchspec.errors import ApplyError

    try:
        delete()
    except ResourceNotFoundError:
        return
    while read() is not None:
        if time.monotonic() > deadline:
            raise ApplyError("timed out waiting for the service to finish deleting")
        time.sleep(poll)
