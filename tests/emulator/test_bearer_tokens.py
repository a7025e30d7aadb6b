"""Microsoft Entra ID: the emulator takes bearer tokens for the Batch resource over HTTPS, as the
service does, and refuses the rest with 401 AuthenticationFailed.

The unmodified SDK gets its tokens through azure-identity's ManagedIdentityCredential from a
local token service (tests/support/entra.py); the emulator checks their signature against that
service's public key (`--token-key`).
"""

from __future__ import annotations

import time

import pytest
import requests
from azure.batch import BatchClient
from azure.batch import models as bm
from azure.core.credentials import AccessToken
from azure.core.exceptions import ClientAuthenticationError
from azure.identity import ManagedIdentityCredential
from azure.mgmt.batch import BatchManagementClient

from batchspec.emulator import DEV_ACCOUNT_NAME
from emulator_support import Server, make_client, start_server, unique
from support import entra

API = "api-version=2025-06-01.21.0"


@pytest.fixture(scope="module")
def tls(tmp_path_factory):
    return entra.tls_files(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def tokens(tmp_path_factory):
    service = entra.TokenService(tmp_path_factory.mktemp("tokens"))
    yield service
    service.close()


@pytest.fixture(scope="module")
def https_server(tmp_path_factory, tls, tokens) -> Server:
    cert, key = tls
    data = tmp_path_factory.mktemp("entra") / "data"
    server = start_server(
        data, "--cert", str(cert), "--key", str(key), "--token-key", str(tokens.public_key_file)
    )
    yield server
    server.stop()


def _get_pools(url: str, token: str, verify) -> requests.Response:
    return requests.get(
        f"{url}/pools?{API}", headers={"Authorization": f"Bearer {token}"}, verify=verify, timeout=30
    )


def test_the_sdk_signs_in_with_a_managed_identity_token_over_https(https_server, tls, tokens, monkeypatch):
    for name, value in tokens.env().items():
        monkeypatch.setenv(name, value)
    assert https_server.url.startswith("https://")
    client = BatchClient(https_server.url, ManagedIdentityCredential(), connection_verify=str(tls[0]))
    job_id = unique("entra")
    client.create_job(bm.BatchJobCreateOptions(id=job_id, pool_info=bm.BatchPoolInfo(pool_id="none")))
    assert client.get_job(job_id).id == job_id
    # azure-batch asks for the Batch resource's scope; the token service saw its resource.
    assert "https://batch.core.windows.net/" in tokens.resources


@pytest.mark.parametrize(
    "case",
    ["storage audience", "expired", "forged signature", "foreign issuer", "not a token"],
)
def test_a_token_the_service_would_not_take_is_refused_with_401(https_server, tls, tokens, case):
    batch = "https://batch.core.windows.net/"
    token = {
        "storage audience": lambda: tokens.mint("https://storage.azure.com"),
        "expired": lambda: tokens.mint(batch, expires=int(time.time()) - 3600),
        "forged signature": lambda: tokens.mint(batch, key=tokens.other_key()),
        "foreign issuer": lambda: tokens.mint(batch, issuer="https://accounts.example.com/"),
        "not a token": lambda: "abc.def",
    }[case]()
    answer = _get_pools(https_server.url, token, str(tls[0]))
    assert answer.status_code == 401, answer.text
    assert answer.json()["code"] == "AuthenticationFailed"
    assert answer.headers["WWW-Authenticate"].startswith("Bearer ")


def test_a_valid_token_is_taken_and_the_shared_key_still_works(https_server, tls, tokens):
    answer = _get_pools(https_server.url, tokens.mint("https://batch.core.windows.net/"), str(tls[0]))
    assert answer.status_code == 200, answer.text
    # The service takes both kinds of credential at once (unless shared keys are turned off).
    keyed = make_client(https_server.url, connection_verify=str(tls[0]))
    assert isinstance(list(keyed.list_pools()), list)


def test_a_bearer_token_over_plain_http_is_refused(server, tokens):
    # The service speaks only HTTPS; a token sent in the clear is refused, as Azurite does.
    answer = _get_pools(server.url, tokens.mint("https://batch.core.windows.net/"), True)
    assert answer.status_code == 401
    assert "HTTPS" in answer.json()["message"]["value"]


def test_the_sdk_reports_a_refused_token_as_an_authentication_error(https_server, tls, tokens):
    class Wrong:
        def get_token(self, *scopes, **kwargs):
            return AccessToken(tokens.mint("https://storage.azure.com"), int(time.time()) + 3600)

    client = BatchClient(https_server.url, Wrong(), connection_verify=str(tls[0]))
    with pytest.raises(ClientAuthenticationError):
        client.get_job("anything")


def test_the_management_sdk_signs_in_to_the_resource_manager_stand_in_with_its_own_token(
    https_server, tls, tokens, monkeypatch
):
    for name, value in tokens.env().items():
        monkeypatch.setenv(name, value)
    client = BatchManagementClient(
        ManagedIdentityCredential(), "sub", base_url=https_server.url, connection_verify=str(tls[0])
    )
    assert client.batch_account.get("rg", DEV_ACCOUNT_NAME).pool_quota
    assert any(r.startswith("https://management.azure.com") for r in tokens.resources)
    # A token for Batch is not one for Resource Manager: refused in Resource Manager's shape.
    path = f"/subscriptions/sub/resourceGroups/rg/providers/Microsoft.Batch/batchAccounts/{DEV_ACCOUNT_NAME}"
    answer = requests.get(
        f"{https_server.url}{path}?api-version=2025-06-01",
        headers={"Authorization": f"Bearer {tokens.mint('https://batch.core.windows.net/')}"},
        verify=str(tls[0]),
        timeout=30,
    )
    assert answer.status_code == 401 and answer.json()["error"]["code"] == "AuthenticationFailed"
