"""Parallel blob uploads and downloads; downloads are atomic and never leave their folder."""

from __future__ import annotations

import glob
import os
import re
import tempfile
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path, PurePosixPath
from urllib.parse import quote

from azure.core.exceptions import (
    HttpResponseError,
    IncompleteReadError,
    ResourceNotFoundError,
    ServiceResponseError,
)
from azure.core.rest import HttpRequest
from azure.storage.blob import BlobServiceClient, ContainerClient, ContentSettings

from batchspec.model import Blob
from batchspec.ownership import STORAGE_OWNER, STORAGE_SHA256

_LARGE = 8 * 1024 * 1024  # above this a blob is sent in parallel blocks
_SMALL = 4 * 1024 * 1024  # at most this is fetched in one plain GET
_DOWNLOAD_THREADS = 8


def safe_local_path(root: Path, blob_name: str, *, resolved_root: Path | None = None) -> Path | None:
    """Where blob `blob_name` goes under `root`, or None if the name would leave it.

    Refused: absolute names, backslashes, drive letters, `.`/`..` segments, empty segments, and
    names that resolve outside `root` through a symlink already in it. `resolved_root` is
    `root.resolve()` when the caller already has it (once per download, not once per blob).
    """
    if (
        not blob_name
        or "\\" in blob_name
        or blob_name.startswith("/")
        or re.match(r"^[A-Za-z]:", blob_name)
        or "\x00" in blob_name
    ):
        return None
    parts = blob_name.split("/")
    if any(p in ("", ".", "..") for p in parts):
        return None
    path = root.joinpath(*PurePosixPath(blob_name).parts)
    base = resolved_root if resolved_root is not None else root.resolve()
    try:
        path.resolve().relative_to(base)
    except ValueError:
        return None
    return path


def upload(
    service: BlobServiceClient,
    blobs: Iterable[Blob],
    owner: str,
    *,
    parallelism: int,
    on_done: Callable[[Blob], None] = lambda b: None,
) -> list[tuple[Blob, Exception]]:
    """Upload each blob's file with its sha256 and owner in metadata; returns the failures."""

    containers: dict[str, ContainerClient] = {}

    def one(blob: Blob) -> None:
        metadata = {STORAGE_SHA256: blob.sha256, STORAGE_OWNER: owner}
        if blob.size <= _SMALL:
            if blob.container not in containers:
                containers[blob.container] = service.get_container_client(blob.container)
            _put_small(containers[blob.container], blob, metadata)
            return
        client = service.get_blob_client(blob.container, blob.name)
        with open(blob.source, "rb") as data:
            client.upload_blob(
                data,
                length=blob.size,
                overwrite=True,
                metadata=metadata,
                content_settings=ContentSettings(content_type=_content_type(blob.name)),
                max_concurrency=4 if blob.size > _LARGE else 1,
            )

    return _run(one, list(blobs), parallelism, on_done)


def download(
    service: BlobServiceClient,
    container: str,
    names: Iterable[str],
    root: Path,
    *,
    parallelism: int,
    sizes: dict[str, int] | None = None,
    on_done: Callable[[str], None] = lambda n: None,
) -> list[tuple[str, Exception]]:
    """Download blobs under `root`, each written to a temporary file then renamed into place.

    Blobs known (from `sizes`, a listing) to be small are fetched with one plain GET through the
    client's pipeline (authentication, retries): the SDK's downloader costs more client CPU per
    small blob than the transfer itself.
    """
    root.mkdir(parents=True, exist_ok=True)
    resolved_root = root.resolve()
    container_client = service.get_container_client(container)
    sizes = sizes or {}

    def one(name: str) -> None:
        target = safe_local_path(root, name, resolved_root=resolved_root)
        if target is None:
            raise ValueError(f"refused blob name {name!r}: it would be written outside {root}")
        target.parent.mkdir(parents=True, exist_ok=True)
        # A download killed midway left its temporary file (mkstemp: 8 random characters).
        for stale in target.parent.glob(f".{glob.escape(target.name)}.{'?' * 8}.part"):
            stale.unlink(missing_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                if sizes.get(name, _SMALL + 1) <= _SMALL:
                    f.write(_get_small(container_client, name))
                else:
                    service.get_blob_client(container, name).download_blob(max_concurrency=4).readinto(f)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    # Past about 8 threads, small downloads only contend for the GIL and the store (measured).
    return _run(one, list(names), min(parallelism, _DOWNLOAD_THREADS), on_done)


def _put_small(client: ContainerClient, blob: Blob, metadata: dict[str, str]) -> None:
    """A small file in one Put Blob through the client's pipeline (authentication, retries: a
    Put Blob of the same bytes is idempotent); the SDK's uploader costs more per small blob."""
    data = Path(blob.source).read_bytes()
    headers = {
        "x-ms-version": client.api_version,
        "x-ms-blob-type": "BlockBlob",
        "x-ms-blob-content-type": _content_type(blob.name),
        "Content-Length": str(len(data)),
        **{f"x-ms-meta-{k}": v for k, v in metadata.items()},
    }
    request = HttpRequest("PUT", f"{client.url}/{quote(blob.name, safe='~/')}", headers=headers, content=data)
    response = client._client._send_request(request, stream=True)  # the raw-request hook
    response.read()
    if response.status_code != 201:
        raise HttpResponseError(response=response)


def _get_small(client: ContainerClient, name: str, attempts: int = 4) -> bytes:
    """A whole small blob in one GET (streamed, so no policy tries to decode it as text)."""
    url = f"{client.url}/{quote(name, safe='~/')}"
    for attempt in range(attempts):
        request = HttpRequest("GET", url, headers={"x-ms-version": client.api_version})
        response = client._client._send_request(request, stream=True)  # the raw-request hook
        if response.status_code == 404:
            raise ResourceNotFoundError(response=response)
        if response.status_code != 200:
            raise HttpResponseError(response=response)
        try:
            return response.read()
        except (ServiceResponseError, IncompleteReadError):
            # The pipeline retried the request; a body cut short is retried here.
            if attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


def _run(fn, items: list, parallelism: int, on_done) -> list:
    failures = []
    if not items:
        return failures
    with ThreadPoolExecutor(max_workers=max(1, min(parallelism, len(items)))) as pool:
        futures = {pool.submit(fn, item): item for item in items}
        for future in as_completed(futures):
            item = futures[future]
            try:
                future.result()
            except Exception as exc:  # noqa: BLE001 - reported per item by the caller
                failures.append((item, exc))
            else:
                on_done(item)
    return failures


def _content_type(name: str) -> str:
    import mimetypes

    return mimetypes.guess_type(name)[0] or "application/octet-stream"
