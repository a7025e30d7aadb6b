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
# A task has no metadata: its fingerprint travels in an environment setting.
TASK_FINGERPRINT_ENV = "BATCHSPEC_FINGERPRINT"
# When the SAS URLs of a pool's start task expire (ISO 8601, UTC).
SAS_EXPIRY = "batchspec-sas-expiry"


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
    def to_dict(self) -> dict[str, Any]:
        raise NotImplementedError

    def fingerprint(self) -> str:
        return sha256_text(canonical_json(self.to_dict()))


class _Extra:
    """Records with pass-through REST properties keep them as canonical JSON (hashable)."""

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


@dataclass(frozen=True)
class Blob(_Record):
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


@dataclass(frozen=True)
class ResourceFile(_Record):
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


@dataclass(frozen=True)
class OutputFile(_Record):
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
            }
        )


@dataclass(frozen=True)
class Task(_Record, _Extra):
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
            }
        )


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


@dataclass
class LiveState:
    """What the planner compares against, as `live.state.read` gathers it."""

    containers: dict[str, LiveContainer]
    blobs: dict[str, dict[str, LiveBlob]]  # per spec container that exists
    pool: dict[str, Any] | None
    job: dict[str, Any] | None
    tasks: list[dict[str, Any]]
    node_agent_sku_id: str | None = None  # the spec's image's, from the account's supported images
    image_listed: bool | None = None  # whether the account lists the image (None: not a Marketplace image)
    image_end_of_life: str | None = None  # its batchSupportEndOfLife, when the service gives one
    read_at: datetime | None = None  # when it was read: the clock the SAS expiry is checked against
    download_pending: list[str] = field(default_factory=list)  # blobs not yet downloaded as they are
    owned_containers: list[str] = field(default_factory=list)  # owned by this spec, not in it


def metadata(resource: dict[str, Any] | None) -> dict[str, str]:
    """A Batch resource's metadata list as a mapping."""
    return {m["name"]: m.get("value", "") for m in (resource or {}).get("metadata") or []}


def task_fingerprint(task: dict[str, Any]) -> str | None:
    """The fingerprint a live task carries (in an environment setting)."""
    for setting in task.get("environmentSettings") or []:
        if setting.get("name") == TASK_FINGERPRINT_ENV:
            return setting.get("value")
    return None
