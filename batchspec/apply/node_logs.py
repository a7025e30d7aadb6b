"""The start task's logs of each node, kept in the spec's logs container so that they outlive
the node and the pool (`batchspec logs SPEC --start-task NODE`).

A start task has no output files, so the service cannot upload them itself as it does a
task's: apply copies them once the nodes have settled, from each node whose start task has
ended since the copy it keeps (one listing of the kept copies, two reads and two writes a node).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from azure.core.exceptions import HttpResponseError

from batchspec.live.batch import file_bytes

if TYPE_CHECKING:
    from batchspec.apply.executor import Applier

_ENDED = "batchspec_start_task_end"  # the startTaskInfo.endTime a copy was made of
NAMES = ("stdout.txt", "stderr.txt")


def keep(run: Applier, nodes: list[dict[str, Any]]) -> None:
    """Copy the start task logs of the nodes whose start task ended since their kept copy."""
    logs, pool_id = run.desired.logs, run.desired.pool.id
    if logs is None or not run.desired.pool.start_task:
        return
    ended = {n["id"]: (n.get("startTaskInfo") or {}).get("endTime") for n in nodes}
    ended = {node: end for node, end in ended.items() if end}
    if not ended:
        return
    container = run.t.blob.get_container_client(logs.container)
    try:
        kept = {
            b.name: (b.metadata or {}).get(_ENDED)
            for b in container.list_blobs(name_starts_with=f"{pool_id}/", include=["metadata"])
        }
    except HttpResponseError as exc:
        run.outcome.problems.append(f"start task logs not kept: {exc.reason or exc}")
        return
    todo = [
        (node, name, end)
        for node, end in ended.items()
        for name in NAMES
        if kept.get(f"{logs.start_task_path(pool_id, node)}/{name}") != str(end)
    ]

    def copy(item: tuple[str, str, Any]) -> None:
        node, name, end = item
        try:
            data = file_bytes(
                lambda **kw: run.t.batch.download_node_file(pool_id, node, f"startup/{name}", **kw),
                lambda: run.t.batch.get_node_file_properties(pool_id, node, f"startup/{name}"),
            )
            blob = f"{logs.start_task_path(pool_id, node)}/{name}"
            container.upload_blob(blob, data, overwrite=True, metadata={_ENDED: str(end)})
        except HttpResponseError:
            pass  # the node left meanwhile: nothing to keep

    with ThreadPoolExecutor(max_workers=max(1, min(run.parallelism, 8))) as pool:
        list(pool.map(copy, todo))
