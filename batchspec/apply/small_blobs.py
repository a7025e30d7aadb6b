"""Small blobs moved many at a time on one asyncio event loop, each as one plain HTTP request
(Put Blob, or Get Blob) with a SAS URL, over aiohttp.

Per small blob the client's CPU is what bounds a transfer: on the real service, which takes
many requests at once, and here, where Azurite shares two cores with the client. Threads spent
it on the SDK's machinery and on contending for the GIL (1,000 downloads of 64 KiB: ~700/s with
8 threads, ~1,300/s on one event loop). The storage SDK's asyncio client costs ~1.2 ms of CPU a
Put Blob (its pipeline of policies and transport wrappers; a pipeline of azure-core's own three
policies costs as much), aiohttp alone ~0.6 ms: measured on 1,000 x 64 KiB against Azurite
(docs/benchmarks.md). So these requests skip the SDK's pipeline and carry what it would add:
a container SAS from the target's issuer (least privilege: create+write to upload, read to
download; minted again as it ages, never printed), the x-ms-version of the target's own
client, a client request id, and retries of what is transient (a dropped connection, a body cut
short, a timeout, the statuses the storage SDK retries) on the storage clients' own schedule
(`targets.STORAGE_RETRY`); each attempt is shown to the target's extra policies, as the SDK's
pipeline would (benchmarks count requests with them). A Put Blob of the same bytes and a Get
Blob are idempotent, so retrying them is safe.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import random
import ssl
import uuid
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager, asynccontextmanager
from pathlib import Path
from typing import IO, TypeVar
from urllib.parse import quote

from azure.core.exceptions import HttpResponseError, ResourceNotFoundError

from batchspec import __version__
from batchspec.model import Blob, http_timestamp
from batchspec.services.targets import STORAGE_RETRY, Target

LIMIT = 1024 * 1024  # up to this a blob travels whole in one request (in_flight x LIMIT bytes in memory)
RETRIES = STORAGE_RETRY["retry_total"]
_RETRY_AFTER_MOST = 60.0  # seconds: a longer Retry-After is waited only this long
_READ_SIZE = 256 * 1024


def retried(status: int) -> bool:
    """Whether the storage SDK retries an answer of this status (azure.storage.blob's
    `is_retry`: a timeout, and server errors but 501 Not Implemented and 505 Version Not
    Supported; the service throttles with 503)."""
    return status == 408 or (status >= 500 and status not in (501, 505))


T = TypeVar("T")


class _Answer(Exception):
    """The service answered a request with an error: its status, error code and Retry-After."""

    def __init__(self, status: int, text: str, code: str | None, retry_after: float):
        super().__init__(text)
        self.status, self.code, self.retry_after = status, code, retry_after


class Requests:
    """The requests of one run: an aiohttp session, each container's SAS URL (`container_url`),
    and the target's extra policies, shown each attempt."""

    def __init__(self, session, container_url: Callable[[str], str], api_version: str, policies: list):
        self._session = session
        self._container_url = container_url
        self._headers = {"x-ms-version": api_version, "User-Agent": f"batchspec/{__version__}"}
        self._policies = policies

    def _url(self, container: str, name: str) -> tuple[str, str]:
        """The blob's URL with its container's SAS, and the SAS (to keep out of messages)."""
        base, _, token = self._container_url(container).partition("?")
        return f"{base}/{quote(name, safe='~/')}?{token}", token

    async def put(self, container: str, name: str, data: bytes, headers: dict[str, str]) -> None:
        """Put Blob: `data` as a block blob, with `headers` (its properties and metadata)."""

        async def once(url: str) -> None:
            sent = {**self._headers, "x-ms-client-request-id": str(uuid.uuid4()), **headers}
            async with self._session.put(_exactly(url), data=data, headers=sent) as response:
                body = await response.read()  # read whole, so that the connection is reused
                if response.status != 201:
                    raise _refused(response, body.decode("utf-8", errors="replace"))

        await self._retrying("PUT", container, name, once)

    async def get(
        self, container: str, name: str, into: Callable[[str | None], AbstractContextManager[IO[bytes]]]
    ) -> None:
        """Get Blob, streamed into `into(last_modified)` (a file that is the blob's copy only if
        its context closes without error; each attempt opens one)."""

        async def once(url: str) -> None:
            sent = {**self._headers, "x-ms-client-request-id": str(uuid.uuid4())}
            async with self._session.get(_exactly(url), headers=sent) as response:
                if response.status != 200:
                    raise _refused(response, (await response.read()).decode("utf-8", errors="replace"))
                with into(response.headers.get("Last-Modified")) as f:
                    async for chunk in response.content.iter_chunked(_READ_SIZE):
                        f.write(chunk)

        await self._retrying("GET", container, name, once)

    async def _retrying(self, method: str, container: str, name: str, once) -> None:
        """`once(url)` until it succeeds, retrying what is transient. What fails for good is
        raised as the SDK's threads would raise it (azure-core's HttpResponseError, or
        ResourceNotFoundError for a 404), naming the request but never its SAS."""
        import aiohttp

        what = f"{method} {container}/{name}"
        for retry in range(RETRIES + 1):
            url, token = self._url(container, name)
            self._show(method, url.partition("?")[0])
            jitter = STORAGE_RETRY["random_jitter_range"]
            wait = STORAGE_RETRY["backoff"] + random.uniform(-jitter, jitter)  # noqa: S311 - not a secret
            try:
                await once(url)
                return
            except _Answer as answer:
                if not retried(answer.status) or retry == RETRIES:
                    raise _error(f"{what}: {answer}", answer.status, answer.code) from None
                wait = max(wait, answer.retry_after)
            except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                # A certificate the client does not trust stays so: not worth a retry.
                if retry == RETRIES or isinstance(exc, aiohttp.ClientConnectorCertificateError):
                    said = (str(exc) or type(exc).__name__).replace(token, "<SAS>")
                    raise _error(f"{what}: {said}" + (f" (after {retry} retries)" if retry else "")) from None
            await asyncio.sleep(wait)

    def _show(self, method: str, url: str) -> None:
        if self._policies:
            from azure.core.pipeline import PipelineContext, PipelineRequest
            from azure.core.rest import HttpRequest

            request = PipelineRequest(HttpRequest(method, url), PipelineContext(None))
            for policy in self._policies:
                policy.on_request(request)


