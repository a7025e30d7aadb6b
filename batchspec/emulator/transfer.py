"""Resource-file downloads and output-file uploads, over the Blob REST API with SAS URLs.

This is what a compute node does before and after a task's process: no storage SDK, just the
Blob REST operations Batch's node agent uses (Get Blob, List Blobs, Put Blob, Put Block, Put
Block List) with the caller's SAS in the URL. One aiohttp session per event loop is shared by
every task on it, and a semaphore bounds concurrent transfers. Nothing recorded (failure
messages, details) ever contains a URL's query string, since that is where the SAS lives.

Failure codes and messages are the service's TaskFailureInformation codes (see the emulator
docs); category "usererror" for problems with what the user supplied (access denied, missing
blob or container), "servererror" for miscellaneous transport failures, as the service does.

Over 400 lines: downloads and uploads share the REST calls, retries and failure codes of the
service's node agent.
"""

from __future__ import annotations

import asyncio
import base64
import glob
import mimetypes
import os
import random
import weakref
import xml.etree.ElementTree as ET
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import quote

import aiohttp
from yarl import URL

from batchspec.emulator.cmdline import expand_vars

API_VERSION = "2023-11-03"
MAX_CONCURRENT_TRANSFERS = 16
PUT_BLOB_LIMIT = 64 * 1024 * 1024  # bigger files go up as blocks (module-level: tests lower it)
BLOCK_SIZE = 8 * 1024 * 1024
LIST_PAGE_SIZE = 5000  # List Blobs maxresults (the service maximum); tests lower it to page
_CHUNK = 1024 * 1024
_DEFAULT_FILE_MODE = 0o770  # the service's default for resource files on Linux nodes


class TransferError(Exception):
    """A transfer failed; carries the REST TaskFailureInformation to report."""

    def __init__(
        self, category: str, code: str, message: str, details: list[dict], *, transient: bool = False
    ):
        super().__init__(message)
        self.category, self.code, self.message, self.details = category, code, message, details
        self.transient = transient  # a busy or flaky store: worth another try

    def failure_info(self) -> dict:
        return {
            "category": self.category,
            "code": self.code,
            "message": self.message,
            "details": self.details,
        }


_ATTEMPTS = 6  # the node agent rides out a busy store (503s, drops) before failing the task


def _transient_status(status: int) -> bool:
    return status in (408, 429) or status >= 500


async def _retrying(operation, *args):
    """Run a transfer, again with backoff while it fails transiently, as Azure's agent does."""
    delay = 0.2
    for attempt in range(_ATTEMPTS):
        try:
            return await operation(*args)
        except TransferError as exc:
            if not exc.transient or attempt == _ATTEMPTS - 1:
                raise
        await asyncio.sleep(delay * (0.5 + random.random()))
        delay = min(delay * 2, 5.0)
    return None


def redact(url: str) -> str:
    """`url` without its query string (the SAS token) or fragment."""
    return url.split("?", 1)[0].split("#", 1)[0]


# --- shared session -------------------------------------------------------------------------

_sessions: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _session() -> tuple[aiohttp.ClientSession, asyncio.Semaphore]:
    loop = asyncio.get_running_loop()
    entry = _sessions.get(loop)
    if entry is None or entry[0].closed:
        session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=MAX_CONCURRENT_TRANSFERS),
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=300),
            # Resource files are saved byte for byte, whatever Content-Encoding they carry.
            auto_decompress=False,
        )
        entry = (session, asyncio.Semaphore(MAX_CONCURRENT_TRANSFERS))
        _sessions[loop] = entry
    return entry


async def close_session() -> None:
    """Close the current event loop's shared HTTP session (call on shutdown)."""
    entry = _sessions.pop(asyncio.get_running_loop(), None)
    if entry is not None:
        await entry[0].close()


def _with_query(url: str, extra: str) -> URL:
    """Append `extra` (already encoded) to `url`'s query, keeping the SAS bytes untouched."""
    sep = "&" if "?" in url else "?"
    return URL(f"{url}{sep}{extra}" if extra else url, encoded=True)


def _blob_url(container_url: str, blob_name: str) -> str:
    base, _, query = container_url.partition("?")
    url = f"{base.rstrip('/')}/{quote(blob_name, safe='/')}"
    return f"{url}?{query}" if query else url


async def _gather_fail_fast(coros: list) -> None:
    """Run `coros` concurrently; on the first failure cancel the rest and raise it."""
    tasks = [asyncio.ensure_future(c) for c in coros]
    if not tasks:
        return
    try:
        done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        for t in done:
            if t.exception() is not None:
                raise t.exception()
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


