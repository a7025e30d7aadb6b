"""The records the pipeline passes along: the desired state, the live state, and the tags.

The desired state: small immutable records, each with a canonical form and a fingerprint. The
spec layer builds them; the planner compares their fingerprints with the ones stored on live
resources. `to_dict()` is the canonical, JSON-ready form (camelCase as in the Batch REST API);
the fingerprint is the sha256 of it, so anything that changes the form changes the fingerprint.

The live state: what `live` reads from the services, as the planner compares it (Batch
resources stay the REST JSON the service returned).

Over 400 lines: the desired records, the live ones and the tags are the pipeline's vocabulary,
read together in one place.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any

from batchspec.errors import SpecWarning

Pairs = tuple[tuple[str, str], ...]

# -- the tags batchspec writes on what it creates (live reads them, apply writes them) ---------
# Batch metadata names may hold hyphens; blob storage metadata names must be C# identifiers, so
# storage uses underscores for the same tags.
OWNER = "batchspec-owner"
FINGERPRINT = "batchspec-fingerprint"
STORAGE_OWNER = "batchspec_owner"
STORAGE_FINGERPRINT = "batchspec_fingerprint"
STORAGE_SHA256 = "batchspec_sha256"
# On a container: the digest of the uploads apply left in it, every one the spec's (see
# `uploads_digest`); a plan of more than one listing page of them takes them from it.
STORAGE_UPLOADS = "batchspec_uploads"
# A task has no metadata: its fingerprint travels in an environment setting.
TASK_FINGERPRINT_ENV = "BATCHSPEC_FINGERPRINT"
# When the SAS URLs of a pool's start task expire (ISO 8601, UTC).
SAS_EXPIRY = "batchspec-sas-expiry"
# On a job: the digest of the ids and fingerprints of the tasks apply left in it, all of the
# spec's and no other (plan.stamps.TasksDigest); a plan that finds its own digest there counts
# the tasks instead of reading each (live/state.py).
TASKS_STAMP = "batchspec-tasks"
# On an earlier attempt's kept stdout.txt (apply/attempts.py): what apply saw of that attempt,
# which the service forgets once the task is retried: its node, and when it started and ended
# (ISO 8601, UTC), each only when seen.
ATTEMPT_NODE = "batchspec_node"
ATTEMPT_START = "batchspec_start"
ATTEMPT_END = "batchspec_end"


_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)
# The same encoder's C core, made once: `encode` makes a new one on every call, which is most of
# its cost for the small values fingerprints encode (~1.3 us instead of ~6 for a resource file).
# No circular check: these values are trees.
_C_CANONICAL = (
    json.encoder.c_make_encoder(
        None, _CANONICAL.default, json.encoder.encode_basestring, None, ":", ",", True, False, True
    )
    if json.encoder.c_make_encoder is not None
    else None
)


def canonical_json(value: Any) -> str:
    """The one serialisation every fingerprint is computed from."""
    if _C_CANONICAL is None:
        return _CANONICAL.encode(value)
    return "".join(_C_CANONICAL(value, 0))


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _prune(d: dict[str, Any]) -> dict[str, Any]:
    """Leave out unset fields, so that adding an optional field to a record changes no fingerprint."""
    return {k: v for k, v in d.items() if v is not None and v != () and v != [] and v != {}}


class _Record:
    __slots__ = ()  # none of its own, so that a _Compact record has no instance dict at all

    def to_dict(self) -> dict[str, Any]:
        raise NotImplementedError

    def fingerprint(self) -> str:
        return sha256_text(canonical_json(self.to_dict()))


class _Compact(_Record):
    """A record a spec may hold 100,000 of (its tasks and what they are made of): slots
    (`slots=True`), not a dict of fields (a Task ~0.4 KB instead of ~1 KB), and pickled (the
    build cache, spec/cache.py) as its class called with its fields, which is twice as quick to
    load as dataclasses' own state for slots, which looks the fields up again per record."""

    __slots__ = ()

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return type(self), tuple(getattr(self, name) for name in self.__slots__)


