"""Gather the live state a plan is made from, in as few requests as the services allow."""

from __future__ import annotations

import dataclasses
import hashlib
import stat
import threading
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from azure.core.exceptions import ResourceNotFoundError

from batchspec.live import batch, quotas, storage
from batchspec.model import (
    STORAGE_UPLOADS,
    TASK_FINGERPRINT_ENV,
    TASKS_STAMP,
    DesiredState,
    LiveBlob,
    LiveState,
    TaskTally,
    metadata,
    uploads_digest,
)
from batchspec.services.targets import Target
from batchspec.spec.files import safe_local_path


class EarlyListings:
    """Listings of the containers a spec uploads to, started while the rest of the spec is built
    (`spec.build`'s `on_uploads`), for `read` to take: Azurite lists 100,000 blobs in ~18 s on
    one thread of its own and the build takes 5-8 s of ours, at once rather than one after the
    other. A container that carries an uploads stamp is not listed yet (`_listing`). `connect`
    makes the target when the first listing starts (a spec that fails before starts no local
    service). The threads are daemons: a spec error ends the command at once."""

    def __init__(self, connect: Callable[[], Target], *, refresh: bool = False):
        self._connect = connect
        self._refresh = refresh
        self._target: Target | None = None
        self._started: dict[str, Future] = {}

    def target(self) -> Target:
        if self._target is None:
            self._target = self._connect()
        return self._target

    def start(self, containers: list[str]) -> None:
        target = self.target()
        for name in containers:
            future: Future = Future()
            self._started[name] = future
            threading.Thread(target=self._list, args=(target, name, future), daemon=True).start()

    def _list(self, target: Target, name: str, future: Future) -> None:
        try:
            stamp = None if self._refresh else storage.uploads_stamp(target.blob, name)
            future.set_result(_listing(target, name, stamp))
        except ResourceNotFoundError:
            future.set_result(None)  # no such container (yet)
        except BaseException as exc:  # noqa: BLE001 - raised where the listing is taken
            future.set_exception(exc)

    def take(self, container: str) -> Future | None:
        return self._started.pop(container, None)

    def close(self) -> None:
        if self._target is not None:
            self._target.close()


def read(
    target: Target,
    desired: DesiredState,
    *,
    with_download: bool = True,
    with_account: bool = True,
    early: EarlyListings | None = None,
    tasks_digest: Callable[[], str] | None = None,
    refresh: bool = False,
) -> LiveState:
    """Read containers, uploaded blobs, the pool, the job and its tasks (concurrently); the
    account's quotas and usage when the plan may add to them (live/quotas.py); the listings
    `early` started are taken as they are. `tasks_digest()`, the spec's TASKS_STAMP, lets a job
    that carries it be counted instead of read (`_read_tasks`), as an uploads stamp lets a
    container go unlisted (`_listing`); `refresh` reads everything, whatever the stamps say."""
    tasks_digest = None if refresh else tasks_digest
    read_at = datetime.now(timezone.utc)
    with ThreadPoolExecutor(max_workers=4) as pool:
        containers_f = pool.submit(storage.read_containers, target.blob)
        pool_f = pool.submit(batch.read_pool, target.batch, desired.pool.id)
        job_f = pool.submit(batch.read_job, target.batch, desired.job.id)
        tasks_f = pool.submit(_read_tasks, target, desired, job_f, tasks_digest)
        image = desired.pool.image.to_dict()
        # A Marketplace image (not a gallery image id): its node agent and Batch's end of support.
        image_f = pool.submit(batch.supported_image, target.batch, image) if image.get("publisher") else None
        containers = containers_f.result()
        wanted = {c.name for c in desired.containers}
        with_uploads = {b.container for b in desired.blobs}
        blob_fs = {
            name: (early and early.take(name))
            or pool.submit(
                _listing, target, name, None if refresh else containers[name].metadata.get(STORAGE_UPLOADS)
            )
            for name in with_uploads
            if name in containers
        }
        pending_f = None
        if with_download and desired.download and desired.download.container in containers:
            pending_f = pool.submit(download_pending, target, desired)
        live_pool, job = pool_f.result(), job_f.result()
        account_f = (
            pool.submit(quotas.read, target, desired)
            if with_account and quotas.wanted(desired, live_pool, job)
            else None
        )
        blobs, stamped = _taken(target, desired, {name: f.result() for name, f in blob_fs.items()})
        tasks, tally = tasks_f.result()
        account, account_unread = account_f.result() if account_f else (None, None)
        supported = image_f.result() if image_f else None
        pending = list(pending_f.result()) if pending_f else []
    owned_elsewhere = sorted(n for n, c in containers.items() if c.owner == desired.name and n not in wanted)
    return LiveState(
        containers={n: c for n, c in containers.items() if n in wanted},
        blobs=blobs,
        pool=live_pool,
        job=job if job else None,
        tasks=tasks,
        tally=tally,
        uploads_stamped=stamped,
        node_agent_sku_id=(supported or {}).get("nodeAgentSKUId"),
        image_listed=None if image_f is None else supported is not None,
        image_end_of_life=(supported or {}).get("batchSupportEndOfLife"),
        image_capabilities=tuple((supported or {}).get("capabilities") or ()) if supported else None,
        read_at=read_at,
        download_pending=pending,
        owned_containers=owned_elsewhere,
        account=account,
        account_unread=account_unread,
    )


