"""The local services, started once per session through `batchspec local up`, and a workspace
per test: a copy of the tutorial with its own spec name, so tests never share a resource."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

import pytest
from azure.batch import BatchClient
from azure.batch import models as bm
from azure.core.credentials import AzureNamedKeyCredential
from azure.storage.blob import BlobServiceClient

from support.services import free_port
from support.workspace import Workspace


@pytest.fixture(scope="session")
def services(tmp_path_factory):
    """Azurite and the emulator on free ports, under a data folder of this session."""
    env = {
        **os.environ,
        "BATCHSPEC_HOME": str(tmp_path_factory.mktemp("bshome")),
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

    up = run("up")
    assert up.returncode == 0, up.stderr
    status = json.loads(run("status", "--json").stdout)
    yield env, status
    run("down")


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
