"""Test support: start the emulator as a real subprocess, SDK clients, polling helpers.

Everything talks to the emulator through the real azure-batch SDK over HTTP; nothing here
imports the server in-process.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from azure.batch import BatchClient
from azure.batch import models as bm
from azure.core.credentials import AzureNamedKeyCredential

from batchspec.emulator import DEV_ACCOUNT_KEY, DEV_ACCOUNT_NAME
from support import services

# Long enough that a test sees "resizing"/"deleting" before the change completes, even on a
# loaded machine; short enough to keep pool operations quick.
ALLOCATION_DELAY = 0.5


class Server(services.Service):
    """A running emulator subprocess, with an SDK client of it."""

    def client(self, **kwargs) -> BatchClient:
        """An SDK client with the well-known development credentials."""
        return make_client(self.url, **kwargs)


def make_client(url: str, **kwargs) -> BatchClient:
    """A BatchClient for `url`; fast retries so fault tests do not sleep for seconds."""
    kwargs.setdefault("retry_backoff_factor", 0.05)
    return BatchClient(
        endpoint=url,
        credential=AzureNamedKeyCredential(DEV_ACCOUNT_NAME, DEV_ACCOUNT_KEY),
        **kwargs,
    )


def start_server(data_dir: Path, *extra: str, port: int = 0) -> Server:
    """Start `python -m batchspec.emulator` and wait until it listens."""
    launch = services.emulator(data_dir, *extra, port=port, allocation_delay=ALLOCATION_DELAY)
    return Server(launch.name, launch.argv, launch.log).start()


def wait_for(predicate: Callable[[], object], timeout: float = 30, interval: float = 0.05):
    """Poll `predicate` until it returns a truthy value; fail the test on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout}s")
        time.sleep(interval)


def unique(prefix: str) -> str:
    """A fresh id, so tests sharing a server never collide."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


UBUNTU = bm.VirtualMachineConfiguration(
    image_reference=bm.BatchVmImageReference(
        publisher="canonical", offer="ubuntu-24_04-lts", sku="server", version="latest"
    ),
    node_agent_sku_id="batch.node.ubuntu 24.04",
)


def new_job(client: BatchClient, pool_id: str, name: str, **options) -> str:
    """A new job (id from `name`) on the pool, with more BatchJobCreateOptions if given."""
    job_id = unique(name)
    client.create_job(
        bm.BatchJobCreateOptions(id=job_id, pool_info=bm.BatchPoolInfo(pool_id=pool_id), **options)
    )
    return job_id


def pool_options(pool_id: str, nodes: int | None = 1, slots: int = 1, **kwargs) -> bm.BatchPoolCreateOptions:
    """A minimal Ubuntu 24.04 pool (`nodes` None: no target, as an autoscale pool has)."""
    return bm.BatchPoolCreateOptions(
        id=pool_id,
        vm_size="standard_d2s_v3",
        virtual_machine_configuration=UBUNTU,
        target_dedicated_nodes=nodes,
        task_slots_per_node=slots,
        **kwargs,
    )


def ready_pool(client: BatchClient, name: str, nodes: int = 1, **options) -> str:
    """A new pool (id from `name`) whose `nodes` nodes are up, with more pool_options if given."""
    pool_id = unique(name)
    client.create_pool(pool_options(pool_id, nodes=nodes, **options))
    wait_pool_ready(client, pool_id, nodes)
    return pool_id


def wait_pool_ready(client: BatchClient, pool_id: str, nodes: int, timeout: float = 30) -> None:
    """Wait until the pool is steady with `nodes` idle or running nodes."""

    def ready():
        pool = client.get_pool(pool_id)
        if pool.allocation_state != "steady":
            return False
        states = [n.state for n in client.list_nodes(pool_id)]
        return len(states) == nodes and all(s in ("idle", "running") for s in states)

    wait_for(ready, timeout)


def wait_job_done(client: BatchClient, job_id: str, total: int, timeout: float = 60):
    """Wait until `total` tasks of the job are completed; returns the task counts."""

    def done():
        counts = client.get_job_task_counts(job_id)
        return counts if counts.task_counts.completed >= total else None

    return wait_for(done, timeout, interval=0.1)
