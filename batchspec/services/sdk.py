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
    to recognise requests sent by an async client when it signs them: ~0.15 s, much of it the
    two SSL contexts aiohttp makes as it loads. The sync clients batchspec uses never need them
    (small transfers go over aiohttp without the SDK: apply/small_blobs.py). The module gets
    stand-ins instead that answer as the real ones would: no transport is an AioHttpTransport
    while aiohttp's transport module is not loaded, and once it is, the check is the real one;
    so an async client that someone makes later in the same process signs as it always did.
    Does nothing once any of them is loaded."""
    blocked = ("aiohttp", "yarl", "azure.core.pipeline.transport._aiohttp")
    if any(name in sys.modules for name in ("azure.storage.blob", *blocked)):
        return
    for name in blocked:
        sys.modules[name] = None  # type: ignore[assignment]  # makes importing it fail at once
    try:
        from azure.storage.blob._shared import authentication
    finally:
        for name in blocked:
            del sys.modules[name]
    authentication.AioHttpTransport = _AioHttpTransportProbe
    authentication.URL = _yarl_url


class _ProbeType(type):
    def __instancecheck__(cls, instance: Any) -> bool:
        transport = sys.modules.get("azure.core.pipeline.transport._aiohttp")
        return transport is not None and isinstance(instance, transport.AioHttpTransport)


class _AioHttpTransportProbe(metaclass=_ProbeType):
    """`isinstance(x, _AioHttpTransportProbe)`: whether x is azure-core's AioHttpTransport,
    without importing it (nothing can be one before its module is loaded)."""


def _yarl_url(path: str) -> Any:
    from yarl import URL  # loaded already: only an AioHttpTransport's request gets here

    return URL(path)
