"""The azure target's clients, built without reaching Azure (nothing here sends a request):
which credential each client gets from which environment."""

from __future__ import annotations

from azure.core.credentials import AzureNamedKeyCredential

from batchspec.services import sdk, targets

ACCOUNT_URL = "https://acct.blob.core.windows.net"
BATCH = {
    "AZURE_BATCH_ENDPOINT": "https://acct.westeurope.batch.azure.com",
    "AZURE_BATCH_ACCOUNT_NAME": "acct",
}


def test_keys_from_the_environment_sign_both_clients_with_shared_key():
    env = {**BATCH, "AZURE_BATCH_ACCOUNT_KEY": "a2V5", "AZURE_STORAGE_ACCOUNT_URL": ACCOUNT_URL}
    env["AZURE_STORAGE_ACCOUNT_KEY"] = "c3RvcmFnZQ=="
    target = targets.connect("azure", env=env)
    try:
        assert isinstance(target.batch._config.credential, AzureNamedKeyCredential)
        assert target.blob.credential.account_key == "c3RvcmFnZQ=="  # the SAS issuer signs with it
    finally:
        target.close()


def test_without_a_storage_key_the_blob_client_uses_azure_identity():
    """DefaultAzureCredential, and no key for the SAS issuer: its SAS URLs (the nodes', and the
    small transfers') are signed with user-delegation keys."""
    target = targets.connect("azure", env={**BATCH, "AZURE_STORAGE_ACCOUNT_URL": ACCOUNT_URL})
    try:
        assert type(target.blob.credential).__name__ == "DefaultAzureCredential"
        assert sdk.storage_account_key(target.blob) is None
    finally:
        target.close()


def test_the_quotas_are_read_from_resource_manager_only_where_the_account_is_named_there():
    keys = {"AZURE_BATCH_ACCOUNT_KEY": "a2V5", "AZURE_STORAGE_ACCOUNT_KEY": "c3RvcmFnZQ=="}
    env = {**BATCH, **keys, "AZURE_STORAGE_ACCOUNT_URL": ACCOUNT_URL}
    without = targets.connect("azure", env=env)
    without.close()
    assert without.management is None
    assert "AZURE_SUBSCRIPTION_ID and AZURE_BATCH_RESOURCE_GROUP" in without.no_management
    named = {"AZURE_SUBSCRIPTION_ID": "0000-sub", "AZURE_BATCH_RESOURCE_GROUP": "rg"}
    target = targets.connect("azure", env={**env, **named})
    try:
        management = target.management
        assert (management.resource_group, management.account_name) == ("rg", "acct")
        # Resource Manager takes only Microsoft Entra ID tokens, whatever keys the data planes take.
        config = management.client._config
        assert (type(config.credential).__name__, config.subscription_id) == (
            "DefaultAzureCredential",
            "0000-sub",
        )
    finally:
        target.close()


def test_endpoints_without_a_scheme_get_https():
    # `az batch account show --query accountEndpoint` prints acct.westeurope.batch.azure.com.
    env = {
        "AZURE_BATCH_ENDPOINT": "acct.westeurope.batch.azure.com",
        "AZURE_BATCH_ACCOUNT_NAME": "acct",
        "AZURE_BATCH_ACCOUNT_KEY": "a2V5",
        "AZURE_STORAGE_ACCOUNT_URL": "acct.blob.core.windows.net",
        "AZURE_STORAGE_ACCOUNT_KEY": "c3RvcmFnZQ==",
    }
    target = targets.connect("azure", env=env)
    try:
        assert target.batch_endpoint == "https://acct.westeurope.batch.azure.com"
        assert target.storage_endpoint == "https://acct.blob.core.windows.net/"
    finally:
        target.close()


def _refused(url: str, code: str = "AuthorizationPermissionMismatch"):
    """What auth_hint reads of a refused request: its URL and error code (no request is sent)."""
    from types import SimpleNamespace

    return SimpleNamespace(response=SimpleNamespace(request=SimpleNamespace(url=url)), error_code=code)


def test_a_refused_request_gets_the_hint_for_its_service_and_credential():
    signed_in = targets.connect("azure", env={**BATCH, "AZURE_STORAGE_ACCOUNT_URL": ACCOUNT_URL})
    keyed = targets.connect(
        "azure",
        env={
            **BATCH,
            "AZURE_BATCH_ACCOUNT_KEY": "a2V5",
            "AZURE_STORAGE_ACCOUNT_URL": ACCOUNT_URL,
            "AZURE_STORAGE_ACCOUNT_KEY": "c3RvcmFnZQ==",
        },
    )
    try:
        batch = BATCH["AZURE_BATCH_ENDPOINT"] + "/pools?api-version=2025-06-01"
        blob = ACCOUNT_URL + "/input?restype=container"
        assert "Azure Batch Data Contributor" in targets.auth_hint(signed_in, _refused(batch))
        assert "Storage Blob Data Contributor" in targets.auth_hint(signed_in, _refused(blob))
        assert "user-subscription pool allocation mode" in targets.auth_hint(keyed, _refused(batch))
        assert "unset AZURE_BATCH_ACCOUNT_KEY" in targets.auth_hint(keyed, _refused(batch))
        no_keys = targets.auth_hint(keyed, _refused(blob, "KeyBasedAuthenticationNotPermitted"))
        assert "does not allow shared keys: unset AZURE_STORAGE_ACCOUNT_KEY" in no_keys
        assert "check AZURE_STORAGE_ACCOUNT_KEY" in targets.auth_hint(
            keyed, _refused(blob, "AuthenticationFailed")
        )
    finally:
        signed_in.close()
        keyed.close()