# --- resource files -------------------------------------------------------------------------


def _inside(root: Path, relative: str, what: str, detail: list[dict]) -> Path:
    """`root/relative`, refusing absolute paths and anything that escapes `root`."""
    if os.path.isabs(relative):
        raise TransferError(
            "usererror",
            "ResourceFileCreateFailed",
            f"The {what} must be relative to the task working directory.",
            detail,
        )
    target = Path(os.path.normpath(root / relative))
    if target != root and root not in target.parents:
        raise TransferError(
            "usererror",
            "ResourceFileCreateFailed",
            f"The {what} cannot break out of the task working directory.",
            detail,
        )
    return target


async def download_resource_files(resource_files: list[dict], wd: Path) -> None:
    """Download every resource file into `wd`; raise TransferError on the first failure."""
    await _gather_fail_fast([_download_one(rf, wd) for rf in resource_files or []])


async def _download_one(rf: dict, wd: Path) -> None:
    mode = int(rf["fileMode"], 8) if rf.get("fileMode") else _DEFAULT_FILE_MODE
    file_path = rf.get("filePath") or ""
    if rf.get("autoStorageContainerName"):
        raise TransferError(
            "usererror",
            "AutoStorageNotSupported",
            "The local Batch emulator has no auto-storage account: use storageContainerUrl "
            "or httpUrl with a SAS URL instead of autoStorageContainerName.",
            [{"name": "AutoStorageContainerName", "value": rf["autoStorageContainerName"]}],
        )
    if rf.get("httpUrl"):
        url = rf["httpUrl"]
        detail = [{"name": "FilePath", "value": file_path}, {"name": "Url", "value": redact(url)}]
        if not file_path:
            raise TransferError(
                "usererror", "ResourceFileCreateFailed", "filePath is required with httpUrl.", detail
            )
        await _retrying(_get_to_file, url, _inside(wd, file_path, "filePath", detail), mode, detail)
        return
    container_url = rf.get("storageContainerUrl")
    if not container_url:
        raise TransferError(
            "usererror",
            "ResourceFileCreateFailed",
            "A resource file needs httpUrl, storageContainerUrl or autoStorageContainerName.",
            [{"name": "FilePath", "value": file_path}],
        )
    detail = [
        {"name": "FilePath", "value": file_path},
        {"name": "ContainerUrl", "value": redact(container_url)},
    ]
    target_dir = _inside(wd, file_path or ".", "filePath", detail)
    names = await _retrying(_list_blobs, container_url, rf.get("blobPrefix") or "", detail)
    jobs = []
    for name in names:
        blob_detail = [
            {"name": "FilePath", "value": os.path.join(file_path, name)},
            {"name": "Url", "value": redact(_blob_url(container_url, name))},
        ]
        target = _inside(target_dir, name, "blob name", blob_detail)
        jobs.append(_retrying(_get_to_file, _blob_url(container_url, name), target, mode, blob_detail))
    await _gather_fail_fast(jobs)


async def _list_blobs(container_url: str, prefix: str, detail: list[dict]) -> list[str]:
    session, limit = _session()
    names: list[str] = []
    marker = ""
    while True:
        query = f"restype=container&comp=list&maxresults={LIST_PAGE_SIZE}&prefix={quote(prefix, safe='')}"
        if marker:
            query += f"&marker={quote(marker, safe='')}"
        try:
            async with (
                limit,
                session.get(_with_query(container_url, query), headers={"x-ms-version": API_VERSION}) as resp,
            ):
                body = await resp.read()
                status = resp.status
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            raise TransferError(
                "servererror",
                "ResourceContainerListMiscError",
                "Miscellaneous error encountered while listing one of the specified Azure Blob container(s).",
                [*detail, _message(exc)],
                transient=True,
            ) from None
        if status in (401, 403):
            raise TransferError(
                "usererror",
                "ResourceContainerAccessDenied",
                "Access for one of the specified Azure Blob container(s) is denied.",
                [*detail, _status(status)],
            )
        if status != 200:
            raise TransferError(
                "usererror" if status == 404 else "servererror",
                "ResourceContainerListMiscError",
                "Miscellaneous error encountered while listing one of the specified Azure Blob container(s).",
                [*detail, _status(status)],
                transient=_transient_status(status),
            )
        root = ET.fromstring(body)
        names += [el.text or "" for el in root.iterfind("./Blobs/Blob/Name")]
        marker = root.findtext("NextMarker") or ""
        if not marker:
            return names


