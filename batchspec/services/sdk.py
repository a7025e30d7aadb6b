"""Every use of the Azure SDKs' private internals, in one place.

Each one buys speed or a feature the public API lacks, and each has a guard test
(tests/test_sdk_internals.py) that fails with a clear message when an SDK release changes it.
"""

from __future__ import annotations

import sys
from typing import Any


def batch_api_version(client: Any) -> str:
    """The api-version the Batch client itself sends (raw requests must send the same)."""
    return client._config.api_version


def storage_send(container_client: Any, request: Any, **kwargs: Any) -> Any:
    """Send a raw request through a container client's pipeline (its authentication, retries and
    policies): listing blobs as raw XML, or small blobs as one GET or PUT, skips the SDK's
    per-item models, most of the time a 10,000-blob listing or transfer costs."""
    return container_client._client._send_request(request, **kwargs)


async def storage_send_async(container_client: Any, request: Any, **kwargs: Any) -> Any:
    """The asyncio twin of `storage_send`."""
    return await container_client._client._send_request(request, **kwargs)


def storage_policies(policies: list) -> dict[str, Any]:
    """Client options that add per-request policies to a storage client: the storage SDK takes no
    `per_retry_policies`, only this private option (benchmarks count requests with it)."""
    return {"_additional_pipeline_policies": policies}


def storage_account_key(service: Any) -> str | None:
    """The account key a storage client signs with, or None for a token credential."""
    return getattr(getattr(service, "credential", None), "account_key", None)


def batch_shared_key_policy(credential: Any) -> Any:
    """The Batch SDK's SharedKey signing policy, for another client's pipeline: the local
    emulator's stand-in for Azure Resource Manager takes the account's key as Batch does, and
    azure-mgmt-batch has no key credential of its own (Resource Manager takes only tokens)."""
    from azure.batch._patch import BatchSharedKeyAuthPolicy

    return BatchSharedKeyAuthPolicy(credential)


def import_storage_without_aiohttp() -> None:
    """Import azure-storage-blob's sync client without aiohttp and yarl.

    Its signing module imports azure-core's AioHttpTransport (with aiohttp) and yarl's URL only
    to recognise requests sent by an async client when it signs them: ~0.15 s,
    much of it the two SSL contexts aiohttp makes as it loads. Without them it keeps None and no
    URL. A command that sends no async request (plan, status, a converged apply, a handful of
    transfers) never needs them: `storage_async_ready` puts both back before an async client is
    made. Does nothing once any of them is loaded."""
    blocked = ("aiohttp", "yarl", "azure.core.pipeline.transport._aiohttp")
    if any(name in sys.modules for name in ("azure.storage.blob", *blocked)):
        return
    for name in blocked:
        sys.modules[name] = None  # type: ignore[assignment]  # makes importing it fail at once
    try:
        import azure.storage.blob  # noqa: F401
    finally:
        for name in blocked:
            del sys.modules[name]


def storage_async_ready() -> None:
    """Give azure-storage-blob's signing the async transport and the URL class it checks for, if
    its import went without them (`import_storage_without_aiohttp`): it signs the path as
    aiohttp will send it."""
    from azure.core.pipeline.transport import AioHttpTransport
    from azure.storage.blob._shared import authentication
    from yarl import URL

    if authentication.AioHttpTransport is None:
        authentication.AioHttpTransport = AioHttpTransport
        authentication.URL = URL
