"""Live Batch state as REST JSON, read in bulk: a pool, a job, and the job's tasks in pages."""

from __future__ import annotations

from typing import Any

from azure.batch import BatchClient
from azure.core.exceptions import ResourceNotFoundError

from batchspec.ownership import TASK_FINGERPRINT_ENV

_TASK_FIELDS = ["id", "state", "commandLine", "environmentSettings", "executionInfo", "nodeInfo"]
_PAGE = 1000  # the service's largest page


def metadata(resource: dict[str, Any] | None) -> dict[str, str]:
    """A resource's metadata list as a mapping."""
    return {m["name"]: m.get("value", "") for m in (resource or {}).get("metadata") or []}


def task_fingerprint(task: dict[str, Any]) -> str | None:
    for setting in task.get("environmentSettings") or []:
        if setting.get("name") == TASK_FINGERPRINT_ENV:
            return setting.get("value")
    return None


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
    """Every task of a job with only the fields the planner needs, a thousand per request."""
    try:
        return [
            t.as_dict() for t in client.list_tasks(job_id, select=fields or _TASK_FIELDS, max_results=_PAGE)
        ]
    except ResourceNotFoundError:
        return []


def read_nodes(client: BatchClient, pool_id: str) -> list[dict[str, Any]]:
    try:
        return [n.as_dict() for n in client.list_nodes(pool_id, select=["id", "state", "startTaskInfo"])]
    except ResourceNotFoundError:
        return []


def resolve_node_agent_sku(client: BatchClient, image: dict[str, str]) -> str | None:
    """The node agent SKU the service pairs with a Marketplace image, or None if unsupported."""
    for supported in client.list_supported_images():
        ref = supported.as_dict().get("imageReference", {})
        if all(str(ref.get(k, "")).lower() == image[k].lower() for k in ("publisher", "offer", "sku")):
            return supported.node_agent_sku_id
    return None
