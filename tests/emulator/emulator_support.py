"""Test support: start the emulator as a real subprocess, SDK clients, polling helpers.

Everything talks to the emulator through the real azure-batch SDK over HTTP; nothing here
imports the server in-process.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from azure.batch import BatchClient
from azure.batch import models as bm
from azure.core.credentials import AzureNamedKeyCredential

from batchspec.emulator import DEV_ACCOUNT_KEY, DEV_ACCOUNT_NAME

REPO = Path(__file__).resolve().parents[2]
# Long enough that a test sees "resizing"/"deleting" before the change completes, even on a
# loaded machine; short enough to keep pool operations quick.
ALLOCATION_DELAY = "0.5"


@dataclass
class Server:
    """A running emulator subprocess."""

    proc: subprocess.Popen
    url: str
    data_dir: Path
    log_path: Path
    _log: object = field(repr=False, default=None)

    def client(self, **kwargs) -> BatchClient:
        """An SDK client with the well-known development credentials."""
        return make_client(self.url, **kwargs)

    def stop(self) -> None:
        """SIGTERM and wait (clean shutdown)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def kill9(self) -> None:
        """SIGKILL: no chance to clean up, like a crash."""
        self.proc.kill()
        self.proc.wait()


def make_client(url: str, **kwargs) -> BatchClient:
    """A BatchClient for `url`; fast retries so fault tests do not sleep for seconds."""
    kwargs.setdefault("retry_backoff_factor", 0.05)
    return BatchClient(
        endpoint=url,
        credential=AzureNamedKeyCredential(DEV_ACCOUNT_NAME, DEV_ACCOUNT_KEY),
        **kwargs,
    )


def start_server(data_dir: Path, *extra: str, port: int = 0) -> Server:
    """Start `python -m batchspec.emulator` and wait for its "listening on" line."""
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = data_dir.parent / f"{data_dir.name}-{uuid.uuid4().hex[:6]}.log"
    log = open(log_path, "wb")  # noqa: SIM115 - closed by the fixture's finaliser
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "batchspec.emulator",
            "--port",
            str(port),
            "--data-dir",
            str(data_dir),
            "--quiet",
            "--allocation-delay",
            ALLOCATION_DELAY,
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=log,
        cwd=REPO,
    )
    line = _read_line(proc, 20)
    prefix = "batchspec-emulator listening on "
    if not line.startswith(prefix):
        proc.kill()
        raise RuntimeError(f"emulator did not start: {line!r}; log: {log_path.read_text()}")
    return Server(proc, line[len(prefix) :].strip(), data_dir, log_path, log)


def _read_line(proc: subprocess.Popen, timeout: float) -> str:
    out: list[bytes] = []
    reader = threading.Thread(target=lambda: out.append(proc.stdout.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    return out[0].decode() if out else ""


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


def pool_options(pool_id: str, nodes: int = 1, slots: int = 1, **kwargs) -> bm.BatchPoolCreateOptions:
    """A minimal Ubuntu 24.04 pool."""
    return bm.BatchPoolCreateOptions(
        id=pool_id,
        vm_size="standard_d2s_v3",
        virtual_machine_configuration=UBUNTU,
        target_dedicated_nodes=nodes,
        task_slots_per_node=slots,
        **kwargs,
    )


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