async def _get_to_file(url: str, target: Path, mode: int, detail: list[dict]) -> None:
    session, limit = _session()
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise TransferError(
            "servererror",
            "ResourceDirectoryCreateFailed",
            "Failure encountered creating resource directory for the task.",
            [*detail, _message(exc)],
        ) from None
    try:
        async with limit, session.get(URL(url, encoded=True), headers={"x-ms-version": API_VERSION}) as resp:
            if resp.status in (401, 403):
                raise TransferError(
                    "usererror",
                    "BlobAccessDenied",
                    "Access for one of the specified Azure Blob(s) is denied.",
                    [*detail, _status(resp.status)],
                )
            if resp.status == 404:
                raise TransferError(
                    "usererror",
                    "BlobNotFound",
                    "One of the specified Azure Blob(s) is not found.",
                    [*detail, _status(404)],
                )
            if resp.status != 200:
                raise TransferError(
                    "servererror",
                    "BlobDownloadMiscError",
                    "Miscellaneous error encountered while downloading one of the specified Azure Blob(s).",
                    [*detail, _status(resp.status)],
                    transient=_transient_status(resp.status),
                )
            try:
                with open(target, "wb") as out:
                    async for chunk in resp.content.iter_chunked(_CHUNK):
                        out.write(chunk)
            except OSError as exc:
                raise TransferError(
                    "servererror",
                    "ResourceFileWriteFailed",
                    "Failure encountered writing resource file.",
                    [*detail, _message(exc)],
                ) from None
    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
        raise TransferError(
            "servererror",
            "BlobDownloadMiscError",
            "Miscellaneous error encountered while downloading one of the specified Azure Blob(s).",
            [*detail, _message(exc)],
            transient=True,
        ) from None
    os.chmod(target, mode)


def _status(status: int) -> dict:
    return {"name": "HttpStatusCode", "value": str(status)}


def _message(exc: BaseException) -> dict:
    if isinstance(exc, OSError) and exc.strerror and not isinstance(exc, aiohttp.ClientError):
        text = exc.strerror
    else:
        text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    # aiohttp errors can embed the request URL: never let a SAS reach a recorded message.
    return {"name": "Message", "value": " ".join(redact(word) for word in text.split(" "))}


# --- output files ---------------------------------------------------------------------------


def should_upload(condition: str | None, exit_code: int | None) -> bool:
    """Whether an output file with `condition` is uploaded after an exit with `exit_code`."""
    condition = (condition or "tasksuccess").lower()
    if exit_code is None:
        return False  # the process never ran: nothing is uploaded, as in the service
    if condition == "taskcompletion":
        return True
    return (exit_code == 0) == (condition == "tasksuccess")


def match_output_files(pattern: str, wd: Path, env: dict[str, str]) -> list[tuple[Path, str]]:
    """Files matching `pattern` (relative to `wd`) and each one's name relative to the pattern's
    non-wildcard base directory (a plain path maps to its file name)."""
    pattern = expand_vars(pattern, env)
    parts = pattern.split("/")
    base_parts: list[str] = []
    for part in parts[:-1]:
        if glob.has_magic(part):
            break
        base_parts.append(part)
    base = wd.joinpath(*base_parts) if base_parts else wd
    if os.path.isabs(pattern):
        base = Path("/", *base_parts[1:])
    if not glob.has_magic(pattern):
        path = wd / pattern
        return [(path, path.name)] if path.is_file() else []
    found = []
    for hit in sorted(glob.glob(pattern, root_dir=wd, recursive=True)):
        path = Path(os.path.normpath(wd / hit))
        if path.is_file():
            found.append((path, os.path.relpath(path, os.path.normpath(base))))
    return found


async def upload_output_files(
    output_files: list[dict],
    wd: Path,
    env: dict[str, str],
    exit_code: int | None,
    log_dir: Path | None = None,
) -> None:
    """Upload the output files whose condition holds for `exit_code`; raise TransferError.

    With `log_dir`, each upload and failure is logged to fileuploadout.txt / fileuploaderr.txt
    there, as the service's node agent does in the task directory.
    """
    jobs = []
    journal = _Journal(log_dir) if log_dir is not None and output_files else None
    for spec in output_files or []:
        condition = (spec.get("uploadOptions") or {}).get("uploadCondition")
        if not should_upload(condition, exit_code):
            continue
        container = (spec.get("destination") or {}).get("container") or {}
        container_url = container.get("containerUrl") or ""
        prefix = (container.get("path") or "").strip("/")
        headers = {h["name"]: h.get("value") or "" for h in container.get("uploadHeaders") or []}
        pattern = spec.get("filePattern") or ""
        has_magic = glob.has_magic(pattern)
        matches = match_output_files(pattern, wd, env)
        if journal and not matches:
            journal.out(f"No files matched pattern {pattern!r}")
        for path, relative in matches:
            if has_magic:
                name = f"{prefix}/{relative}" if prefix else relative
            else:
                name = prefix or relative
            jobs.append(_put_file(path, container_url, name, headers, journal))
    try:
        await _gather_fail_fast(jobs)
    finally:
        if journal:
            journal.close()


