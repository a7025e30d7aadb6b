"""Live Batch state as REST JSON, read in bulk: a pool, a job, and the job's tasks in pages."""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable, Collection
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from azure.batch import BatchClient
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.core.rest import HttpRequest

from batchspec.services import sdk

# What the planner reads of a task (`nodeInfo`, six ids and URLs a task, is for status).
_TASK_FIELDS = ["id", "state", "commandLine", "environmentSettings", "executionInfo"]
_PAGE = 1000  # the service's largest page
_RANGES = 4  # id ranges of a large job read at once (8 took ~10 MB more, no less time)


def read_pool(client: BatchClient, pool_id: str) -> dict[str, Any] | None:
    try:
        return client.get_pool(pool_id).as_dict()
    except ResourceNotFoundError:
        return None


def read_job(client: BatchClient, job_id: str) -> dict[str, Any] | None:
    try:
        return client.get_job(job_id).as_dict()
    except ResourceNotFoundError:
        return None


def read_tasks(
    client: BatchClient,
    job_id: str,
    fields: list[str] | None = None,
    *,
    ids: Collection[str] = (),
    keep: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    where: str | None = None,
) -> list[dict[str, Any]]:
    """Every task of a job with only `fields`, a thousand per request; `keep(task)` is what is
    kept of each as its page arrives (a page is parsed, then dropped).

    The pages are read as plain JSON through the client's pipeline (its authentication, retries
    and policies): `list_tasks` builds an SDK model per task and `as_dict()` turns it back into the
    same JSON, which costs most of a 10,000-task plan's time. `ids`, the tasks expected (the
    spec's), split a large job into id ranges (`$filter=id ge 'a' and id lt 'b'`) of whole pages
    of them, read at once: one page after another, 100,000 tasks took 100 round trips in a row.
    The ranges cover every id, so tasks that are not expected are read too. `where`, a
    `$filter`, reads only the tasks it matches, in one listing.
    """
    params = {"$select": ",".join(fields or _TASK_FIELDS), "maxresults": str(_PAGE)}
    if where:
        return _read_range(client, job_id, {**params, "$filter": where}, keep)
    filters = id_ranges(ids, _PAGE, _RANGES)
    if len(filters) == 1:
        return _read_range(client, job_id, params, keep)
    with ThreadPoolExecutor(max_workers=len(filters)) as pool:
        parts = pool.map(lambda f: _read_range(client, job_id, {**params, "$filter": f}, keep), filters)
        found = {t["id"].lower(): t for part in parts for t in part}  # once each, whatever the order
    return list(found.values())


