"""Execute a Plan in dependency order, wait for the work, download the results.

Level-triggered: every step reads what it needs from the services, so a run killed at any point
is repaired by the next one (which plans again from live state). The steps live in modules named
for what they apply (storage, pool, jobs, results, download); the Applier holds what they share.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any, Protocol

from azure.core.exceptions import HttpResponseError

from batchspec import waiting
from batchspec.apply import download, grants, jobs, payloads, pool, results, storage
from batchspec.apply.results import EXIT_OK, Outcome
from batchspec.errors import ApplyError
from batchspec.live import batch as live_batch
from batchspec.model import FINGERPRINT, OWNER, DesiredState, metadata
from batchspec.plan import Action, Plan
from batchspec.services.targets import Target
from batchspec.timeouts import SETUP_TIMEOUT

_STDERR_TAIL = 2048


class Reporter(Protocol):
    """How apply tells the user what it does; ui implements it for terminals and pipes."""

    def step(self, text: str) -> None: ...
    def note(self, text: str) -> None: ...
    def progress(self, label: str, total: int) -> AbstractContextManager[Callable[[int], None]]: ...
    def task_counts(self, counts: dict[str, int], elapsed: float) -> None: ...


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
        self._said_no_identity = False

    def run(self) -> Outcome:
        # What comes before the tasks (deleting a replaced pool or job, allocating, resizing
        # and rebooting nodes) has its own limit: on Azure it takes minutes, not task time.
        self.setup = waiting.Deadline(self.setup_timeout, "--setup-timeout (wait.setupTimeout)")
        self._check_containers()
        for step in (storage.containers, storage.blobs, pool.pool, jobs.job, jobs.tasks):
            self.guard()
            step(self)
        if results.wait(self):
            self.guard()
            download.download(self)
        tasks = results.summarize(self)
        pool_id = self.desired.pool.id
        live_pool = live_batch.read_pool(self.t.batch, pool_id)
        nodes = live_batch.read_nodes(self.t.batch, pool_id) if live_pool else []
        prepared = live_batch.read_preparations(self.t.batch, self.desired.job.id) if self.prepares else []
        self.outcome.causes = results.causes(self, tasks, nodes, live_pool, prepared)
        self.outcome.seen = {"pool": live_pool, "nodes": nodes, "tasks": tasks}
        self.outcome.exit_code = results.exit_code(self.outcome)
        return self.outcome

    def _check_containers(self) -> None:
        """Before anything is made: every registry password is at hand (UsageError otherwise),
        and the local target, which has no container runtime, says once that it runs the
        commands of container tasks on this host."""
        pool = self.desired.pool
        for registry in pool.containers.registries if pool.containers else ():
            if registry.password_env:
                payloads.registry_password(registry)
        if self.t.name == "local" and (pool.containers or any(t.container for t in self.desired.tasks)):
            self.ui.note(
                "the local target has no container runtime: container tasks run their commands on "
                "this host, not in their images (docs/emulator.md)"
            )

    @property
    def prepares(self) -> bool:
        """Whether the job has a preparation task (its statuses per node are worth reading)."""
        return self.desired.job.preparation_task is not None

    def grants(self, *, start_task: bool) -> grants.Grants:
        """How the nodes reach storage: the pool's identity, else SAS URLs (longer-lived for the
        start task, which nodes run whenever they join or reboot)."""
        identity = self.desired.pool.identity
        if identity and self.t.name == "local":
            if not self._said_no_identity:  # once, not for the pool and again for the tasks
                self.ui.note(
                    "pool.identityReference: the local services have no managed identities; SAS URLs instead"
                )
                self._said_no_identity = True
            identity = None
        make = grants.for_start_task if start_task else grants.for_tasks
        return make(self.t.sas, identity, self.t.storage_endpoint)

    def check_own_create(self, kind: str, live: dict[str, Any] | None, fingerprint: str) -> None:
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

    def wait_gone(self, read: Callable[[], Any], what: str) -> None:
        waiting.until(
            lambda: read() is None,
            self.setup,
            self.poll,
            f"{what} to be deleted",
            on_first_wait=lambda: self.ui.step(f"waiting for {what} to be deleted"),
        )

    def tail(self, download: Callable[..., Any], properties: Callable[[], Any]) -> str | None:
        try:
            data = live_batch.file_bytes(download, properties, last=_STDERR_TAIL)
        except HttpResponseError:
            return None
        return data.decode("utf-8", errors="replace").strip() or None

    def tasks_will_run(self) -> bool:
        return any(c.action in (Action.CREATE, Action.REPLACE, Action.RERUN) for c in self.plan.of("task"))
