"""REST handlers for task files and node files: list (optionally recursive), get (with
`ocp-range` / `Range` byte ranges), properties (HEAD) and delete.

Task files live in the task directory the agent uses (`workitems/<job>/job-1/<task>` on the
node the task last ran on); node files are relative to the node's root directory.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import stat
from datetime import datetime, timezone
from email.utils import format_datetime
from pathlib import Path
from urllib.parse import quote

from aiohttp import web

from . import errors
from .api_nodes import get_node_doc
from .api_tasks import get_task_doc
from .common import Ctx, paged, standard_headers
from .store import key

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
_STREAM_ABOVE = 1024 * 1024  # bytes; also the chunk size when streaming


def _file_not_found() -> errors.BatchServiceError:
    return errors.BatchServiceError(404, "FileNotFound", "The specified file does not exist.")


def _task_root(ctx: Ctx, job_id: str, task_id: str) -> Path:
    from .agent import task_dir

    jk, _, task = get_task_doc(ctx, job_id, task_id)
    info = task.get("nodeInfo")
    if not info:
        raise errors.BatchServiceError(
            409, "TaskFilesUnavailable", "The task has not run on a node yet, so it has no files."
        )
    node = ctx.store.nodes.get(key(info["poolId"]), {}).get(key(info["nodeId"]))
    if node is None:
        raise errors.BatchServiceError(
            409, "TaskFilesUnavailable", "The node the task ran on is no longer in the pool."
        )
    ctx_node = ctx.sched.nodes.context(key(info["poolId"]), key(info["nodeId"]))
    return task_dir(ctx_node, ctx.store.jobs[jk]["id"], task["id"])


def _node_root(ctx: Ctx, pool_id: str, node_id: str) -> Path:
    get_node_doc(ctx, pool_id, node_id)
    return ctx.sched.nodes.context(key(pool_id), key(node_id)).root


def _resolve(root: Path, rel: str) -> Path:
    """`rel` inside `root`, refusing anything that escapes it (.., absolute, symlinks out)."""
    base = root.resolve()
    target = (base / rel.lstrip("/")).resolve()
    if target != base and base not in target.parents:
        raise _file_not_found()
    return target


def _http_time(ts: float) -> str:
    return format_datetime(datetime.fromtimestamp(ts, timezone.utc), usegmt=True)


def _iso_time(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _entry(url_base: str, root: Path, path: Path, st: os.stat_result) -> dict:
    name = path.relative_to(root).as_posix()
    entry = {"name": name, "url": f"{url_base}/{quote(name)}", "isDirectory": False}
    if stat.S_ISDIR(st.st_mode):
        entry["isDirectory"] = True  # the service gives directories no properties
        return entry
    entry["properties"] = {
        "creationTime": _iso_time(st.st_ctime),
        "lastModified": _iso_time(st.st_mtime),
        "contentLength": str(st.st_size),  # a string on the wire, like the service's
        "contentType": "application/octet-stream",
        "fileMode": f"0{st.st_mode:o}",
    }
    return entry


def _walk(root: Path, recursive: bool, url_base: str) -> list[dict]:
    out = []
    if not root.is_dir():
        return out
    stack = [root]
    while stack:
        here = stack.pop()
        try:
            children = sorted(here.iterdir())
        except OSError:
            continue
        for child in children:
            try:
                st = child.lstat()
            except OSError:
                continue
            out.append(_entry(url_base, root, child, st))
            if recursive and stat.S_ISDIR(st.st_mode):
                stack.append(child)
    return out


async def _list(ctx: Ctx, root: Path, url_base: str) -> web.Response:
    recursive = ctx.query.get("recursive", "false").lower() == "true"
    items = await asyncio.to_thread(_walk, root, recursive, url_base)
    return paged(ctx, "files", items)


def _properties_headers(url: str, st: os.stat_result) -> dict[str, str]:
    is_dir = stat.S_ISDIR(st.st_mode)
    return {
        "ocp-creation-time": _http_time(st.st_ctime),
        "ocp-batch-file-isdirectory": "true" if is_dir else "false",
        "ocp-batch-file-url": url,
        "ocp-batch-file-mode": f"0{st.st_mode:o}",
        "Last-Modified": _http_time(st.st_mtime),
        "ETag": f'"0x{st.st_mtime_ns:X}"',
        "Content-Type": "application/octet-stream",
        "DataServiceVersion": "3.0",
    }


def _stat(path: Path) -> os.stat_result:
    try:
        return path.stat()
    except OSError:
        raise _file_not_found() from None


def _read(path: Path, start: int, length: int) -> bytes:
    with path.open("rb") as fh:
        fh.seek(start)
        return fh.read(length)


async def _get(ctx: Ctx, root: Path, rel: str, url: str, head: bool) -> web.Response:
    path = _resolve(root, rel)
    st = _stat(path)
    headers = _properties_headers(url, st)
    size = st.st_size
    if head:
        headers["Content-Length"] = str(0 if stat.S_ISDIR(st.st_mode) else size)
        return web.Response(status=200, headers=headers)
    if stat.S_ISDIR(st.st_mode):
        raise errors.BatchServiceError(400, "InvalidFileRequest", "The specified path is a directory.")
    start, end = 0, size - 1
    spec = ctx.header("ocp-range") or ctx.header("Range")
    if spec:
        m = _RANGE.match(spec.strip())
        if not m or (not m.group(1) and not m.group(2)):
            raise errors.BatchServiceError(400, "InvalidRange", "The range specified is invalid.")
        if m.group(1):
            start = int(m.group(1))
            end = min(int(m.group(2)), size - 1) if m.group(2) else size - 1
        else:  # suffix range: the last N bytes
            start = max(0, size - int(m.group(2)))
        if start >= size and size > 0:
            raise errors.BatchServiceError(
                416,
                "InvalidRange",
                "The range specified is invalid for the current size of the resource.",
            )
    length = max(0, end - start + 1)
    if length <= _STREAM_ABOVE:
        data = await asyncio.to_thread(_read, path, start, length)
        return web.Response(status=200, body=data, headers=headers)
    # Large files (task logs can be big) are streamed in chunks, never held in memory.
    headers.update(standard_headers(ctx.request, ctx.request_id), **{"Content-Length": str(length)})
    response = web.StreamResponse(status=200, headers=headers)
    await response.prepare(ctx.request)
    offset = start
    while offset <= end:
        chunk = await asyncio.to_thread(_read, path, offset, min(_STREAM_ABOVE, end - offset + 1))
        if not chunk:  # the file shrank meanwhile
            break
        await response.write(chunk)
        offset += len(chunk)
    await response.write_eof()
    return response


async def _delete(ctx: Ctx, root: Path, rel: str) -> web.Response:
    path = _resolve(root, rel)
    st = _stat(path)
    if stat.S_ISDIR(st.st_mode):
        if ctx.query.get("recursive", "false").lower() != "true" and any(path.iterdir()):
            raise errors.BatchServiceError(409, "DirectoryNotEmpty", "The directory is not empty.")
        await asyncio.to_thread(shutil.rmtree, path, True)
    else:
        path.unlink(missing_ok=True)
    return web.Response(status=200, headers={"DataServiceVersion": "3.0"})


# The four file operations, over a task's directory or a node's root directory.


def _task_place(ctx: Ctx, job_id: str, task_id: str) -> tuple[Path, str]:
    url = f"{ctx.base_url}/jobs/{quote(job_id)}/tasks/{quote(task_id)}/files"
    return _task_root(ctx, job_id, task_id), url


def _node_place(ctx: Ctx, pool_id: str, node_id: str) -> tuple[Path, str]:
    url = f"{ctx.base_url}/pools/{quote(pool_id)}/nodes/{quote(node_id)}/files"
    return _node_root(ctx, pool_id, node_id), url


class _Files:
    """List (`?recursive=true`), get (byte ranges via ocp-range), properties (HEAD) and delete,
    for the files of one kind of place; the route's ids name the place."""

    def __init__(self, place):
        self._place = place

    async def list(self, ctx: Ctx, **ids: str) -> web.Response:
        root, url = self._place(ctx, **ids)
        return await _list(ctx, root, url)

    async def get(self, ctx: Ctx, path: str, **ids: str) -> web.Response:
        root, url = self._place(ctx, **ids)
        return await _get(ctx, root, path, f"{url}/{quote(path)}", head=False)

    async def properties(self, ctx: Ctx, path: str, **ids: str) -> web.Response:
        root, url = self._place(ctx, **ids)
        return await _get(ctx, root, path, f"{url}/{quote(path)}", head=True)

    async def delete(self, ctx: Ctx, path: str, **ids: str) -> web.Response:
        root, _ = self._place(ctx, **ids)
        return await _delete(ctx, root, path)


_TASK_FILES, _NODE_FILES = _Files(_task_place), _Files(_node_place)
# GET/HEAD/DELETE /jobs/{jobId}/tasks/{taskId}/files[/{path}]
list_task_files, get_task_file = _TASK_FILES.list, _TASK_FILES.get
task_file_properties, delete_task_file = _TASK_FILES.properties, _TASK_FILES.delete
# GET/HEAD/DELETE /pools/{poolId}/nodes/{nodeId}/files[/{path}]
list_node_files, get_node_file = _NODE_FILES.list, _NODE_FILES.get
node_file_properties, delete_node_file = _NODE_FILES.properties, _NODE_FILES.delete