class _Extra:
    """Records with pass-through REST properties keep them as canonical JSON (hashable)."""

    __slots__ = ()
    extra_json: str

    @property
    def extra(self) -> dict[str, Any]:
        return json.loads(self.extra_json)


@dataclass(frozen=True)
class Container(_Record):
    name: str
    metadata: Pairs = ()

    def to_dict(self) -> dict[str, Any]:
        return _prune({"name": self.name, "metadata": dict(self.metadata)})


@dataclass(frozen=True, slots=True)
class Blob(_Compact):
    """A local file uploaded to a container. Its identity is its name and content, not its source."""

    container: str
    name: str
    source: str  # the local file, absolute
    size: int
    sha256: str

    @property
    def ref(self) -> str:
        return f"{self.container}/{self.name}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "container": self.container,
            "name": self.name,
            "size": self.size,
            "sha256": self.sha256,
            "source": self.source,
        }

    def fingerprint(self) -> str:
        return self.sha256


@dataclass(frozen=True, slots=True)
class ResourceFile(_Compact):
    """One of: a blob of the spec, a container of the spec (optionally a prefix), or any URL.

    `content` is the sha256 of what the node will download (a blob's content, or the names and
    contents of a container's blobs), so a task's fingerprint follows its inputs.
    """

    file_path: str | None = None
    file_mode: str | None = None
    blob: str | None = None  # container/name
    container: str | None = None
    blob_prefix: str | None = None
    http_url: str | None = None
    content: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return _prune(
            {
                "blob": self.blob,
                "container": self.container,
                "blobPrefix": self.blob_prefix,
                "httpUrl": self.http_url,
                "filePath": self.file_path,
                "fileMode": self.file_mode,
                "content": self.content,
            }
        )


@dataclass(frozen=True, slots=True)
class OutputFile(_Compact):
    pattern: str
    container: str
    path: str | None = None
    upon: str = "taskSuccess"

    def to_dict(self) -> dict[str, Any]:
        return _prune(
            {"pattern": self.pattern, "container": self.container, "path": self.path, "upon": self.upon}
        )


@dataclass(frozen=True)
class StartTask(_Record):
    command_line: str
    resource_files: tuple[ResourceFile, ...] = ()
    environment: Pairs = ()
    wait_for_success: bool = True
    elevated: bool = False
    max_task_retry_count: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return _prune(
            {
                "commandLine": self.command_line,
                "resourceFiles": [r.to_dict() for r in self.resource_files],
                "environment": dict(self.environment),
                "waitForSuccess": self.wait_for_success,
                "elevated": self.elevated,
                "maxTaskRetryCount": self.max_task_retry_count,
            }
        )


@dataclass(frozen=True)
class Image(_Record):
    publisher: str
    offer: str
    sku: str
    version: str = "latest"

    def to_dict(self) -> dict[str, Any]:
        return {"publisher": self.publisher, "offer": self.offer, "sku": self.sku, "version": self.version}


@dataclass(frozen=True)
class Registry(_Record):
    """A private container registry; its password stays in the environment variable named."""

    server: str
    username: str | None = None
    password_env: str | None = None
    identity: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return _prune(
            {
                "server": self.server,
                "username": self.username,
                "passwordEnv": self.password_env,
                "identityReference": self.identity,
            }
        )


@dataclass(frozen=True)
class PoolContainers(_Record):
    """What lets a pool's nodes run container tasks."""

    type: str = "dockerCompatible"
    images: tuple[str, ...] = ()
    registries: tuple[Registry, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "images": list(self.images),
            "registries": [r.to_dict() for r in self.registries],
        }


@dataclass(frozen=True, slots=True)
class TaskContainer(_Compact):
    image: str
    options: str | None = None
    working_directory: str | None = None
    registry: str | None = None  # the server of one of the pool's registries

    def to_dict(self) -> dict[str, Any]:
        return _prune(
            {
                "image": self.image,
                "options": self.options,
                "workingDirectory": self.working_directory,
                "registry": self.registry,
            }
        )


