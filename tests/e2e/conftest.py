"""The local services, started once per session through `batchspec local up`, and a workspace
per test: a copy of the tutorial with its own spec name, so tests never share a resource."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from azure.batch import BatchClient
from azure.batch import models as bm
from azure.core.credentials import AzureNamedKeyCredential
from azure.storage.blob import BlobServiceClient

from support.services import free_port
from support.workspace import Workspace


@contextlib.contextmanager
def local_services(home: Path, *up_options: str):
    """`batchspec local up [OPTIONS]` on free ports under `home`: (env, status); down after."""
    env = {
        **os.environ,
        "BATCHSPEC_HOME": str(home),
        "BATCHSPEC_AZURITE_PORT": str(free_port()),
        "BATCHSPEC_EMULATOR_PORT": str(free_port()),
    }

    def run(*a):
        return subprocess.run(
            [sys.executable, "-m", "batchspec", "local", *a],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    up = run("up", *up_options)
    assert up.returncode == 0, up.stderr
    try:
        yield env, json.loads(run("status", "--json").stdout)
    finally:
        run("down")


@pytest.fixture(scope="session")
def services(tmp_path_factory):
    """Azurite and the emulator on free ports, under a data folder of this session."""
    with local_services(tmp_path_factory.mktemp("bshome")) as started:
        yield started


@pytest.fixture(scope="session")
def batch_client(services) -> BatchClient:
    batch = services[1]["batch"]
    credential = AzureNamedKeyCredential(batch["account_name"], batch["account_key"])
    return BatchClient(batch["endpoint"], credential)


@pytest.fixture(scope="session")
def blob_service(services) -> BlobServiceClient:
    return BlobServiceClient.from_connection_string(services[1]["storage"]["connection_string"])


@pytest.fixture
def local_target(services, monkeypatch):
    """`targets.connect("local")` in this process, on the session's services."""
    from batchspec.services import targets

    env, _ = services
    for var in ("BATCHSPEC_HOME", "BATCHSPEC_AZURITE_PORT", "BATCHSPEC_EMULATOR_PORT"):
        monkeypatch.setenv(var, env[var])
    t = targets.connect("local", parallelism=4)
    yield t
    t.close()


@pytest.fixture
def idle_job(batch_client) -> str:
    """A job on a pool without nodes: added tasks stay active, nothing runs."""
    pool_id, job_id = "i" + uuid.uuid4().hex[:10], "i" + uuid.uuid4().hex[:10]
    batch_client.create_pool(
        bm.BatchPoolCreateOptions(
            id=pool_id,
            vm_size="standard_d2s_v3",
            target_dedicated_nodes=0,
            virtual_machine_configuration=bm.VirtualMachineConfiguration(
                image_reference=bm.BatchVmImageReference(
                    publisher="canonical", offer="ubuntu-24_04-lts", sku="server"
                ),
                node_agent_sku_id="batch.node.ubuntu 24.04",
            ),
        )
    )
    batch_client.create_job(bm.BatchJobCreateOptions(id=job_id, pool_info=bm.BatchPoolInfo(pool_id=pool_id)))
    yield job_id
    batch_client.begin_delete_job(job_id, polling_interval=0.1).result()
    batch_client.begin_delete_pool(pool_id, polling_interval=0.1).result()


@pytest.fixture
def workspace(tmp_path, services) -> Workspace:
    env, status = services
    ws = Workspace.tutorial(tmp_path, "t" + uuid.uuid4().hex[:10], env, retries=0)
    ws.secrets = (status["batch"]["account_key"], status["storage"]["account_key"])
    return ws


# An account with little room: 2 dedicated cores (the tutorial's 2 nodes of standard_d2s_v3 need
# 4) and one active job or job schedule.
SMALL_ACCOUNT = {"dedicatedCoreQuota": 2, "activeJobAndJobScheduleQuota": 1}


@pytest.fixture(scope="module")
def small_account(tmp_path_factory):
    """The local services of an account with SMALL_ACCOUNT's quotas (`local up --quotas`)."""
    with local_services(tmp_path_factory.mktemp("small"), "--quotas", json.dumps(SMALL_ACCOUNT)) as started:
        yield started