_FAILED = "executionInfo/result eq 'failure'"


def _read_tasks(
    target: Target, desired: DesiredState, job_f: Future, tasks_digest: Callable[[], str] | None
) -> tuple[list[PlannedTask], TaskTally | None]:
    """The job's tasks as the planner reads them. When the job carries the spec's TASKS_STAMP
    (apply wrote it once the job held exactly the spec's tasks) and its counts add up to them,
    they are counted, and only the failed ones read: 100,000 tasks are 100 pages, this is 2 or
    3 requests; a job of one page is read, which is one. Failed tasks of a spec with
    dependencies are read in full (what depends on them and how it stands is the plan's to say)."""
    counted = tasks_digest is not None and batch.pages(len(desired.tasks)) > 1
    tally = _tally(target, desired, job_f.result(), tasks_digest) if counted else None
    if tally is not None:
        failed = batch.read_tasks(target.batch, desired.job.id, where=_FAILED, keep=planner_view())
        if not failed or not any(t.depends_on for t in desired.tasks):
            return failed, dataclasses.replace(tally, failed=len(failed))
    ids = [t.id for t in desired.tasks]
    return batch.read_tasks(target.batch, desired.job.id, ids=ids, keep=planner_view()), None


def _tally(
    target: Target, desired: DesiredState, job: dict[str, Any] | None, tasks_digest: Callable[[], str]
) -> TaskTally | None:
    stamp = metadata(job).get(TASKS_STAMP) if job else None
    if not stamp or stamp != tasks_digest():
        return None
    counts = batch.count_tasks(target.batch, desired.job.id)
    if counts is None:
        return None
    tally = TaskTally(
        digest=stamp,
        active=counts.get("active", 0),
        running=counts.get("running", 0),
        completed=counts.get("completed", 0),
        failed=counts.get("failed", 0),
    )
    if tally.total != len(desired.tasks):  # a task deleted or added since: read them all
        return None
    # The counts may lag the tasks by seconds: "none left to run" is checked exactly.
    running = tally.active + tally.running
    if not running and batch.any_task(target.batch, desired.job.id, "state ne 'completed'"):
        return None
    return tally


class PlannedTask(Mapping[str, Any]):
    """A live task as the planner reads it: its REST JSON, read-only, reduced to its id, state,
    command line, fingerprint (`model.task_fingerprint`: the one environment setting) and how it
    ended (`plan.stamps.failed`, a rerun's reason: result, exit code, failure code). In slots,
    with what tasks share (a state, a command line, how they ended) kept once: ~270 bytes a task,
    where the task as listed took ~2,300 and a dict of the same ~650."""

    __slots__ = ("_id", "_state", "_command", "_fingerprint", "_ended")
    _KEYS = ("id", "state", "commandLine", "environmentSettings", "executionInfo")

    def __init__(self, task_id: str, state: str | None, command: str | None, fingerprint: str | None, ended):
        self._id, self._state, self._command = task_id, state, command
        self._fingerprint, self._ended = fingerprint, ended

    def __getitem__(self, key: str) -> Any:
        if key == "id":
            return self._id
        if key == "state" and self._state is not None:
            return self._state
        if key == "commandLine" and self._command is not None:
            return self._command
        if key == "environmentSettings" and self._fingerprint is not None:
            return [{"name": TASK_FINGERPRINT_ENV, "value": self._fingerprint}]
        if key == "executionInfo" and self._ended is not None:
            return self._ended
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return (k for k in self._KEYS if k in self)

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def __repr__(self) -> str:
        return f"PlannedTask({dict(self)!r})"