@dataclass(frozen=True)
class Pool(_Record, _Extra):
    id: str
    vm_size: str
    image: Image
    node_agent_sku_id: str | None = None
    target_dedicated_nodes: int | None = None
    target_low_priority_nodes: int | None = None
    task_slots_per_node: int = 1
    autoscale_formula: str | None = None
    autoscale_interval: str | None = None
    start_task: StartTask | None = None
    display_name: str | None = None
    metadata: Pairs = ()
    extra_json: str = "{}"
    identity: str | None = None  # resourceId of the pool's user-assigned identity for storage
    containers: PoolContainers | None = None

    def to_dict(self) -> dict[str, Any]:
        return _prune(
            {
                "id": self.id,
                "displayName": self.display_name,
                "vmSize": self.vm_size,
                "image": self.image.to_dict(),
                "nodeAgentSkuId": self.node_agent_sku_id,
                "targetDedicatedNodes": self.target_dedicated_nodes,
                "targetLowPriorityNodes": self.target_low_priority_nodes,
                "taskSlotsPerNode": self.task_slots_per_node,
                "autoScaleFormula": self.autoscale_formula,
                "autoScaleEvaluationInterval": self.autoscale_interval,
                "startTask": self.start_task.to_dict() if self.start_task else None,
                "metadata": dict(self.metadata),
                "extra": self.extra,
                "identityReference": {"resourceId": self.identity} if self.identity else None,
                "containers": self.containers.to_dict() if self.containers else None,
            }
        )


@dataclass(frozen=True, slots=True)
class Task(_Compact, _Extra):
    id: str
    command_line: str
    display_name: str | None = None
    resource_files: tuple[ResourceFile, ...] = ()
    output_files: tuple[OutputFile, ...] = ()
    environment: Pairs = ()
    max_wall_clock_time: str | None = None
    retention_time: str | None = None
    max_task_retry_count: int | None = None
    required_slots: int | None = None
    elevated: bool | None = None
    depends_on: tuple[str, ...] = ()
    extra_json: str = "{}"
    container: TaskContainer | None = None
    # The stage it belongs to (None: the single task template); where it comes from, not what
    # runs, so not part of its form or fingerprint.
    stage: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return _prune(
            {
                "id": self.id,
                "displayName": self.display_name,
                "commandLine": self.command_line,
                "resourceFiles": [r.to_dict() for r in self.resource_files],
                "outputFiles": [o.to_dict() for o in self.output_files],
                "environment": dict(self.environment),
                "maxWallClockTime": self.max_wall_clock_time,
                "retentionTime": self.retention_time,
                "maxTaskRetryCount": self.max_task_retry_count,
                "requiredSlots": self.required_slots,
                "elevated": self.elevated,
                "dependsOn": list(self.depends_on),
                "extra": self.extra,
                "container": self.container.to_dict() if self.container else None,
            }
        )


@dataclass(frozen=True)
class JobTask(_Record):
    """A job's preparation task (runs on each node before the job's first task there) or
    release task (runs on those nodes when the job ends); the last two fields are the
    preparation task's only."""

    command_line: str
    resource_files: tuple[ResourceFile, ...] = ()
    environment: Pairs = ()
    elevated: bool = False
    max_wall_clock_time: str | None = None
    retention_time: str | None = None
    max_task_retry_count: int | None = None
    wait_for_success: bool | None = None
    rerun_on_node_reboot: bool | None = None

    def to_dict(self) -> dict[str, Any]:
        return _prune(
            {
                "commandLine": self.command_line,
                "resourceFiles": [r.to_dict() for r in self.resource_files],
                "environment": dict(self.environment),
                "elevated": self.elevated or None,
                "maxWallClockTime": self.max_wall_clock_time,
                "retentionTime": self.retention_time,
                "maxTaskRetryCount": self.max_task_retry_count,
                "waitForSuccess": self.wait_for_success,
                "rerunOnNodeRebootAfterSuccess": self.rerun_on_node_reboot,
            }
        )


