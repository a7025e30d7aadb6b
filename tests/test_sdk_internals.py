"""Guards of the SDK internals batchspec uses (batchspec/services/sdk.py): each fails with a
message naming what changed, so an SDK upgrade breaks here and not in a user's plan."""

from __future__ import annotations

import asyncio
import inspect
import json

from azure.batch import BatchClient
from azure.core.credentials import AzureNamedKeyCredential
from azure.core.pipeline.policies import SansIOHTTPPolicy
from azure.storage.blob import BlobServiceClient
from azure.storage.blob.aio import BlobServiceClient as AsyncBlobServiceClient

from batchspec.services import sdk
from support.definition import DEFINITION

CONNECTION = (
    "DefaultEndpointsProtocol=http;AccountName=acct;AccountKey=a2V5a2V5;BlobEndpoint=http://127.0.0.1:9/acct;"
)


def test_the_batch_client_sends_the_api_version_of_the_vendored_definition():
    client = BatchClient("https://acct.region.batch.azure.com", AzureNamedKeyCredential("acct", "a2V5"))
    version = sdk.batch_api_version(client)  # client._config.api_version
    defined = json.loads(DEFINITION.read_text("utf-8"))["info"]["version"]
    assert defined.startswith(version + "."), (
        f"azure-batch sends api-version {version}, the vendored definition is {defined}: "
        "vendor the definition of the version the SDK sends (tests/contract/definition/README.md)"
    )


def test_storage_clients_still_have_the_raw_request_hook():
    container = BlobServiceClient.from_connection_string(CONNECTION).get_container_client("c")
    assert callable(getattr(getattr(container, "_client", None), "_send_request", None)), (
        "azure-storage-blob: ContainerClient._client._send_request is gone (sdk.storage_send)"
    )

    async def async_hook():
        async with AsyncBlobServiceClient.from_connection_string(CONNECTION) as service:
            hook = service.get_container_client("c")._client._send_request
            return "Awaitable" in str(inspect.signature(hook).return_annotation)

    assert asyncio.run(async_hook()), "azure-storage-blob aio: _client._send_request returns no awaitable"


def test_storage_clients_still_take_additional_pipeline_policies():
    class Marker(SansIOHTTPPolicy):
        pass

    marker = Marker()
    service = BlobServiceClient.from_connection_string(CONNECTION, **sdk.storage_policies([marker]))
    policies = getattr(getattr(service._pipeline, "_impl_policies", None), "__iter__", None)
    assert policies is not None and any(
        getattr(p, "_policy", p) is marker for p in service._pipeline._impl_policies
    ), "azure-storage-blob ignores _additional_pipeline_policies now (sdk.storage_policies)"


def test_the_account_key_of_a_storage_client_is_readable():
    service = BlobServiceClient.from_connection_string(CONNECTION)
    assert sdk.storage_account_key(service) == "a2V5a2V5"
    assert sdk.storage_account_key(BlobServiceClient("https://acct.blob.core.windows.net")) is None


def test_the_batch_sdk_still_has_the_shared_key_policy_the_local_management_client_signs_with():
    try:
        policy = sdk.batch_shared_key_policy(AzureNamedKeyCredential("acct", "a2V5"))
    except (ImportError, TypeError) as exc:
        raise AssertionError(
            f"azure-batch: azure.batch._patch.BatchSharedKeyAuthPolicy is gone or changed ({exc}); "
            "sdk.batch_shared_key_policy signs the local target's management requests with it"
        ) from None
    assert isinstance(policy, SansIOHTTPPolicy)


def test_the_storage_client_imports_without_aiohttp_and_its_probes_answer_as_the_real_ones():
    """sdk.import_storage_without_aiohttp: the signing module's probes of AioHttpTransport and
    yarl are what import aiohttp and yarl; without them it takes stand-ins that answer as the
    real ones once aiohttp is loaded (an async client made later signs as it always did)."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from batchspec.services import sdk\n"
        "sdk.import_storage_without_aiohttp()\n"
        "from azure.storage.blob._shared import authentication as a\n"
        "loaded = {'aiohttp', 'yarl'} & set(sys.modules)\n"
        "assert not loaded, f'azure-storage-blob imports {loaded} another way now'\n"
        "assert a.AioHttpTransport is sdk._AioHttpTransportProbe, 'the probe moved'\n"
        "from azure.core.pipeline.transport import RequestsTransport\n"
        "assert not isinstance(RequestsTransport(), a.AioHttpTransport)\n"
        "assert {'aiohttp', 'yarl'}.isdisjoint(sys.modules), 'the probe imported aiohttp'\n"
        "from azure.core.pipeline.transport import AioHttpTransport\n"
        "from yarl import URL\n"
        "assert isinstance(AioHttpTransport(), a.AioHttpTransport)\n"
        "assert a.URL('/c/d ir/\\u00fc') == URL('/c/d ir/\\u00fc')\n"
        "src = open(a.__file__).read()\n"
        "assert 'isinstance(request.context.transport, AioHttpTransport)' in src, 'the probe changed'\n"
        "assert 'uri_path = URL(uri_path)' in src, 'the yarl probe changed'\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.returncode == 0, f"azure-storage-blob's aiohttp probe changed: {result.stderr[-800:]}"
