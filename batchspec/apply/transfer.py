"""Parallel blob uploads and downloads; downloads are atomic and never leave their folder."""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import IO

from azure.storage.blob import ContentSettings

from batchspec.apply import small_blobs
from batchspec.model import STORAGE_OWNER, STORAGE_SHA256, Blob
from batchspec.services.targets import Target
from batchspec.spec.files import safe_local_path

_LARGE = 8 * 1024 * 1024  # above this a blob is sent in parallel blocks
_DOWNLOAD_THREADS = 8
# Up to this many small blobs go through the SDK on threads: starting the event loop and its
# HTTP session (~40 ms with aiohttp's import) is worth it for many small blobs, not a handful.
_FEW = 8


def prepare(blobs: Iterable[Blob]) -> None:
    """Begin importing what many small transfers need (aiohttp: ~0.15-0.3 s, much of it the
    SSL contexts it makes as it loads) in a thread of its own, when more small files are to go
    than go on threads: apply calls it once it has its plan, and imports it while it shows the
    plan and asks, not after its "uploading" line. Not a daemon: an interpreter that exits
    while a thread imports C extensions can crash, so the exit waits for it. Its failure, if
    any, is the later import's to tell."""
    if sum(1 for b in blobs if b.size <= small_blobs.LIMIT) <= _FEW or "aiohttp" in sys.modules:
        return

    def load() -> None:
        with contextlib.suppress(Exception):
            import aiohttp  # noqa: F401

    threading.Thread(target=load, name="batchspec-prepare").start()


def upload(
    target: Target,
    blobs: Iterable[Blob],
    owner: str,
    *,
    parallelism: int,
    on_done: Callable[[Blob], None] = lambda b: None,
) -> list[tuple[Blob, Exception]]:
    """Upload each blob's file with its sha256 and owner in metadata; returns the failures.

    Small files go on one event loop (`small_blobs`), larger ones (and a handful of small
    ones) through the SDK's uploader in threads (in parallel blocks past 8 MiB).
    """
    blobs = list(blobs)

    def metadata(blob: Blob) -> dict[str, str]:
        return {STORAGE_SHA256: blob.sha256, STORAGE_OWNER: owner}

    def one(blob: Blob) -> None:
        client = target.blob.get_blob_client(blob.container, blob.name)
        with open(blob.source, "rb") as data:
            client.upload_blob(
                data,
                length=blob.size,
                overwrite=True,
                metadata=metadata(blob),
                content_settings=ContentSettings(content_type=_content_type(blob.name)),
                max_concurrency=4 if blob.size > _LARGE else 1,
            )

    small = [b for b in blobs if b.size <= small_blobs.LIMIT]
    on_loop = small if len(small) > _FEW else []
    for container in {b.container for b in on_loop}:
        target.sas.container_write(container)  # minted here: a user-delegation key is a request
    failures = small_blobs.run(
        target,
        target.sas.container_write,
        on_loop,
        small_blobs.uploader(metadata, _content_type),
        in_flight=_in_flight(parallelism),
        on_done=on_done,
    )
    threaded = [b for b in blobs if b.size > small_blobs.LIMIT or not on_loop]
    return failures + _run(one, threaded, parallelism, on_done)


def download(
    target: Target,
    container: str,
    names: Iterable[str],
    root: Path,
    *,
    parallelism: int,
    sizes: dict[str, int] | None = None,
    on_done: Callable[[str], None] = lambda n: None,
) -> list[tuple[str, Exception]]:
    """Download blobs under `root`, each written to a temporary file then renamed into place.

    Blobs known (from `sizes`, a listing) to be small come down on one event loop
    (`small_blobs`), the others (and a handful of small ones) through the SDK's downloader in
    threads.
    """
    root.mkdir(parents=True, exist_ok=True)
    resolved_root = root.resolve()
    sizes = sizes or {}
    paths: dict[str, Path] = {}
    refused: list[tuple[str, Exception]] = []
    for name in names:
        path = safe_local_path(root, name, resolved_root=resolved_root)
        if path is None:
            refused.append(
                (name, ValueError(f"refused blob name {name!r}: it would be written outside {root}"))
            )
        else:
            paths[name] = path
    _remove_stale_parts(paths.values())

    def one(name: str) -> None:
        stream = target.blob.get_blob_client(container, name).download_blob(max_concurrency=4)
        with _part_file(paths[name], stream.properties.last_modified.timestamp()) as f:
            stream.readinto(f)

    small = [n for n in paths if sizes.get(n, small_blobs.LIMIT + 1) <= small_blobs.LIMIT]
    on_loop = small if len(small) > _FEW else []
    if on_loop:
        target.sas.container_read(container, listing=False)  # minted here, as for uploads
    failures = small_blobs.run(
        target,
        lambda name: target.sas.container_read(name, listing=False),
        on_loop,
        small_blobs.downloader(container, lambda name, modified: _part_file(paths[name], modified)),
        in_flight=_in_flight(parallelism),
        on_done=on_done,
    )
    # Past about 8 threads, downloads only contend for the GIL and the store (measured).
    threaded = [n for n in paths if sizes.get(n, small_blobs.LIMIT + 1) > small_blobs.LIMIT or not on_loop]
    return refused + failures + _run(one, threaded, min(parallelism, _DOWNLOAD_THREADS), on_done)


def _in_flight(parallelism: int) -> int:
    # A small transfer in flight costs the client little but waits on the service: twice the
    # parallelism keeps the service busy (measured against Azurite: 16 -> 1,000/s, 32 -> 1,300/s).
    # At most 128, so that at most 128 MiB of small files is held at once.
    return min(max(1, parallelism) * 2, 128)


@contextlib.contextmanager
def _part_file(path: Path, modified: float | None) -> Iterator[IO[bytes]]:
    """A temporary file beside `path` that replaces it on success (with modification time
    `modified`, the blob's, which `live.state.download_pending` compares) and is removed on
    failure."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
        if modified is not None:
            os.utime(tmp, (modified, modified))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


_PART = re.compile(r"\.(.+)\.[A-Za-z0-9_]{8}\.part", re.DOTALL)  # what mkstemp makes in _part_file


def _remove_stale_parts(paths: Iterable[Path]) -> None:
    """Temporary files a killed download left beside `paths`, about to be fetched again (one
    listing per folder: a glob per blob would read the folder once per blob)."""
    wanted: dict[Path, set[str]] = {}
    for path in paths:
        wanted.setdefault(path.parent, set()).add(path.name)
    for folder, bases in wanted.items():
        try:
            entries = list(os.scandir(folder))
        except (FileNotFoundError, NotADirectoryError):
            continue
        for entry in entries:
            match = _PART.fullmatch(entry.name)
            if match and match.group(1) in bases and entry.is_file(follow_symlinks=False):
                Path(entry.path).unlink(missing_ok=True)


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