def pages(tasks: int) -> int:
    """The pages a listing of that many tasks takes."""
    return -(-tasks // _PAGE)


def job_path(job_id: str, operation: str) -> str:
    """The path of a job's operation (`tasks`, `taskcounts`, ...), the id quoted whole."""
    return f"/jobs/{urllib.parse.quote(job_id, safe='')}/{operation}"


def count_tasks(client: BatchClient, job_id: str) -> dict[str, int] | None:
    """The job's task counts (active, running, completed, succeeded, failed); None if the job
    is gone. The service's counts may lag the tasks by a few seconds ("Get Task Counts"), so
    readers check what must be exact with a filtered listing."""
    page = _get_json(client, job_path(job_id, "taskcounts"), {})
    return None if page is None else page.get("taskCounts")


def any_task(client: BatchClient, job_id: str, where: str) -> bool:
    """Whether any task of the job matches the `$filter` `where` (one page of one id)."""
    params = {"$select": "id", "maxresults": "1", "$filter": where}
    page = _get_json(client, job_path(job_id, "tasks"), params)
    return bool(page and page.get("value"))


def id_ranges(ids: Collection[str], page: int, most: int) -> list[str | None]:
    """`$filter`s that split the id space into at most `most` ranges, each holding a whole
    number of pages of `ids` ([None]: one listing). Together they cover every id, in any
    total order the service compares ids by; with ours, each range is whole pages."""
    pages = -(-len(ids) // page)
    if pages < 2:
        return [None]
    per = -(-pages // min(most, pages)) * page
    bounds = sorted(ids)[per::per]
    lows, highs = [None, *bounds], [*bounds, None]
    return [
        " and ".join([f"id ge '{lo}'"] * (lo is not None) + [f"id lt '{hi}'"] * (hi is not None))
        for lo, hi in zip(lows, highs, strict=True)
    ]


def _read_range(
    client: BatchClient,
    job_id: str,
    params: dict[str, str],
    keep: Callable[[dict[str, Any]], dict[str, Any]] | None,
) -> list[dict[str, Any]]:
    tasks: list[dict[str, Any]] = []
    url: str | None = job_path(job_id, "tasks")
    while url:
        page = _get_json(client, url, params)
        if page is None:
            return []
        value = page.get("value") or []
        tasks.extend(map(keep, value) if keep else value)
        url, params = _next_link(page.get("odata.nextLink"))
    return tasks


def _get_json(client: BatchClient, url: str, params: dict[str, str]) -> dict[str, Any] | None:
    """GET a Batch resource as JSON with the client's api-version; None if it does not exist."""
    api_version = sdk.batch_api_version(client)
    request = HttpRequest(
        "GET", url, params={**params, "api-version": api_version}, headers={"Accept": "application/json"}
    )
    try:
        response = client.send_request(request)  # the client's error policy raises for 4xx/5xx
    except ResourceNotFoundError:
        return None
    if response.status_code == 404:
        return None
    if response.status_code != 200:
        raise HttpResponseError(response=response)
    return response.json()


def _next_link(link: str | None) -> tuple[str | None, dict[str, str]]:
    """The next page's path and query, as the SDK's own pager sends them: each value quoted
    again (azure-core writes query parameters into the URL as given, so a continuation token's
    `+` would reach the service as a space), and the api-version set again."""
    if not link:
        return None, {}
    parsed = urllib.parse.urlsplit(link)
    query = {
        k: urllib.parse.quote(v) for k, v in urllib.parse.parse_qsl(parsed.query, keep_blank_values=True)
    }
    query.pop("api-version", None)
    return urllib.parse.urlunsplit((parsed.scheme, parsed.netloc, parsed.path, "", "")), query


def read_nodes(client: BatchClient, pool_id: str) -> list[dict[str, Any]]:
    try:
        fields = ["id", "state", "startTaskInfo", "errors", "isDedicated", "allocationTime"]
        return [n.as_dict() for n in client.list_nodes(pool_id, select=fields)]
    except ResourceNotFoundError:
        return []


def read_preparations(client: BatchClient, job_id: str) -> list[dict[str, Any]]:
    """Per node, how the job's preparation and release tasks went (the service's
    BatchJobPreparationAndReleaseTaskStatus); empty for a job without them or gone."""
    try:
        return [s.as_dict() for s in client.list_job_preparation_and_release_task_status(job_id)]
    except ResourceNotFoundError:
        return []


def supported_image(client: BatchClient, image: dict[str, str]) -> dict[str, Any] | None:
    """The account's supported-images entry of a Marketplace image (its node agent SKU, its
    `batchSupportEndOfLife`), or None if the account does not list it."""
    for supported in client.list_supported_images():
        entry = supported.as_dict()
        ref = entry.get("imageReference", {})
        keys = ("publisher", "offer", "sku")
        if all(str(ref.get(k, "")).lower() == str(image.get(k, "")).lower() for k in keys):
            return entry
    return None


def content_length(props: Any) -> int | None:
    """The size a task or node file's properties give (the SDK names it two ways)."""
    if props is None:
        return None
    for attr in ("content_length", "ocp_batch_file_size"):
        value = getattr(props, attr, None)
        if value is not None:
            return int(value)
    if isinstance(props, dict):
        value = props.get("Content-Length") or props.get("content-length")
        return int(value) if value is not None else None
    return None


def file_bytes(
    download: Callable[..., Any], properties: Callable[[], Any], *, start: int = 0, last: int | None = None
) -> bytes:
    """A task or node file's bytes from `start`, or its `last` bytes, in one ranged read (the
    whole file when the service gives no size). HttpResponseError as the service answers."""
    size = content_length(properties())
    if size is None:
        data = b"".join(download())
        return data if last is not None else data[start:]
    if last is not None:
        start = max(0, size - last)
    if size <= start:
        return b""
    return b"".join(download(ocp_range=f"bytes={start}-{size - 1}"))
