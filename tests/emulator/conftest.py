"""Shared fixtures: the emulator and Azurite as real subprocesses, SDK clients.

Everything talks to the emulator through the real azure-batch SDK over HTTP; nothing here
imports the server in-process.
"""

from __future__ import annotations

import pytest
from azure.batch import BatchClient
from azure.batch import models as bm

from emulator_support import (
    Server,
    pool_options,
    start_server,
    unique,
    wait_pool_ready,
)
from support import services


@pytest.fixture(scope="session")
def server(tmp_path_factory) -> Server:
    """One emulator shared by the session (tests use unique ids)."""
    srv = start_server(tmp_path_factory.mktemp("emulator") / "data")
    yield srv
    srv.stop()
    # Every failure the tests provoke is an expected one: the server must have answered them
    # all with Batch errors, never by crashing a handler or the scheduler.
    log = srv.log.read_text()
    assert "Traceback" not in log, log[log.index("Traceback") - 200 :][:3000]
    assert srv.proc.returncode == 0


@pytest.fixture(scope="session")
def client(server: Server) -> BatchClient:
    """An SDK client of the shared emulator."""
    return server.client()


@pytest.fixture(scope="session")
def shared_pool(client: BatchClient) -> str:
    """3 nodes x 2 slots whose start task writes a marker into the node's shared dir."""
    pool_id = unique("shared")
    client.create_pool(
        pool_options(
            pool_id,
            nodes=3,
            slots=2,
            start_task=bm.BatchStartTask(
                command_line="/bin/sh -c 'echo prepared > $AZ_BATCH_NODE_SHARED_DIR/marker.txt'",
                wait_for_success=True,
            ),
        )
    )
    wait_pool_ready(client, pool_id, 3)
    return pool_id


@pytest.fixture
def job(client: BatchClient, shared_pool: str) -> str:
    """A fresh job on the shared pool."""
    job_id = unique("job")
    client.create_job(bm.BatchJobCreateOptions(id=job_id, pool_info=bm.BatchPoolInfo(pool_id=shared_pool)))
    return job_id


@pytest.fixture(scope="session")
def azurite(tmp_path_factory) -> str:
    """Azurite's blob endpoint (account devstoreaccount1)."""
    service = services.azurite(tmp_path_factory.mktemp("azurite")).start()
    yield f"{service.url}/{services.AZURITE_ACCOUNT}"
    service.stop()


@pytest.fixture(scope="session")
def blob_service(azurite: str):
    """A BlobServiceClient on Azurite's development account."""
    from azure.storage.blob import BlobServiceClient

    return BlobServiceClient(
        azurite, credential={"account_name": services.AZURITE_ACCOUNT, "account_key": services.AZURITE_KEY}
    )