@dataclass(frozen=True)
class Dependencies:
    """A task's dependsOn as the service takes it: the ids that are whole numbers as inclusive
    ranges ("only tasks with IDs representing integer values are selected by the range", Batch's
    task dependencies guide), the others by id (at most 64,000 characters in all)."""

    task_ids: tuple[str, ...] = ()
    ranges: tuple[tuple[int, int], ...] = ()

    @property
    def id_chars(self) -> int:
        return sum(map(len, self.task_ids))

    def to_rest(self) -> dict[str, Any]:
        return _prune(
            {
                "taskIds": list(self.task_ids),
                "taskIdRanges": [{"start": a, "end": b} for a, b in self.ranges],
            }
        )


_DEPENDENCIES: dict[int, tuple[tuple[str, ...], Dependencies]] = {}


def dependencies(ids: tuple[str, ...]) -> Dependencies:
    """`ids` split into ranges and ids. The tasks of a stage share one tuple of the ids they
    depend on, so the split is remembered by that tuple's identity: hashing a 100,000-id tuple
    for each of its dependants would cost more than the split."""
    known = _DEPENDENCIES.get(id(ids))
    if known is not None and known[0] is ids:
        return known[1]
    numbers = sorted(int(i) for i in ids if _is_range_id(i))
    others = tuple(i for i in ids if not _is_range_id(i))
    ranges: list[tuple[int, int]] = []
    for n in numbers:
        if ranges and n == ranges[-1][1] + 1:
            ranges[-1] = (ranges[-1][0], n)
        elif not ranges or n > ranges[-1][1]:
            ranges.append((n, n))
    found = Dependencies(others, tuple(ranges))
    if len(_DEPENDENCIES) > 64:
        _DEPENDENCIES.clear()
    _DEPENDENCIES[id(ids)] = (ids, found)
    return found


def _is_range_id(task_id: str) -> bool:
    # The canonical form only: "007" is a task id of its own, not task 7 (a range names 7);
    # TaskIdRange's start and end are int32.
    if not (task_id.isascii() and task_id.isdigit()) or (task_id[0] == "0" and task_id != "0"):
        return False
    return len(task_id) <= 10 and int(task_id) <= 2**31 - 1


@dataclass(frozen=True)
class Job(_Record, _Extra):
    id: str
    pool_id: str
    display_name: str | None = None
    priority: int | None = None
    max_parallel_tasks: int | None = None
    max_wall_clock_time: str | None = None
    max_task_retry_count: int | None = None
    on_all_tasks_complete: str | None = None
    on_task_failure: str | None = None
    uses_task_dependencies: bool = False
    metadata: Pairs = ()
    extra_json: str = "{}"
    preparation_task: JobTask | None = None
    release_task: JobTask | None = None

    def to_dict(self) -> dict[str, Any]:
        return _prune(
            {
                "id": self.id,
                "poolId": self.pool_id,
                "displayName": self.display_name,
                "priority": self.priority,
                "maxParallelTasks": self.max_parallel_tasks,
                "maxWallClockTime": self.max_wall_clock_time,
                "maxTaskRetryCount": self.max_task_retry_count,
                "onAllTasksComplete": self.on_all_tasks_complete,
                "onTaskFailure": self.on_task_failure,
                "usesTaskDependencies": self.uses_task_dependencies or None,
                "metadata": dict(self.metadata),
                "extra": self.extra,
                "preparationTask": self.preparation_task.to_dict() if self.preparation_task else None,
                "releaseTask": self.release_task.to_dict() if self.release_task else None,
            }
        )


@dataclass(frozen=True)
class Download(_Record):
    container: str
    to: str  # the local folder, absolute
    prefix: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return _prune({"container": self.container, "prefix": self.prefix, "to": self.to})


