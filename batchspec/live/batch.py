"""Live Batch state as REST JSON, read in bulk: a pool, a job, and the job's tasks in pages."""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable
from typing import Any

from azure.batch import BatchClient
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.core.rest import HttpRequest

from batchspec.services import sdk

_TASK_FIELDS = ["id", "state", "commandLine", "environmentSettings", "executionInfo", "nodeInfo"]
_PAGE = 1000  # the service's largest page


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


def read_tasks(client: BatchClient, job_id: str, fields: list[str] | None = None) -> list[dict[str, Any]]:
    """Every task of a job with only the fields the planner needs, a thousand per request.

    The pages are read as plain JSON through the client's pipeline (its authentication, retries
    and policies): `list_tasks` builds an SDK model per task and `as_dict()` turns it back into the
    same JSON, which costs most of a 10,000-task plan's time.
    """
    params = {"$select": ",".join(fields or _TASK_FIELDS), "maxresults": str(_PAGE)}
    tasks: list[dict[str, Any]] = []
    url: str | None = f"/jobs/{urllib.parse.quote(job_id, safe='')}/tasks"
    while url:
        page = _get_json(client, url, params)
        if page is None:
            return []
        tasks.extend(page.get("value") or [])
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