def planner_view() -> Callable[[dict[str, Any]], PlannedTask]:
    """A `keep` for `batch.read_tasks`: each listed task as a PlannedTask, as its page arrives."""
    shared: dict[Any, Any] = {}

    def view(task: dict[str, Any]) -> PlannedTask:
        fingerprint = None
        for setting in task.get("environmentSettings") or ():
            if setting.get("name") == TASK_FINGERPRINT_ENV:
                fingerprint = setting.get("value")
        info = task.get("executionInfo")
        ended = None
        if info:
            failure = (info.get("failureInfo") or {}).get("code")
            key = ("executionInfo", info.get("result"), info.get("exitCode"), failure)
            if key not in shared:
                ended = {k: info[k] for k in ("result", "exitCode") if k in info}
                if info.get("failureInfo"):
                    ended["failureInfo"] = {"code": failure}
                shared[key] = ended
            ended = shared[key]
        state, command = (shared.setdefault(v, v) for v in (task.get("state"), task.get("commandLine")))
        return PlannedTask(task["id"], state, command, fingerprint, ended)

    return view


@dataclasses.dataclass(frozen=True)
class _Stamped:
    """A container not listed (yet): its STORAGE_UPLOADS stamp."""

    digest: str


def _listing(target: Target, container: str, stamp: str | None) -> dict[str, LiveBlob] | _Stamped:
    return _Stamped(stamp) if stamp else _uploaded(target, container)


def _taken(
    target: Target, desired: DesiredState, found: dict[str, dict[str, LiveBlob] | _Stamped | None]
) -> tuple[dict[str, dict[str, LiveBlob]], tuple[str, ...]]:
    """The listings, and the containers whose stamp stands for them: the spec's uploads there
    are more than one listing page (one is read as quickly as a stamp) and are what the stamp
    says apply left. Apply wrote it once every upload there was the spec's (it takes it off
    before it changes a blob): a blob changed behind its back goes unseen until `--refresh`,
    as the plan notes. 100,000 blobs are 20 pages, ~18 s of Azurite's one thread."""
    blobs: dict[str, dict[str, LiveBlob]] = {}
    stamped = []
    for name, listing in found.items():
        if isinstance(listing, _Stamped):
            mine = [b for b in desired.blobs if b.container == name]
            if storage.pages(len(mine)) > 1 and listing.digest == uploads_digest(mine):
                stamped.append(name)
                continue
            listing = None
        blobs[name] = _uploaded(target, name) if listing is None else listing  # None: made since
    return blobs, tuple(sorted(stamped))


def _uploaded(target: Target, container: str) -> dict[str, LiveBlob]:
    """The blobs of a container the spec uploads to, as the plan compares them."""
    return storage.read_blobs(target.blob, container, compared=True)


def download_pending(target: Target, desired: DesiredState) -> dict[str, int]:
    """Blobs of the download container whose local copy is missing or differs, with their sizes.

    A local copy of the blob's size whose modification time is the blob's (downloads set it) is
    taken as the same without reading it, as rsync and azcopy's sync do; otherwise its MD5 is
    compared with the blob's when the service has one.
    """
    d = desired.download
    blobs = storage.read_blobs(target.blob, d.container, d.prefix)
    root = Path(d.to)
    resolved_root = root.resolve()
    pending: dict[str, int] = {}
    for name, blob in sorted(blobs.items()):
        local = safe_local_path(root, name, resolved_root=resolved_root)
        if local is None:
            pending[name] = blob.size  # refused at download time, with the reason
            continue
        try:
            st = local.stat()
        except OSError:
            st = None
        if st is None or not stat.S_ISREG(st.st_mode) or st.st_size != blob.size:
            pending[name] = blob.size
        elif blob.modified is not None and st.st_mtime_ns == int(blob.modified) * 10**9:
            # Exactly the stamp, to the nanosecond: a file written here since has a time of its own.
            continue
        elif blob.content_md5 and _md5(local) != blob.content_md5:
            pending[name] = blob.size
    return pending


def _md5(path: Path) -> bytes:
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.digest()
