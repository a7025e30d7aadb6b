"""Shared fixtures: the emulator and Azurite as real subprocesses, SDK clients.

Everything talks to the emulator through the real azure-batch SDK over HTTP; nothing here
imports the server in-process.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from azure.batch import BatchClient
from azure.batch import models as bm
from azure.storage.blob import (
    BlobSasPermissions,
    ContainerSasPermissions,
    generate_blob_sas,
    generate_container_sas,
)

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


@pytest.fixture
def container(blob_service):
    """A fresh container and a helper to SAS-sign it or its blobs."""
    name = unique("c")
    client = blob_service.create_container(name)
    expiry = datetime.now(timezone.utc) + timedelta(hours=1)

    class C:
        url = client.url
        blobs = client

        @staticmethod
        def sas(permission: str = "racwl") -> str:
            token = generate_container_sas(
                services.AZURITE_ACCOUNT,
                name,
                account_key=services.AZURITE_KEY,
                permission=ContainerSasPermissions.from_string(permission),
                expiry=expiry,
            )
            return f"{client.url}?{token}"

        @staticmethod
        def blob_sas(blob: str) -> str:
            token = generate_blob_sas(
                services.AZURITE_ACCOUNT,
                name,
                blob,
                account_key=services.AZURITE_KEY,
                permission=BlobSasPermissions(read=True),
                expiry=expiry,
            )
            return f"{client.url}/{blob}?{token}"

    return C