@dataclass(frozen=True)
class Logs(_Record):
    """Where every task's stdout.txt and stderr.txt go when it completes, to outlive its node."""

    container: str
    keep: bool = False  # destroy leaves the container

    # The task directory's own logs, one level above the working directory: the service's
    # output file patterns are relative to the working directory ("../std*.txt").
    PATTERN = "../std*.txt"

    def path(self, job_id: str, task_id: str) -> str:
        return f"{job_id}/{task_id}"

    def attempt_path(self, job_id: str, task_id: str, attempt: int) -> str:
        """Where an earlier attempt's logs are kept (apply/attempts.py), 1 the first."""
        return f"{job_id}/{task_id}/attempt-{attempt}"

    def start_task_path(self, pool_id: str, node_id: str) -> str:
        """Where a node's start task logs are kept (batchspec copies them: a start task has no
        output files)."""
        return f"{pool_id}/{node_id}/startup"

    def to_dict(self) -> dict[str, Any]:
        return {"container": self.container, "keep": self.keep}


@dataclass(frozen=True)
class DesiredState:
    """Everything a spec asks for, fully expanded; the input of the planner."""

    name: str
    spec_path: str
    containers: tuple[Container, ...]
    blobs: tuple[Blob, ...]
    pool: Pool
    job: Job
    tasks: tuple[Task, ...]
    download: Download | None = None
    logs: Logs | None = None
    wait_timeout: str | None = None
    setup_timeout: str | None = None
    # Found while building, shown by validate and plan; not part of what the spec asks for.
    warnings: tuple[SpecWarning, ...] = field(default=(), compare=False)
    overrides: dict[str, Any] = field(default_factory=dict, compare=False)  # the --var values

    def to_dict(self) -> dict[str, Any]:
        return _prune(
            {
                "name": self.name,
                "spec": self.spec_path,
                "containers": [c.to_dict() for c in self.containers],
                "blobs": [b.to_dict() for b in self.blobs],
                "pool": self.pool.to_dict(),
                "job": self.job.to_dict(),
                "tasks": [t.to_dict() for t in self.tasks],
                "download": self.download.to_dict() if self.download else None,
                "logs": self.logs.to_dict() if self.logs else None,
                "wait": _prune({"timeout": self.wait_timeout, "setupTimeout": self.setup_timeout}) or None,
            }
        )


# -- the live state ---------------------------------------------------------------------------


@dataclass(frozen=True)
class LiveContainer:
    name: str
    metadata: dict[str, str] = field(default_factory=dict, compare=False, hash=False)

    @property
    def owner(self) -> str | None:
        return self.metadata.get(STORAGE_OWNER)

    @property
    def fingerprint(self) -> str | None:
        return self.metadata.get(STORAGE_FINGERPRINT)


@dataclass(frozen=True, slots=True)  # slots: a plan of 100,000 inputs holds as many
class LiveBlob:
    container: str
    name: str
    size: int
    sha256: str | None  # set on the blobs batchspec uploaded
    content_md5: bytes | None = None
    etag: str | None = None
    last_modified: str | None = None  # as the service wrote it (RFC 1123), parsed only when needed

    @property
    def modified(self) -> float | None:
        """Last-Modified as a POSIX timestamp (whole seconds, as the service gives it)."""
        return http_timestamp(self.last_modified)


def http_timestamp(http_date: str | None) -> float | None:
    """An HTTP date header ("Wed, 25 Nov 2026 06:17:07 GMT") as a POSIX timestamp."""
    try:
        return parsedate_to_datetime(http_date).timestamp() if http_date else None
    except (TypeError, ValueError):
        return None


@dataclass(frozen=True)
class VmSize:
    """A VM size as Batch lists it for the account's region: its vCPUs and the quota family
    its dedicated cores count against."""

    name: str
    vcpus: int
    family: str | None = None


@dataclass(frozen=True)
class PoolUse:
    """One of the account's pools as its core quotas count it: the nodes it has or is heading
    for (the larger of its current and target counts)."""

    id: str
    vm_size: str
    dedicated: int
    low_priority: int


