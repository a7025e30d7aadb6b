"""Execute a Plan in dependency order, wait for the work, download the results.

Level-triggered: every step reads what it needs from the services, so a run killed at any point
is repaired by the next one (which plans again from live state).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from azure.core.exceptions import (
    HttpResponseError,
    ResourceExistsError,
    ResourceNotFoundError,
    ServiceRequestError,
)

from batchspec import grants, payloads, submit, transfer, waiting
from batchspec.errors import ApplyError
from batchspec.live import batch as live_batch
from batchspec.live import state as live_state
from batchspec.model import (
    FINGERPRINT,
    OWNER,
    STORAGE_FINGERPRINT,
    STORAGE_OWNER,
    DesiredState,
    metadata,
    task_fingerprint,
)
from batchspec.plan import Action, Plan, PoolHow, task_stamp
from batchspec.services.targets import Target

EXIT_OK, EXIT_ERROR, EXIT_TASK_FAILED, EXIT_TIMEOUT = 0, 1, 3, 4
_SETTLING_NODE_STATES = {
    "creating",
    "starting",
    "waitingforstarttask",
    "rebooting",
    "reimaging",
    "unknown",
    "leavingpool",
}
_STDERR_TAIL = 2048
SETUP_TIMEOUT = 1800.0  # seconds; Azure allocates nodes in minutes (a resize times out at 15 by default)
_OUTAGE = 300.0  # seconds of an unreachable Batch service that waiting for tasks rides out


class Reporter(Protocol):
    """How apply tells the user what it does; render.py implements it for terminals and pipes."""

    def step(self, text: str) -> None: ...
    def note(self, text: str) -> None: ...
    def progress(self, label: str, total: int) -> AbstractContextManager[Callable[[int], None]]: ...
    def task_counts(self, counts: dict[str, int], elapsed: float) -> None: ...


@dataclass
class TaskRow:
    id: str
    state: str
    node: str | None = None
    exit_code: int | None = None
    duration: float | None = None
    result: str | None = None
    failure: str | None = None
    stderr_tail: str | None = None


@dataclass
class Outcome:
    exit_code: int
    rows: list[TaskRow] = field(default_factory=list)
    uploaded: int = 0
    uploaded_bytes: int = 0
    submitted: int = 0
    downloaded: int = 0
    timed_out: bool = False
    problems: list[str] = field(default_factory=list)


class Applier:
    def __init__(
        self,
        target: Target,
        desired: DesiredState,
        plan: Plan,
        reporter: Reporter,
        *,
        parallelism: int = 16,
        timeout: float | None = None,
        setup_timeout: float = SETUP_TIMEOUT,
        guard: Callable[[], None] | None = None,
    ):
        self.t = target
        self.desired = desired
        self.plan = plan
        self.ui = reporter
        self.parallelism = parallelism
        self.timeout = timeout  # for the tasks, counted from when waiting for them begins
        self.setup_timeout = setup_timeout
        self.poll = target.poll
        self.outcome = Outcome(EXIT_OK)
        # Called before each step that writes (the lock's check): it raises to stop the apply.
        self.guard = guard or (lambda: None)

    def run(self) -> Outcome:
        # What comes before the tasks (deleting a replaced pool or job, allocating, resizing
        # and rebooting nodes) has its own limit: on Azure it takes minutes, not task time.
        self.setup = waiting.Deadline(self.setup_timeout, "--setup-timeout (wait.setupTimeout)")
        for step in (self._containers, self._blobs, self._pool, self._job, self._tasks):
            self.guard()
            step()
        if self._wait():
            self.guard()
            self._download()
        self.outcome.rows = self._rows()
        failed = [r for r in self.outcome.rows if r.result == "failure"]
        if self.outcome.timed_out:
            self.outcome.exit_code = EXIT_TIMEOUT
        elif failed:
            self.outcome.exit_code = EXIT_TASK_FAILED
        elif self.outcome.problems:
            self.outcome.exit_code = EXIT_ERROR
        return self.outcome

    # -- storage ----------------------------------------------------------------------------

    def _containers(self) -> None:
        owner = self.desired.name
        by_name = {c.name: c for c in self.desired.containers}
        for change in self.plan.of("container"):
            if change.action == Action.DELETE:
                self.ui.step(f"deleting container {change.id}")
                try:
                    self.t.blob.delete_container(change.id)
                except ResourceNotFoundError:
                    pass
                continue
            container = by_name[change.id]
            meta = {
                **dict(container.metadata),
                STORAGE_OWNER: owner,
                STORAGE_FINGERPRINT: container.fingerprint(),
            }
            client = self.t.blob.get_container_client(change.id)
            if change.action == Action.CREATE:
                self.ui.step(f"creating container {change.id}")
                if self._create_container(client, meta):
                    continue
            client.set_container_metadata(meta)

    def _create_container(self, client: Any, meta: dict[str, str]) -> bool:
        """Create a container; False if it exists and is this spec's (a retried create).

        A container deleted moments ago (by destroy) cannot be created again for 30 s or more:
        the service answers 409 ContainerBeingDeleted meanwhile, and 404 to everything else on
        it (Delete Container, Azure Storage docs). That is waited out within the setup limit.
        """
        name = client.container_name

        def created() -> str | None:
            try:
                client.create_container(metadata=meta)
                return "created"
            except ResourceExistsError as exc:
                if getattr(exc, "error_code", None) == "ContainerBeingDeleted":
                    return None
                try:
                    have = client.get_container_properties().metadata or {}
                except ResourceNotFoundError:
                    return None  # deleted since: create it again
            if have.get(STORAGE_OWNER) != self.desired.name:
                raise ApplyError(
                    f"container {name!r} appeared meanwhile and is not owned by this spec; not touching it"
                )
            return "ours"

        return (
            waiting.until(
                created,
                self.setup,
                self.poll,
                f"container {name} (being deleted) to be free to create",
                on_first_wait=lambda: self.ui.note(
                    f"container {name} is still being deleted by the service; waiting to create it again"
                ),
            )
            == "created"
        )

    def _blobs(self) -> None:
        changes = self.plan.of("blob")
        puts = {c.id for c in changes if c.action in (Action.CREATE, Action.UPDATE)}
        blobs = [b for b in self.desired.blobs if b.ref in puts]
        if blobs:
            total = sum(b.size for b in blobs)
            self.ui.step(f"uploading {len(blobs)} file(s), {total} bytes")
            with self.ui.progress("upload", len(blobs)) as advance:
                failures = transfer.upload(
                    self.t,
                    blobs,
                    self.desired.name,
                    parallelism=self.parallelism,
                    on_done=lambda b: advance(1),
                )
            if failures:
                first = "; ".join(f"{b.ref}: {_short(e)}" for b, e in failures[:3])
                raise ApplyError(f"{len(failures)} upload(s) failed: {first}")
            self.outcome.uploaded, self.outcome.uploaded_bytes = len(blobs), total
        for change in (c for c in changes if c.action == Action.DELETE):
            container, _, name = change.id.partition("/")
            try:
                self.t.blob.get_blob_client(container, name).delete_blob()
            except ResourceNotFoundError:
                pass

    # -- pool -------------------------------------------------------------------------------

    def _pool(self) -> None:
        pool = self.desired.pool
        changes = self.plan.of("pool")
        change = changes[0] if changes else None
        if change and change.action in (Action.CREATE, Action.REPLACE):
            if change.action == Action.REPLACE:
                self.ui.step(f"deleting pool {pool.id} to replace it")
                self._delete_pool(pool.id)
            else:
                self._wait_gone(lambda: live_batch.read_pool(self.t.batch, pool.id), f"pool {pool.id}")
            agent = change.how.node_agent_sku_id or pool.node_agent_sku_id
            if not agent:
                raise ApplyError(
                    f"no node agent SKU for image {pool.image.to_dict()}: the service "
                    "lists no such supported image",
                    hint="set pool.nodeAgentSkuId",
                )
            self.ui.step(f"creating pool {pool.id} ({pool.vm_size})")
            try:
                body = payloads.pool(pool, self.desired.name, agent, self._grants(start_task=True))
                self.t.batch.create_pool(body)
            except ResourceExistsError:
                self._check_own_create(
                    "pool", live_batch.read_pool(self.t.batch, pool.id), pool.fingerprint()
                )
        elif change and change.action == Action.UPDATE:
            self._update_pool(change.how)
        if self._tasks_will_run():
            self._wait_for_nodes()

    def _update_pool(self, how: PoolHow) -> None:
        pool = self.desired.pool
        client = self.t.batch
        # The properties (the start task and its storage access) first: nodes that the resize or
        # autoscale below adds run the start task as it is then.
        if how.properties:
            self.ui.step(f"updating pool {pool.id} (start task, metadata)")
            client.replace_pool_properties(
                pool.id, payloads.pool_properties(pool, self.desired.name, self._grants(start_task=True))
            )
        if how.disable_autoscale:
            client.disable_pool_auto_scale(pool.id)
        if how.autoscale:
            body = {"autoScaleFormula": pool.autoscale_formula}
            if pool.autoscale_interval:
                body["autoScaleEvaluationInterval"] = pool.autoscale_interval
            client.enable_pool_auto_scale(pool.id, body)
        if how.resize:
            self._wait_steady()
            self.ui.step(
                f"resizing pool {pool.id} to {pool.target_dedicated_nodes} dedicated, "
                f"{pool.target_low_priority_nodes} low-priority node(s)"
            )
            poller = client.begin_resize_pool(
                pool.id,
                {
                    "targetDedicatedNodes": pool.target_dedicated_nodes,
                    "targetLowPriorityNodes": pool.target_low_priority_nodes,
                },
                polling_interval=self.poll,
            )
            waiting.finish(poller, self.setup, f"pool {pool.id} to resize")
        if how.reboot:
            nodes = live_batch.read_nodes(client, pool.id)
            self.ui.step(f"rebooting {len(nodes)} node(s) to run the new start task")
            # All at once: a reboot takes minutes on Azure. requeue: tasks running there go
            # back to the queue, to run after the new start task.
            pollers = []
            for node in nodes:
                try:
                    poller = client.begin_reboot_node(
                        pool.id, node["id"], {"nodeRebootOption": "requeue"}, polling_interval=self.poll
                    )
                    pollers.append((node["id"], poller))
                except HttpResponseError as exc:
                    self.outcome.problems.append(f"node {node['id']}: reboot failed: {_short(exc)}")
            for node_id, poller in pollers:
                try:
                    waiting.finish(poller, self.setup, f"node {node_id} to reboot")
                except HttpResponseError as exc:
                    self.outcome.problems.append(f"node {node_id}: reboot failed: {_short(exc)}")

    def _delete_pool(self, pool_id: str) -> None:
        try:
            poller = self.t.batch.begin_delete_pool(pool_id, polling_interval=self.poll)
            waiting.finish(poller, self.setup, f"pool {pool_id} to be deleted")
        except ResourceNotFoundError:
            return
        self._wait_gone(lambda: live_batch.read_pool(self.t.batch, pool_id), f"pool {pool_id}")

    def _wait_steady(self) -> None:
        pool_id = self.desired.pool.id

        def steady() -> bool:
            live = live_batch.read_pool(self.t.batch, pool_id) or {}
            return live.get("allocationState", "steady") == "steady"

        waiting.until(steady, self.setup, self.poll, f"pool {pool_id} to finish resizing")

    def _wait_for_nodes(self) -> None:
        pool = self.desired.pool
        if pool.autoscale_formula or not (pool.target_dedicated_nodes or pool.target_low_priority_nodes):
            self.ui.note(f"pool {pool.id} has no fixed node count: tasks wait for nodes")
            return

        def settled() -> bool:
            live = live_batch.read_pool(self.t.batch, pool.id) or {}
            nodes = live_batch.read_nodes(self.t.batch, pool.id)
            failed = [n for n in nodes if n.get("state") == "starttaskfailed"]
            if failed:
                raise ApplyError(self._start_task_failure(failed))
            if (
                live.get("allocationState") == "steady"
                and nodes
                and not any(n.get("state") in _SETTLING_NODE_STATES for n in nodes)
            ):
                if not any(n.get("state") in ("idle", "running") for n in nodes):
                    states = sorted({n.get("state") for n in nodes})
                    raise ApplyError(f"pool {pool.id} has no usable node (states: {', '.join(states)})")
                return True
            for err in live.get("resizeErrors") or []:
                raise ApplyError(
                    f"pool {pool.id} could not allocate nodes: {err.get('code')}: {err.get('message')}"
                )
            return False

        waiting.until(
            settled,
            self.setup,
            self.poll,
            f"the nodes of pool {pool.id}",
            on_first_wait=lambda: self.ui.step(f"waiting for the nodes of pool {pool.id}"),
        )

    def _start_task_failure(self, nodes: list[dict[str, Any]]) -> str:
        node = nodes[0]
        info = node.get("startTaskInfo") or {}
        failure = (info.get("failureInfo") or {}).get("message") or ""
        stderr = self._tail(
            lambda **kw: self.t.batch.download_node_file(
                self.desired.pool.id, node["id"], "startup/stderr.txt", **kw
            ),
            lambda: self.t.batch.get_node_file_properties(
                self.desired.pool.id, node["id"], "startup/stderr.txt"
            ),
        )
        lines = [
            f"the start task failed on {len(nodes)} node(s) of pool {self.desired.pool.id}; "
            f"node {node['id']}: exit code {info.get('exitCode')} {failure}".rstrip()
        ]
        if stderr:
            lines.append("stderr (tail):\n" + _indent(stderr))
        return "\n".join(lines)

    # -- job and tasks ----------------------------------------------------------------------

    def _job(self) -> None:
        job = self.desired.job
        changes = self.plan.of("job")
        if not changes:
            return
        change = changes[0]
        owner = self.desired.name
        read = lambda: live_batch.read_job(self.t.batch, job.id)  # noqa: E731
        if change.action == Action.REPLACE:
            self.ui.step(f"deleting job {job.id} to replace it")
            try:
                poller = self.t.batch.begin_delete_job(job.id, polling_interval=self.poll)
                waiting.finish(poller, self.setup, f"job {job.id} to be deleted")
            except ResourceNotFoundError:
                pass
        if change.action in (Action.CREATE, Action.REPLACE):
            self._wait_gone(read, f"job {job.id}")
            self.ui.step(f"creating job {job.id}")
            try:
                self.t.batch.create_job(payloads.job(job, owner))
            except ResourceExistsError:
                self._check_own_create("job", read(), job.fingerprint())
        elif change.action == Action.UPDATE:
            self.ui.step(f"updating job {job.id}")
            self.t.batch.update_job(job.id, payloads.job_update(job, owner))

    def _tasks_will_run(self) -> bool:
        return any(c.action in (Action.CREATE, Action.REPLACE, Action.RERUN) for c in self.plan.of("task"))

    def _tasks(self) -> None:
        changes = self.plan.of("task")
        job_id = self.desired.job.id
        removals = [c.id for c in changes if c.action in (Action.DELETE, Action.REPLACE, Action.RERUN)]
        if removals:
            self.ui.step(f"removing {len(removals)} task(s)")
            with ThreadPoolExecutor(max_workers=self.parallelism) as pool:
                list(pool.map(lambda tid: self._delete_task(job_id, tid), removals))
        wanted = {c.id for c in changes if c.action in (Action.CREATE, Action.REPLACE, Action.RERUN)}
        tasks = [t for t in self.desired.tasks if t.id in wanted]
        if not tasks:
            return
        self.ui.step(f"submitting {len(tasks)} task(s)")
        stamps = {t.id: task_stamp(t, self.desired.pool) for t in tasks}
        grants = self._grants(start_task=False)
        bodies = [payloads.task(t, stamps[t.id], grants) for t in tasks]
        refused = submit.add_tasks(self.t.batch, job_id, bodies, threads=min(self.parallelism, 8))
        if refused:
            self._check_refused(refused, stamps)
        self.outcome.submitted = len(tasks)

    def _delete_task(self, job_id: str, task_id: str) -> None:
        try:
            self.t.batch.delete_task(job_id, task_id)
        except ResourceNotFoundError:
            pass

    def _check_refused(self, refused: list[submit.Refused], stamps: dict[str, str]) -> None:
        """TaskExists with our own fingerprint is a retried request that had succeeded; any
        other refusal, a TaskExists of somebody else's task included, fails the apply."""
        problems = []
        existing = None
        for r in refused:
            if r.code == "TaskExists":
                if existing is None:
                    existing = {t["id"]: t for t in live_batch.read_tasks(self.t.batch, self.desired.job.id)}
                live = existing.get(r.task_id)
                if live and task_fingerprint(live) == stamps.get(r.task_id):
                    continue
            problems.append(f"task {r.task_id}: {r.code} {r.message}".strip())
        if problems:
            raise ApplyError(f"{len(problems)} task(s) could not be added: " + "; ".join(problems[:5]))

    # -- waiting, downloads, summary --------------------------------------------------------

    def _wait(self) -> bool:
        """Wait until every task of the job completed; False on timeout.

        The tasks run on without us, so an unreachable service (a restart, a network blip) is
        waited out here, up to `_OUTAGE` in a row, rather than failing the apply.
        """
        job_id = self.desired.job.id
        start = time.monotonic()
        deadline = waiting.Deadline(self.timeout, "--timeout (wait.timeout)")
        said = False
        outage_since: float | None = None
        while True:
            try:
                counts = self.t.batch.get_job_task_counts(job_id).task_counts
                done = counts.active + counts.running == 0 and self._none_incomplete(job_id)
            except ServiceRequestError as exc:
                now = time.monotonic()
                if outage_since is None:
                    outage_since = now
                    self.ui.note("the Batch service cannot be reached; still waiting for it")
                elif now - outage_since > _OUTAGE:
                    raise ApplyError(
                        f"the Batch service could not be reached for {_OUTAGE:.0f} s ({_short(exc)}); "
                        "the tasks go on: run apply again to resume waiting"
                    ) from None
                if self._expired_or_sleep(deadline):
                    return False
                continue
            outage_since = None
            figures = {
                "active": counts.active,
                "running": counts.running,
                "succeeded": counts.succeeded,
                "failed": counts.failed,
            }
            if done:
                if said:
                    self.ui.task_counts(figures, time.monotonic() - start)
                return True
            if not said:
                self.ui.step("waiting for tasks")
                said = True
            self.ui.task_counts(figures, time.monotonic() - start)
            if self._expired_or_sleep(deadline):
                return False

    def _expired_or_sleep(self, deadline: waiting.Deadline) -> bool:
        """True (and the outcome marked timed out) once `deadline` passed; else sleep a poll."""
        if deadline.expired():
            self.outcome.timed_out = True
            return True
        time.sleep(self.poll)
        return False

    def _none_incomplete(self, job_id: str) -> bool:
        # Task counts are eventually consistent on the real service; a filtered page is not.
        page = self.t.batch.list_tasks(job_id, filter="state ne 'completed'", select=["id"], max_results=1)
        return next(iter(page), None) is None

    def _download(self) -> None:
        d = self.desired.download
        if not d:
            return
        pending = live_state.download_pending(self.t, self.desired)
        if not pending:
            return
        root = Path(d.to)
        refused = [n for n in pending if transfer.safe_local_path(root, n) is None]
        for name in refused:
            self.outcome.problems.append(
                f"refused to download blob {name!r}: its name would be written outside {root}"
            )
        names = [n for n in pending if n not in refused]
        self.ui.step(f"downloading {len(names)} blob(s) to {root}")
        with self.ui.progress("download", len(names)) as advance:
            failures = transfer.download(
                self.t,
                d.container,
                names,
                root,
                parallelism=self.parallelism,
                sizes=pending,
                on_done=lambda n: advance(1),
            )
        for name, exc in failures:
            self.outcome.problems.append(f"download of {name!r} failed: {_short(exc)}")
        self.outcome.downloaded = len(names) - len(failures)

    def _rows(self) -> list[TaskRow]:
        fields = ["id", "state", "executionInfo", "nodeInfo"]
        live = {t["id"]: t for t in live_batch.read_tasks(self.t.batch, self.desired.job.id, fields)}
        rows = []
        for task in self.desired.tasks:
            t = live.get(task.id)
            if t is None:
                rows.append(TaskRow(task.id, "missing"))
                continue
            info = t.get("executionInfo") or {}
            failure = info.get("failureInfo") or {}
            rows.append(
                TaskRow(
                    id=task.id,
                    state=t.get("state", "?"),
                    node=(t.get("nodeInfo") or {}).get("nodeId"),
                    exit_code=info.get("exitCode"),
                    duration=_duration(info),
                    result=info.get("result"),
                    failure=f"{failure.get('code')}: {failure.get('message')}" if failure else None,
                )
            )
        for row in [r for r in rows if r.result == "failure"][:10]:
            row.stderr_tail = self._tail(
                lambda tid=row.id, **kw: self.t.batch.download_task_file(
                    self.desired.job.id, tid, "stderr.txt", **kw
                ),
                lambda tid=row.id: self.t.batch.get_task_file_properties(
                    self.desired.job.id, tid, "stderr.txt"
                ),
            )
        return rows

    def _tail(self, download: Callable[..., Any], properties: Callable[[], Any]) -> str | None:
        try:
            size = _content_length(properties())
            start = max(0, size - _STDERR_TAIL) if size else 0
            kwargs = {"ocp_range": f"bytes={start}-{size - 1}"} if size else {}
            data = b"".join(download(**kwargs)) if size != 0 else b""
            return data.decode("utf-8", errors="replace").strip() or None
        except HttpResponseError:
            return None

    # -- helpers ----------------------------------------------------------------------------

    def _grants(self, *, start_task: bool) -> grants.Grants:
        """How the nodes reach storage: the pool's identity, else SAS URLs (longer-lived for the
        start task, which nodes run whenever they join or reboot)."""
        identity = self.desired.pool.identity
        if identity and self.t.name == "local":
            self.ui.note(
                "pool.identityReference: the local services have no managed identities; SAS URLs instead"
            )
            identity = None
        make = grants.for_start_task if start_task else grants.for_tasks
        return make(self.t.sas, identity, self.t.storage_endpoint)

    def _check_own_create(self, kind: str, live: dict[str, Any] | None, fingerprint: str) -> None:
        """A create answered 'exists': fine if it is this spec's own, as asked for (a retried
        request whose first attempt the service had done); otherwise someone else made it."""
        meta = metadata(live)
        if live and meta.get(OWNER) == self.desired.name and meta.get(FINGERPRINT) == fingerprint:
            return
        raise ApplyError(
            f"{kind} {(live or {}).get('id', '')!r} appeared meanwhile and is not this spec's "
            "as planned; not touching it",
            hint="run plan again",
        )

    def _wait_gone(self, read: Callable[[], Any], what: str) -> None:
        waiting.until(
            lambda: read() is None,
            self.setup,
            self.poll,
            f"{what} to be deleted",
            on_first_wait=lambda: self.ui.step(f"waiting for {what} to be deleted"),
        )


def _content_length(props: Any) -> int | None:
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


def _duration(info: dict[str, Any]) -> float | None:
    from datetime import datetime

    start, end = info.get("startTime"), info.get("endTime")
    if not start or not end:
        return None
    try:
        parse = lambda v: v if isinstance(v, datetime) else datetime.fromisoformat(v.replace("Z", "+00:00"))  # noqa: E731
        return (parse(end) - parse(start)).total_seconds()
    except (ValueError, TypeError):
        return None


def _short(exc: BaseException) -> str:
    text = getattr(exc, "message", None) or str(exc)
    return text.splitlines()[0][:300] if text else type(exc).__name__


def _indent(text: str) -> str:
    return "\n".join("    " + line for line in text.splitlines())
