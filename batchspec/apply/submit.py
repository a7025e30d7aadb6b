"""Adding many tasks: collections of up to 100 JSON bodies, posted in parallel.

The SDK's `create_tasks` wants a model per task; building 10,000 of them from the bodies
`payloads.task` makes cost more client CPU (~0.45 s) than sending them. This posts the bodies
as they are through the client's public `send_request` (its authentication, and its retries:
a task id makes a repeated collection harmless) and keeps the service's rules as the SDK's
workflow does: a collection answered RequestBodyTooLarge is split in half, tasks answered
`servererror` are sent again, tasks answered `clienterror` are handed back to the caller.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from typing import Any

from azure.batch import BatchClient
from azure.core.exceptions import HttpResponseError
from azure.core.rest import HttpRequest

from batchspec.live import batch as live_batch
from batchspec.services import sdk

MAX_TASKS = 100  # the service's limit per collection
_SERVER_ERROR_TRIES = 5  # then the task is handed back as refused
_TOO_LARGE = "the task alone is larger than the service accepts in a request (1 MB)"


@dataclass(frozen=True)
class Refused:
    """A task the service would not add (TaskExists among them: the caller judges those)."""

    task_id: str
    code: str
    message: str


def add_tasks(
    client: BatchClient, job_id: str, bodies: list[dict[str, Any]], *, threads: int
) -> list[Refused]:
    """Add every task of `bodies` to the job; returns those the service refused.

    Raises the first request that failed for good (after the client's retries); the tasks
    of other collections may have been added by then, which a new apply sees and completes.
    """
    queue: deque[list[dict[str, Any]]] = deque(
        bodies[i : i + MAX_TASKS] for i in range(0, len(bodies), MAX_TASKS)
    )
    refused: list[Refused] = []
    failed: list[BaseException] = []
    tries: dict[str, int] = {}
    lock = threading.Lock()

    def take() -> list[dict[str, Any]] | None:
        with lock:
            return queue.popleft() if queue and not failed else None

    def work() -> None:
        while (chunk := take()) is not None:
            try:
                results = _post(client, job_id, chunk)
            except HttpResponseError as exc:
                if _code(exc) == "RequestBodyTooLarge" and len(chunk) > 1:
                    half = len(chunk) // 2
                    with lock:
                        queue.extend((chunk[:half], chunk[half:]))
                    continue
                if _code(exc) == "RequestBodyTooLarge":
                    with lock:
                        refused.append(Refused(chunk[0]["id"], "RequestBodyTooLarge", _TOO_LARGE))
                    continue
                with lock:
                    failed.append(exc)
                return
            except BaseException as exc:
                with lock:
                    failed.append(exc)
                return
            again = _sort_results(chunk, results, tries, refused, lock)
            if again:
                with lock:
                    queue.append(again)

    workers = [threading.Thread(target=work, daemon=True) for _ in range(max(1, min(threads, len(queue))))]
    for w in workers:
        w.start()
    for w in workers:
        w.join()  # a worker that queues a retry or a split half goes on to take it itself
    if failed:
        raise failed[0]
    return refused


def _post(client: BatchClient, job_id: str, chunk: list[dict[str, Any]]) -> list[dict[str, Any]]:
    request = HttpRequest(
        "POST",
        live_batch.job_path(job_id, "addtaskcollection"),
        params={"api-version": sdk.batch_api_version(client)},
        headers={"Content-Type": "application/json; odata=minimalmetadata", "Accept": "application/json"},
        json={"value": chunk},
    )
    response = client.send_request(request)
    if response.status_code != 200:
        raise HttpResponseError(response=response)
    return response.json().get("value") or []


def _sort_results(
    chunk: list[dict[str, Any]],
    results: list[dict[str, Any]],
    tries: dict[str, int],
    refused: list[Refused],
    lock: threading.Lock,
) -> list[dict[str, Any]]:
    """Record the refusals of one answer; returns the bodies to send again."""
    by_id = {body["id"]: body for body in chunk}
    again = []
    for result in results:
        status = str(result.get("status", "")).lower()
        if status == "success":
            continue
        task_id = result.get("taskId", "")
        error = result.get("error") or {}
        message = error.get("message")
        message = message.get("value", "") if isinstance(message, dict) else str(message or "")
        with lock:
            tries[task_id] = tries.get(task_id, 0) + 1
            if status == "servererror" and tries[task_id] < _SERVER_ERROR_TRIES and task_id in by_id:
                again.append(by_id[task_id])
            else:
                refused.append(Refused(task_id, error.get("code", status or "unknown"), message))
    return again


def _code(exc: HttpResponseError) -> str | None:
    error = getattr(exc, "error", None)
    code = getattr(error, "code", None)
    if code:
        return code
    try:
        return (exc.response.json().get("code")) if exc.response is not None else None
    except Exception:  # noqa: BLE001 - a body that is not JSON has no code
        return None
