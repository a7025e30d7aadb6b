"""Where a spec runs: endpoints, credentials and clients for `local` and `azure`.

Clients are built once here and passed to everything else. Secrets come from the local services'
well-known development keys or from the environment; they are never printed or written down.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import requests
from azure.batch import BatchClient
from azure.core.credentials import AzureNamedKeyCredential, TokenCredential
from azure.core.pipeline.policies import RetryPolicy
from azure.core.pipeline.transport import RequestsTransport
from azure.storage.blob import (
    BlobServiceClient,
    LinearRetry,
)

from batchspec.errors import TargetError
from batchspec.services import sdk
from batchspec.services.sas import SasIssuer

TARGETS = ("local", "azure")

# Transient faults (5xx, 429, dropped connections) are retried by azure-core's policy, with
# backoff; enough attempts to ride out a busy or flaky service without hand-written loops.
_RETRY = {
    "retry_total": 12,
    "retry_connect": 4,  # nothing listening: fail within seconds, not a minute
    "retry_read": 12,
    "retry_status": 12,
    "retry_backoff_factor": 0.2,
    "retry_backoff_max": 8,
}


class _BatchRetry(RetryPolicy):
    """azure-core retries a POST or PATCH whose connection dropped without an answer only if
    told to; by default such an error ends the call (and the apply). Batch creates carry the
    caller's id, so a repeated one is at worst answered "exists", which apply checks against
    its own owner tag and fingerprint."""

    _ALL_METHODS = frozenset({"HEAD", "GET", "PUT", "DELETE", "OPTIONS", "TRACE", "POST", "PATCH"})

    def configure_retries(self, options):
        options.setdefault("retry_on_methods", self._ALL_METHODS)
        return super().configure_retries(options)


# Linear: storage's exponential policy waits 15 s, then grows past minutes. Small transfers
# retry on the same schedule (apply/small_blobs.py).
STORAGE_RETRY = {"backoff": 0.8, "random_jitter_range": 0.4, "retry_total": 10}

_READ_SIZE = 256 * 1024  # azure-storage-blob's DATA_BLOCK_SIZE


def _transport(pool_size: int, *, trust_env: bool = True) -> RequestsTransport:
    session = requests.Session()
    # With trust_env, requests looks for ~/.netrc and reads the proxy variables on every request
    # (a fifth of the client's CPU time per small blob transfer). The local services are on
    # the loopback interface, where neither a proxy nor netrc credentials apply (netrc would
    # even replace the SharedKey Authorization header), so the local target turns it off.
    session.trust_env = trust_env
    adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=pool_size)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    # A transport passed in keeps its own read size (azure-core's default is 4 KiB), not the
    # 256 KiB the storage SDK gives the transports it makes: without this, downloads are read
    # in 4 KiB pieces, 8,192 Python iterations per 32 MiB blob.
    return RequestsTransport(session=session, session_owner=True, connection_data_block_size=_READ_SIZE)


# The local target's account as its management plane names it: the emulator's stand-in for
# Azure Resource Manager answers for any subscription and resource group.
LOCAL_SUBSCRIPTION = "00000000-0000-0000-0000-000000000000"
LOCAL_RESOURCE_GROUP = "batchspec-local"
# Where the azure target finds the account in Azure Resource Manager, to read its quotas.
MANAGEMENT_ENV = ("AZURE_SUBSCRIPTION_ID", "AZURE_BATCH_RESOURCE_GROUP")


@dataclass
class Management:
    """The account in the management plane (Azure Resource Manager, or the emulator's stand-in),
    where its quotas are read. The client is made on first use: only a plan that may add to
    what the account uses reads them, and importing azure-mgmt-batch takes some 50 ms."""

    resource_group: str
    account_name: str
    build: Callable[[], Any]
    _client: Any = None

    @property
    def client(self) -> Any:
        """An azure.mgmt.batch.BatchManagementClient."""
        if self._client is None:
            self._client = self.build()
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()


@dataclass
class Target:
    """The clients of one target. `describe()` is safe to print: it holds no secret."""

    name: str
    batch: BatchClient
    blob: BlobServiceClient
    sas: SasIssuer
    batch_endpoint: str
    storage_endpoint: str
    poll: float = 5.0  # seconds between polls of long operations; the local services are quick
    batch_auth: str = "key"  # "key" (shared key) or "entra" (a token from azure-identity)
    storage_auth: str = "key"
    management: Management | None = None
    no_management: str = ""  # why there is none: what to set to have it
    # Whether the proxy variables of the environment apply (not to the local services), and the
    # extra policies every request is shown to: small transfers bypass the SDKs' pipelines
    # (apply/small_blobs.py) and honour both themselves.
    trust_env: bool = True
    policies: list = field(default_factory=list)

    def describe(self) -> str:
        return f"{self.name} (batch {self.batch_endpoint}, storage {self.storage_endpoint})"

    def close(self) -> None:
        self.batch.close()
        self.blob.close()
        if self.management is not None:
            self.management.close()


def connect(
    name: str,
    *,
    parallelism: int = 16,
    sas_lifetime: timedelta = timedelta(hours=2),
    env: dict[str, str] | None = None,
    policies: list | None = None,
) -> Target:
    """Build the clients of target `name` ("local" starts the local services if needed).

    `policies` are azure-core per-retry policies added to both clients (benchmarks count the
    HTTP requests with one).
    """
    extra = {"policies": list(policies or [])}
    if name == "local":
        from batchspec import local

        status = local.ensure_up()
        batch = status.batch
        storage = status.storage
        key = AzureNamedKeyCredential(batch["account_name"], batch["account_key"])
        target = _build(
            name,
            batch["endpoint"],
            key,
            storage["connection_string"],
            None,
            None,
            parallelism,
            sas_lifetime,
            extra,
        )
        target.management = _management(
            LOCAL_SUBSCRIPTION, LOCAL_RESOURCE_GROUP, batch["account_name"], key, batch["endpoint"], extra
        )
        return target
    if name == "azure":
        return _azure(os.environ if env is None else env, parallelism, sas_lifetime, extra)
    raise TargetError(f"unknown target {name!r}; choose one of {', '.join(TARGETS)}")


def _with_scheme(url: str | None) -> str | None:
    """`az batch account show` prints accountEndpoint without a scheme; the services speak https."""
    return f"https://{url}" if url and "://" not in url else url


def _azure(env, parallelism: int, sas_lifetime: timedelta, extra: dict) -> Target:
    endpoint = _with_scheme(env.get("AZURE_BATCH_ENDPOINT"))
    account = env.get("AZURE_BATCH_ACCOUNT_NAME")
    missing = [
        v
        for v, value in (("AZURE_BATCH_ENDPOINT", endpoint), ("AZURE_BATCH_ACCOUNT_NAME", account))
        if not value
    ]
    conn = env.get("AZURE_STORAGE_CONNECTION_STRING")
    storage_url = _with_scheme(env.get("AZURE_STORAGE_ACCOUNT_URL"))
    if not conn and not storage_url:
        missing.append("AZURE_STORAGE_ACCOUNT_URL (or AZURE_STORAGE_CONNECTION_STRING)")
    if missing:
        raise TargetError(
            "the azure target needs " + ", ".join(missing) + " in the environment",
            hint="the account keys may come from AZURE_BATCH_ACCOUNT_KEY and "
            "AZURE_STORAGE_ACCOUNT_KEY, else from azure-identity's "
            "DefaultAzureCredential (az login, managed identity, ...)",
        )
    key = env.get("AZURE_BATCH_ACCOUNT_KEY")
    token_credential = None
    if not key or not (conn or env.get("AZURE_STORAGE_ACCOUNT_KEY")):
        token_credential = _default_credential()
    batch_credential = AzureNamedKeyCredential(account, key) if key else token_credential
    target = _build(
        "azure",
        endpoint,
        batch_credential,
        conn,
        storage_url,
        env.get("AZURE_STORAGE_ACCOUNT_KEY") or token_credential,
        parallelism,
        sas_lifetime,
        extra,
    )
    target.batch_auth = "key" if key else "entra"
    target.storage_auth = "key" if sdk.storage_account_key(target.blob) else "entra"
    subscription, group = (env.get(v) for v in MANAGEMENT_ENV)
    if subscription and group:
        # Resource Manager takes only Microsoft Entra ID tokens, whatever the account's keys.
        credential = token_credential or _default_credential()
        target.management = _management(subscription, group, account, credential, None, extra)
    else:
        target.no_management = f"set {' and '.join(MANAGEMENT_ENV)} to have them checked (docs/azure.md)"
    return target


def _default_credential() -> TokenCredential:
    try:
        from azure.identity import DefaultAzureCredential

        return DefaultAzureCredential()
    except Exception as exc:  # noqa: BLE001 - any failure here means "no credential"
        raise TargetError(
            f"no credential: set AZURE_BATCH_ACCOUNT_KEY / "
            f"AZURE_STORAGE_ACCOUNT_KEY or configure azure-identity ({exc})"
        ) from None


def _management(subscription, group, account, credential, base_url, extra) -> Management:
    """The account's management-plane client, made on first use: Azure Resource Manager with a
    token, or (`base_url`) the local emulator's stand-in for it, which takes the account's shared
    key as the Batch client signs it."""

    def build() -> Any:
        from azure.mgmt.batch import BatchManagementClient

        options: dict[str, Any] = {
            "retry_policy": RetryPolicy(**_RETRY),
            "per_retry_policies": extra.get("policies") or [],
        }
        if base_url:
            # The key credential is never asked for a token: the policy given signs instead.
            options["authentication_policy"] = sdk.batch_shared_key_policy(credential)
            options["transport"] = _transport(4, trust_env=False)
        return BatchManagementClient(credential, subscription, base_url=base_url, **options)

    return Management(group, account, build)


def _build(
    name,
    batch_endpoint,
    batch_credential,
    connection_string,
    storage_url,
    storage_credential,
    parallelism,
    sas_lifetime,
    extra,
) -> Target:
    pool_size = max(8, parallelism * 2)
    policies = extra.get("policies") or []
    trust_env = name != "local"
    batch = BatchClient(
        batch_endpoint,
        batch_credential,
        transport=_transport(pool_size, trust_env=trust_env),
        retry_policy=_BatchRetry(**_RETRY),
        per_retry_policies=policies,
    )
    # Storage has its own retry policy; its default first backoff (15 s) is far too slow.
    storage_options = {
        "transport": _transport(pool_size, trust_env=trust_env),
        "retry_policy": LinearRetry(**STORAGE_RETRY),
        # storage clients take no per_retry_policies; these run after their retry policy too
        **sdk.storage_policies(policies),
    }
    if connection_string:
        blob = BlobServiceClient.from_connection_string(connection_string, **storage_options)
    else:
        blob = BlobServiceClient(storage_url, credential=storage_credential, **storage_options)

    account_key = sdk.storage_account_key(blob)
    sas = SasIssuer(blob, blob.account_name, account_key, sas_lifetime)
    return Target(
        name=name,
        batch=batch,
        blob=blob,
        sas=sas,
        trust_env=trust_env,
        policies=policies,
        batch_endpoint=batch_endpoint,
        storage_endpoint=blob.url.split("?")[0],
        # Services on loopback are emulators (the local target's, or ones a test points the
        # azure target at): they answer at once, so poll as often as the local target does.
        poll=0.25 if name == "local" or _loopback(batch_endpoint) else 5.0,
    )


def _loopback(endpoint: str) -> bool:
    from urllib.parse import urlsplit

    return (urlsplit(endpoint).hostname or "") in ("127.0.0.1", "localhost", "::1")


def auth_hint(target: Target | None, exc: Exception) -> str | None:
    """What to do about a refused request (401/403), for the service and credential that failed."""
    response = getattr(exc, "response", None)
    url = str(getattr(getattr(response, "request", None), "url", "") or "")
    if target is None or not url:
        return None
    code = str(getattr(getattr(exc, "error_code", None), "value", getattr(exc, "error_code", "")) or "")
    if url.startswith(target.storage_endpoint.rstrip("/")):
        if target.storage_auth == "key":
            if code == "KeyBasedAuthenticationNotPermitted":
                return (
                    "the storage account does not allow shared keys: unset AZURE_STORAGE_ACCOUNT_KEY and "
                    "AZURE_STORAGE_CONNECTION_STRING to sign in with Microsoft Entra ID (the identity "
                    "needs Storage Blob Data Contributor on the account)"
                )
            return (
                "the storage account refused its key: check AZURE_STORAGE_ACCOUNT_KEY or the "
                "connection string"
            )
        return (
            "the signed-in identity needs the role Storage Blob Data Contributor on the storage "
            "account (it also allows the user-delegation keys that sign batchspec's SAS); a new "
            "role assignment takes minutes to apply"
        )
    if target.name == "local":
        return "the local services refused their development key: `batchspec local down`, then try again"
    if target.batch_auth == "key":
        return (
            "the Batch account refused its shared key: check AZURE_BATCH_ACCOUNT_NAME and "
            "AZURE_BATCH_ACCOUNT_KEY. An account in user-subscription pool allocation mode, or "
            "with shared-key authentication disabled, accepts only Microsoft Entra ID: unset "
            "AZURE_BATCH_ACCOUNT_KEY to sign in through azure-identity (az login, a managed "
            "identity, environment credentials)"
        )
    return (
        "the signed-in identity needs a data-plane role on the Batch account, such as Azure Batch "
        "Data Contributor; `az account show` says who is signed in"
    )
