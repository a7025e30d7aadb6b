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
    """Import azure-storage-blob's sync client without importing aiohttp.

    Its signing module imports azure-core's AioHttpTransport, and with it aiohttp (~0.1 s, most
    of it the two SSL contexts aiohttp makes as it loads), only to recognise requests sent by an
    async client when it signs them; without aiohttp it keeps None there. A command that sends
    no async request (plan, status, a converged apply, a handful of transfers) never needs it:
    `storage_async_ready` puts the class back before an async client is made. Does nothing once
    either package is loaded."""
    if "azure.storage.blob" in sys.modules or "aiohttp" in sys.modules:
        return
    sys.modules["aiohttp"] = None  # type: ignore[assignment]  # makes `import aiohttp` fail
    try:
        import azure.storage.blob  # noqa: F401
    finally:
        del sys.modules["aiohttp"]


def storage_async_ready() -> None:
    """Give azure-storage-blob's signing the async transport it checks for, if its import went
    without it (`import_storage_without_aiohttp`): it signs the path as aiohttp will send it."""
    from azure.core.pipeline.transport import AioHttpTransport
    from azure.storage.blob._shared import authentication

    if authentication.AioHttpTransport is None:
        authentication.AioHttpTransport = AioHttpTransport