class _Journal:
    """fileuploadout.txt / fileuploaderr.txt; never holds a SAS."""

    def __init__(self, directory: Path):
        self._directory = directory
        self._lines: dict[str, list[str]] = {"fileuploadout.txt": [], "fileuploaderr.txt": []}

    def out(self, line: str) -> None:
        self._lines["fileuploadout.txt"].append(f"{_timestamp()} {line}\n")

    def err(self, line: str) -> None:
        self._lines["fileuploaderr.txt"].append(f"{_timestamp()} {line}\n")

    def close(self) -> None:
        for name, lines in self._lines.items():
            with open(self._directory / name, "a", encoding="utf-8") as log:
                log.writelines(lines)


def _timestamp() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


async def upload_files(files: list[tuple[Path, str]], container_url: str) -> None:
    """Each (file, blob name) into the container, as output files go; TransferError on the
    first failure."""
    await _gather_fail_fast([_put_file(path, container_url, name, {}, None) for path, name in files])


async def _put_file(
    path: Path, container_url: str, blob_name: str, extra_headers: dict, journal: _Journal | None
) -> None:
    url = _blob_url(container_url, blob_name)
    detail = [{"name": "FilePath", "value": str(path)}, {"name": "Url", "value": redact(url)}]
    try:
        await _retrying(_put_file_parts, path, url, detail, extra_headers)
    except TransferError as exc:
        if journal:
            journal.err(f"Upload of {path} to {redact(url)} failed: {exc.code}: {exc.message}")
        raise
    if journal:
        journal.out(f"Uploaded {path} to {redact(url)}")


async def _put_file_parts(path: Path, url: str, detail: list[dict], extra_headers: dict) -> None:
    size = path.stat().st_size
    content = {
        "x-ms-blob-content-type": mimetypes.guess_type(path.name)[0] or "application/octet-stream",
        **extra_headers,
    }
    try:
        if size <= PUT_BLOB_LIMIT:
            with open(path, "rb") as body:
                await _put(
                    url,
                    "",
                    body,
                    detail,
                    {**content, "x-ms-blob-type": "BlockBlob", "Content-Length": str(size)},
                )
            return
        block_ids = []
        with open(path, "rb") as body:
            index = 0
            while chunk := body.read(BLOCK_SIZE):
                block_id = base64.b64encode(f"{index:08d}".encode()).decode()
                await _put(
                    url,
                    f"comp=block&blockid={quote(block_id, safe='')}",
                    chunk,
                    detail,
                    {"Content-Length": str(len(chunk))},
                )
                block_ids.append(block_id)
                index += 1
        block_list = "".join(f"<Latest>{b}</Latest>" for b in block_ids)
        xml = f'<?xml version="1.0" encoding="utf-8"?><BlockList>{block_list}</BlockList>'.encode()
        await _put(url, "comp=blocklist", xml, detail, {**content, "Content-Length": str(len(xml))})
    except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
        raise TransferError(
            "servererror",
            "FileUploadMiscError",
            "The compute node hit an unexpected error when uploading output files.",
            [*detail, _message(exc)],
            transient=not isinstance(exc, OSError)
            or isinstance(exc, (aiohttp.ClientError, asyncio.TimeoutError)),
        ) from None


async def _put(url: str, query: str, body, detail: list[dict], headers: dict) -> None:
    session, limit = _session()
    async with (
        limit,
        session.put(
            _with_query(url, query), data=body, headers={"x-ms-version": API_VERSION, **headers}
        ) as resp,
    ):
        await resp.read()
        if resp.status in (200, 201):
            return
        status = [_status(resp.status)]
        if resp.status in (401, 403):
            raise TransferError(
                "usererror",
                "FileUploadAccessDenied",
                "Access to one of the specified Azure container(s) was denied "
                "while attempting to upload an output file.",
                [*detail, *status],
            )
        if resp.status == 404:
            raise TransferError(
                "usererror",
                "FileUploadContainerNotFound",
                "One of the specified Azure container(s) was not found while "
                "attempting to upload an output file.",
                [*detail, *status],
            )
        raise TransferError(
            "servererror",
            "FileUploadMiscError",
            "The compute node hit an unexpected error when uploading output files.",
            [*detail, *status],
            transient=_transient_status(resp.status),
        )