def _exactly(url: str):
    """The URL as it is sent: already encoded (aiohttp would otherwise re-quote its path and the
    SAS's query)."""
    from yarl import URL

    return URL(url, encoded=True)


def _refused(response, body: str) -> _Answer:
    """The service's error answer: its status, and its error code (a header, else the <Code>
    of the XML body)."""
    code = response.headers.get("x-ms-error-code")
    if not code and "<Code>" in body:
        code = body.split("<Code>", 1)[1].split("</Code>", 1)[0]
    text = f"{response.status} {response.reason or ''}".strip() + (f" ({code})" if code else "")
    after = response.headers.get("Retry-After", "")
    retry_after = min(float(after), _RETRY_AFTER_MOST) if after.isdigit() else 0.0
    return _Answer(response.status, text, code, retry_after)


def _error(message: str, status: int | None = None, code: str | None = None) -> HttpResponseError:
    error = (ResourceNotFoundError if status == 404 else HttpResponseError)(message=message)
    error.status_code, error.error_code = status, code  # type: ignore[attr-defined]
    return error


def _trusted(trust_env: bool) -> ssl.SSLContext | bool:
    """The certificate authorities to trust: those the SDK's own requests trust when the
    environment counts (requests reads REQUESTS_CA_BUNDLE, then CURL_CA_BUNDLE: a proxy that
    inspects TLS, a private CA), else the system's (and OpenSSL's SSL_CERT_FILE)."""
    bundle = (os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")) if trust_env else None
    return ssl.create_default_context(cafile=bundle) if bundle else True


@asynccontextmanager
async def _session(in_flight: int, trust_env: bool):
    import aiohttp

    # The storage SDK's transport timeouts: 20 s to connect, 60 s between reads.
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=20, sock_read=60)
    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=in_flight, ssl=_trusted(trust_env)),
        timeout=timeout,
        trust_env=trust_env,  # proxies from the environment, as the SDK's clients take them
        cookie_jar=aiohttp.DummyCookieJar(),
        auto_decompress=False,
    ) as session:
        yield session


def run(
    target: Target,
    container_url: Callable[[str], str],
    items: list[T],
    work: Callable[[Requests, T], Awaitable[None]],
    *,
    in_flight: int,
    on_done: Callable[[T], None],
) -> list[tuple[T, Exception]]:
    """`work(requests, item)` for every item, at most `in_flight` at once; returns the failures.
    `container_url(name)` is a SAS URL of the container from `target.sas`."""

    async def main() -> list[tuple[T, Exception]]:
        failures: list[tuple[T, Exception]] = []
        async with _session(in_flight, target.trust_env) as session:
            requests = Requests(session, container_url, target.blob.api_version, target.policies)
            # `in_flight` workers share one iterator: a coroutine per item (100,000 of them for
            # as many files) held ~200 MB and cost a task's scheduling each.
            pending = iter(items)

            async def worker() -> None:
                for item in pending:
                    try:
                        await work(requests, item)
                    except Exception as exc:  # noqa: BLE001 - reported per item by the caller
                        failures.append((item, exc))
                        continue
                    on_done(item)

            await asyncio.gather(*(worker() for _ in range(max(1, min(in_flight, len(items))))))
        return failures

    if not items:
        return []
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(main())
    # Called from code already running an event loop (a notebook, say): a loop of its own in a
    # thread of its own, as asyncio.run cannot nest.
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as thread:
        return thread.submit(asyncio.run, main()).result()


def uploader(metadata: Callable[[Blob], dict[str, str]], content_type: Callable[[str], str]):
    """A `work` function for `run`: one small file in one Put Blob, with `metadata(blob)`."""

    async def put(requests: Requests, blob: Blob) -> None:
        headers = {
            "x-ms-blob-type": "BlockBlob",
            "x-ms-blob-content-type": content_type(blob.name),
            "Content-Type": "application/octet-stream",
            **{f"x-ms-meta-{k}": v for k, v in metadata(blob).items()},
        }
        await requests.put(blob.container, blob.name, Path(blob.source).read_bytes(), headers)

    return put


def downloader(container: str, open_part: Callable[[str, float | None], AbstractContextManager[IO[bytes]]]):
    """A `work` function for `run`: one small blob in one GET, streamed into
    `open_part(name, last_modified)` (a file that becomes the blob's local copy only when the
    context closes without error; `last_modified` is the blob's, as a POSIX timestamp)."""

    async def get(requests: Requests, name: str) -> None:
        await requests.get(container, name, lambda modified: open_part(name, http_timestamp(modified)))

    return get
