"""The azure target signed in with Microsoft Entra ID runs the tutorial end to end, here.

Nothing is given a key: the Batch emulator and Azurite (`--oauth basic`) serve HTTPS with a
local certificate, and azure-identity's DefaultAzureCredential, unmodified, takes its tokens
from a local managed-identity endpoint (tests/support/entra.py). So batchspec's token path runs
as it does on a real account: bearer tokens for Batch and Storage, and SAS URLs for the nodes
signed with user-delegation keys.
"""

from __future__ import annotations

import os
from urllib.parse import parse_qs, urlsplit

import pytest
from azure.batch import BatchClient
from azure.identity import ManagedIdentityCredential

from support import entra, services
from support.workspace import Workspace

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def entra_stack(tmp_path_factory):
    home = tmp_path_factory.mktemp("entra")
    cert, key = entra.tls_files(home / "tls")
    tokens = entra.TokenService(home / "tokens")
    trust = {"SSL_CERT_FILE": str(cert), "REQUESTS_CA_BUNDLE": str(cert)}
    azurite = services.azurite(home, "--oauth", "basic", "--cert", str(cert), "--key", str(key)).start()
    batch = services.emulator(
        home / "batch",
        "--cert",
        str(cert),
        "--key",
        str(key),
        "--token-key",
        str(tokens.public_key_file),
        env=trust,  # its node agent fetches resource files from Azurite over HTTPS
    ).start()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AZURE_", "BATCHSPEC_"))}
    env.update(trust)
    env.update(tokens.env())
    env.update(
        AZURE_BATCH_ENDPOINT=batch.url,
        AZURE_BATCH_ACCOUNT_NAME=services.DEV_ACCOUNT_NAME,
        AZURE_STORAGE_ACCOUNT_URL=f"{azurite.url}/{services.AZURITE_ACCOUNT}",
        BATCHSPEC_TARGET="azure",
        BATCHSPEC_HOME=str(home / "bshome"),  # `local up` must never be needed
        BATCHSPEC_AZURITE_PORT="1",
        BATCHSPEC_EMULATOR_PORT="1",
    )
    yield env, tokens, batch, cert
    batch.stop()
    azurite.stop()
    tokens.close()


def test_the_tutorial_runs_on_entra_id_tokens_alone(entra_stack, tmp_path, monkeypatch):
    env, tokens, batch, cert = entra_stack
    # More inputs and outputs than go through the SDK on threads: the small transfers' own
    # requests (apply/small_blobs.py) with user-delegation SAS, over HTTPS with the test's CA,
    # trusted as the SDK's requests trust it (REQUESTS_CA_BUNDLE, not OpenSSL's SSL_CERT_FILE).
    env = {k: v for k, v in env.items() if k != "SSL_CERT_FILE"}
    ws = Workspace.tutorial(tmp_path / "ws", "entra", env, inputs=12)
    r = ws.apply()
    assert r.returncode == 0, r.stdout + r.stderr
    ws.check_outputs()
    # Both services were reached with tokens for their own resource, from the credential chain.
    assert {"https://batch.core.windows.net/", "https://storage.azure.com"} <= set(tokens.resources)
    # The nodes were given user-delegation SAS (skoid: the signer's object id), each read-only
    # for one input blob; no account key was there to sign anything else.
    for name, value in tokens.env().items():
        monkeypatch.setenv(name, value)
    client = BatchClient(batch.url, ManagedIdentityCredential(), connection_verify=str(cert))
    tasks = list(client.list_tasks("entra-job"))
    assert len(tasks) == 12
    for task in tasks:
        (resource,) = task.resource_files
        sas = parse_qs(urlsplit(resource.http_url).query)
        assert sas["skoid"] == [tokens.object_id] and sas["sp"] == ["r"] and sas["sr"] == ["b"], sas
        for output in task.output_files:  # the task's outputs, and its logs
            upload = parse_qs(urlsplit(output.destination.container.container_url).query)
            assert upload["skoid"] == [tokens.object_id] and upload["sp"] == ["cw"], upload

    r = ws.run("plan", "spec.yaml", "--detailed-exitcode")
    assert r.returncode == 0, r.stdout + r.stderr  # converged, read back with tokens too
    r = ws.run("destroy", "spec.yaml", "--auto-approve")
    assert r.returncode == 0, r.stdout + r.stderr
