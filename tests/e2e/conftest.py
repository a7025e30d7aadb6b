"""The local services, started once per session through `batchspec local up`, and a workspace
per test: a copy of the tutorial with its own spec name, so tests never share a resource."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import uuid

import pytest
from azure.batch import BatchClient
from azure.core.credentials import AzureNamedKeyCredential
from azure.storage.blob import BlobServiceClient

from e2e_support import Workspace
from helpers import ROOT


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def services(tmp_path_factory):
    """Azurite and the emulator on free ports, under a data folder of this session."""
    env = {
        **os.environ,
        "BATCHSPEC_HOME": str(tmp_path_factory.mktemp("bshome")),
        "BATCHSPEC_AZURITE_PORT": str(_free_port()),
        "BATCHSPEC_EMULATOR_PORT": str(_free_port()),
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
def workspace(tmp_path, services) -> Workspace:
    env, status = services
    shutil.copytree(ROOT / "data", tmp_path / "data")
    shutil.copytree(ROOT / "node", tmp_path / "node", ignore=shutil.ignore_patterns("__pycache__"))
    ws = Workspace(tmp_path, "t" + uuid.uuid4().hex[:10], env, status)
    ws.write_spec()
    return ws