@dataclass(frozen=True)
class Account:
    """What the Batch account allows, as Azure Resource Manager's BatchAccount gives it (None
    where it gives nothing: an account in user-subscription mode has no core quotas of its own),
    the VM sizes of its region, and what it already uses."""

    dedicated_core_quota: int | None = None
    low_priority_core_quota: int | None = None
    family_core_quotas: tuple[tuple[str, int], ...] = ()
    family_quotas_enforced: bool = False
    pool_quota: int | None = None
    job_quota: int | None = None  # activeJobAndJobScheduleQuota
    location: str | None = None
    vm_sizes: tuple[VmSize, ...] = ()
    pools: tuple[PoolUse, ...] = ()
    active_jobs: int = 0  # jobs and job schedules not completed, the spec's own job left out

    def vm_size(self, name: str) -> VmSize | None:
        """A VM size by name (Batch compares them without case)."""
        return next((v for v in self.vm_sizes if v.name.lower() == name.lower()), None)

    def family_core_quota(self, family: str) -> int | None:
        return next((q for f, q in self.family_core_quotas if f.lower() == family.lower()), None)


def uploads_digest(blobs: list[Blob]) -> str:
    """The digest of a container's uploads by name and content, in name order."""
    digest = hashlib.sha256(b"uploads")
    for blob in sorted(blobs, key=lambda b: b.name):
        digest.update(f"\n{blob.name}\0{blob.sha256}".encode())  # no blob name holds a NUL
    return digest.hexdigest()


@dataclass(frozen=True)
class TaskTally:
    """A job's tasks as counted rather than read one by one: when the job carries the spec's
    TASKS_STAMP and its counts add up to the spec's tasks, `LiveState.tasks` holds only the
    failed ones, and these figures say how the rest stand."""

    digest: str  # the job's TASKS_STAMP, which is the spec's
    active: int
    running: int
    completed: int
    failed: int  # of the completed

    @property
    def total(self) -> int:
        return self.active + self.running + self.completed


@dataclass
class LiveState:
    """What the planner compares against, as `live.state.read` gathers it."""

    containers: dict[str, LiveContainer]
    blobs: dict[str, dict[str, LiveBlob]]  # per spec container that exists
    pool: dict[str, Any] | None
    job: dict[str, Any] | None
    tasks: list[dict[str, Any]]  # every task of the job, or its failed ones when `tally` is set
    tally: TaskTally | None = None
    # Upload containers not listed: their STORAGE_UPLOADS stamp is the spec's (live/state.py).
    uploads_stamped: tuple[str, ...] = ()
    node_agent_sku_id: str | None = None  # the spec's image's, from the account's supported images
    image_listed: bool | None = None  # whether the account lists the image (None: not a Marketplace image)
    image_end_of_life: str | None = None  # its batchSupportEndOfLife, when the service gives one
    image_capabilities: tuple[str, ...] | None = None  # what the service says it can do (None: not listed)
    read_at: datetime | None = None  # when it was read: the clock the SAS expiry is checked against
    download_pending: list[str] = field(default_factory=list)  # blobs not yet downloaded as they are
    owned_containers: list[str] = field(default_factory=list)  # owned by this spec, not in it
    account: Account | None = None  # its quotas and usage, read when the plan may add to them
    account_unread: str | None = None  # why they were wanted but not read, and what to do


def metadata(resource: dict[str, Any] | None) -> dict[str, str]:
    """A Batch resource's metadata list as a mapping."""
    return {m["name"]: m.get("value", "") for m in (resource or {}).get("metadata") or []}


def task_fingerprint(task: dict[str, Any]) -> str | None:
    """The fingerprint a live task carries (in an environment setting)."""
    for setting in task.get("environmentSettings") or []:
        if setting.get("name") == TASK_FINGERPRINT_ENV:
            return setting.get("value")
    return None
