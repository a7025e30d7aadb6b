"""The live state of a spec's resources, for `batchspec status`."""

from __future__ import annotations

from collections import Counter
from typing import Any

from batchspec.live import batch, storage, triage
from batchspec.model import OWNER, DesiredState, metadata


def read(target: Any, desired: DesiredState) -> dict[str, Any]:
    containers = storage.read_containers(target.blob, {c.name for c in desired.containers})
    pool = batch.read_pool(target.batch, desired.pool.id)
    job = batch.read_job(target.batch, desired.job.id)
    nodes = batch.read_nodes(target.batch, desired.pool.id) if pool else []
    tasks = (
        batch.read_tasks(target.batch, desired.job.id, ["id", "state", "executionInfo", "nodeInfo"])
        if job
        else []
    )
    return {
        "name": desired.name,
        "containers": [
            {
                "name": c.name,
                "exists": c.name in containers,
                "owned": containers[c.name].owner == desired.name if c.name in containers else None,
            }
            for c in desired.containers
        ],
        "pool": None
        if pool is None
        else {
            "id": pool["id"],
            "state": pool.get("state"),
            "allocationState": pool.get("allocationState"),
            "vmSize": pool.get("vmSize"),
            "owned": metadata(pool).get(OWNER) == desired.name,
            "nodes": dict(Counter(n.get("state") for n in nodes)),
        },
        "job": None
        if job is None
        else {
            "id": job["id"],
            "state": job.get("state"),
            "owned": metadata(job).get(OWNER) == desired.name,
        },
        "tasks": [
            {
                "id": t["id"],
                "state": t.get("state"),
                "result": (t.get("executionInfo") or {}).get("result"),
                "exitCode": (t.get("executionInfo") or {}).get("exitCode"),
                "node": (t.get("nodeInfo") or {}).get("nodeId"),
            }
            for t in tasks
        ],
        "causes": [c.as_dict() for c in triage.triage(tasks, nodes, pool)],
    }
