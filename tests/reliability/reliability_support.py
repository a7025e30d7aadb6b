"""Real local services as subprocesses (Azurite, the Batch emulator, the fault proxy), and the
environment that points the real `batchspec` CLI at them with `--target azure`."""

from __future__ import annotations

import os
import re
import sys
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from azure.batch import BatchClient
from azure.core.credentials import AzureNamedKeyCredential
from azure.storage.blob import BlobServiceClient

from batchspec.emulator import DEV_ACCOUNT_KEY, DEV_ACCOUNT_NAME
from batchspec.local import AZURITE_ACCOUNT, AZURITE_KEY  # noqa: F401 - the suite reads both
from support import services
from support.services import Service, azurite, connection_string, free_port  # noqa: F401 - used by the suite
from support.workspace import Workspace, slow  # noqa: F401 - used by the suite


def emulator(
    data_dir: Path, *, port: int = 0, rate_503: float = 0, drop: float = 0, seed: int | None = None
) -> Service:
    if not (rate_503 or drop):
        return services.emulator(data_dir, port=port)
    # The faulty one logs requests: the tests count its faults.
    faults = ["--fault-503-rate", str(rate_503), "--fault-drop-rate", str(drop), "--seed", str(seed)]
    return services.emulator(data_dir, *faults, port=port, quiet=False)


def faultproxy(
    upstream: str,
    log: Path,
    *,
    rate_503: float,
    drop: float,
    seed: int,
    methods: str = "",
    container_delete_seconds: float = 0,
) -> Service:
    argv = [
        sys.executable,
        "-m",
        "batchspec.emulator.faultproxy",
        "--listen-port",
        "0",
        "--upstream",
        upstream,
    ]
    argv += ["--503-rate", str(rate_503), "--drop-rate", str(drop), "--seed", str(seed)]
    argv += ["--methods", methods] if methods else []
    argv += ["--container-delete-seconds", str(container_delete_seconds)] if container_delete_seconds else []
    return Service("faultproxy", argv, log)


def proxy_stats(proxy: Service) -> Counter:
    """Requests the proxy saw and the faults it injected, so far."""
    import json
    import urllib.request

    with urllib.request.urlopen(proxy.url + "/.faultproxy/stats", timeout=10) as r:
        return Counter(json.load(r))


def emulator_statuses(emulator: Service) -> Counter:
    """Status codes in the emulator's access log (a dropped connection is logged as a 503)."""
    found = (re.search(r" (\d{3}) [\d.]+ms$", line.rstrip()) for line in list(emulator.stderr_lines))
    return Counter(m.group(1) for m in found if m)


def azure_env(batch_url: str, blob_url: str, home: Path) -> dict[str, str]:
    """The environment that points `--target azure` at local services."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AZURE_", "BATCHSPEC_"))}
    env.update(
        AZURE_BATCH_ENDPOINT=batch_url,
        AZURE_BATCH_ACCOUNT_NAME=DEV_ACCOUNT_NAME,
        AZURE_BATCH_ACCOUNT_KEY=DEV_ACCOUNT_KEY,
        AZURE_STORAGE_CONNECTION_STRING=connection_string(blob_url),
        BATCHSPEC_TARGET="azure",
        BATCHSPEC_HOME=str(home),  # `local up` must never be needed: fail loudly if it were
        BATCHSPEC_AZURITE_PORT="1",
        BATCHSPEC_EMULATOR_PORT="1",
    )
    return env


FAULT_503, FAULT_DROP = 0.10, 0.05


@dataclass
class Stack:
    home: Path
    batch: Service
    blob_url: str  # what batchspec is given: Azurite, or the fault proxy in front of it
    azurite: Service
    proxy: Service | None = None

    @property
    def env(self) -> dict[str, str]:
        return azure_env(self.batch.url, self.blob_url, self.home)

    def batch_client(self) -> BatchClient:
        return BatchClient(self.batch.url, AzureNamedKeyCredential(DEV_ACCOUNT_NAME, DEV_ACCOUNT_KEY))

    def blob_service(self) -> BlobServiceClient:
        """Straight to Azurite, never through the proxy: the tests' own reads see no fault."""
        return BlobServiceClient.from_connection_string(connection_string(self.azurite.url))


def new_name() -> str:
    return "r" + uuid.uuid4().hex[:10]


SECRETS = (DEV_ACCOUNT_KEY, AZURITE_KEY)


def owned(ws: Workspace, stack) -> dict[str, list[str]]:
    """What the services hold that carries the workspace's owner tag (or its names)."""
    blob = stack.blob_service()
    batch = stack.batch_client()
    containers = [
        c.name
        for c in blob.list_containers(include_metadata=True)
        if c.name.startswith(ws.name) or (c.metadata or {}).get("batchspec_owner") == ws.name
    ]

    def mine(resource) -> bool:
        tags = {m.name: m.value for m in resource.metadata or []}
        return resource.id.startswith(ws.name) or tags.get("batchspec-owner") == ws.name

    return {
        "containers": containers,
        "pools": [p.id for p in batch.list_pools() if mine(p)],
        "jobs": [j.id for j in batch.list_jobs() if mine(j)],
    }


def assert_nothing_owned(ws: Workspace, stack) -> None:
    assert owned(ws, stack) == {"containers": [], "pools": [], "jobs": []}
    lock = stack.blob_service().get_blob_client("batchspec-locks", f"{ws.name}.lock")
    assert lock.get_blob_properties().lease.state != "leased"  # the empty lock blob stays, free
