"""From a spec file to the desired state: load, validate, render, expand, check.

Every stage reports all the problems it finds at once; a stage runs only when the one before it
found none, since its input would not be trustworthy.

Over 400 lines: one builder walks the whole spec and collects every error with its location;
its steps share that state and the uploads they refer to.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from batchspec import durations
from batchspec.errors import SpecError, SpecErrors, SpecWarning
from batchspec.model import (
    STORAGE_FINGERPRINT,
    STORAGE_OWNER,
    Blob,
    Container,
    DesiredState,
    Download,
    Image,
    Job,
    JobTask,
    Logs,
    OutputFile,
    Pool,
    PoolContainers,
    Registry,
    ResourceFile,
    StartTask,
    Task,
    TaskContainer,
    canonical_json,
    dependencies,
)
from batchspec.spec import commands, expand, files, schema, stages, variables
from batchspec.spec.cache import BuildCache, code_digest
from batchspec.spec.loader import Document, Path_, load
from batchspec.spec.schema import field_path
from batchspec.spec.template import Renderer

_TEMPLATED_PER_TASK = ("tasks", "mergeTask")
MAX_DEPENDENCY_CHARS = 64_000  # Batch's limit on a task's dependsOn.taskIds, all ids together
# autoScaleEvaluationInterval: "The minimum and maximum value are 5 minutes and 168 hours"
# (BatchPoolCreateOptions, the Batch API definition); the service refuses others with a 400.
AUTOSCALE_INTERVAL = (timedelta(minutes=5), timedelta(hours=168))
# "The total size of the metadata, including both the name and value together, may not exceed
# 8 KB" (Set Container Metadata, Blob service REST API).
MAX_CONTAINER_METADATA = 8 * 1024
_BATCH_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


def build(
    path: str | Path,
    overrides: dict[str, Any] | None = None,
    *,
    on_uploads: Callable[[list[str]], None] | None = None,
    cache: BuildCache | None = None,
) -> DesiredState:
    """The desired state of the spec at `path`. Raises SpecErrors (or UsageError for --var).

    `on_uploads` is given the containers the spec uploads to as soon as their names are known
    and valid, before any file is read: `plan` starts listing them then. `cache` remembers the
    files' digests and the expanded tasks for the next build of the same spec (spec/cache.py)."""
    doc = load(path)
    if errors := schema.check(doc):
        raise SpecErrors(errors)
    values = variables.resolve(doc.data.get("vars") or {}, overrides or {})
    built = _Builder(doc, values, on_uploads, cache).build()
    return dataclasses.replace(built, overrides=dict(overrides or {}))


class _Builder:
    def __init__(
        self,
        doc: Document,
        values: dict[str, Any],
        on_uploads: Callable[[list[str]], None] | None = None,
        cache: BuildCache | None = None,
    ):
        self.on_uploads = on_uploads
        self.cache = cache
        self.listed: dict[str, list[files.LocalFile]] = {}  # forEach.files globs, matched once
        self.doc = doc
        self.vars = values
        self.renderer = Renderer(doc)
        self.errors: list[SpecError] = []
        self.warnings: list[SpecWarning] = []
        self.base = doc.base_dir
        self.blobs: dict[str, list[Blob]] = {}
        self.blob_by_ref: dict[str, Blob] = {}
        self.logs: tuple[Logs, str] | None = None  # where tasks send their logs, and the job id

    def error(self, message: str, path: Path_, *, key: bool = False) -> None:
        self.errors.append(
            SpecError(message, location=self.doc.location(path, key=key), field=field_path(path))
        )

    def _stop_if_errors(self) -> None:
        if self.errors:
            raise SpecErrors(schema.sort_errors(self.errors))

    def build(self) -> DesiredState:
        data = self._render_globals()
        self._stop_if_errors()
        self.errors.extend(schema.check(self.doc, data))  # rendered ids and names, checked now
        self._stop_if_errors()
        if self.on_uploads is not None:
            spec = data.get("storage", {}).get("containers") or {}
            self.on_uploads([c for c, body in spec.items() if (body or {}).get("upload")])
        name = data["name"]
        containers = self._containers(data.get("storage", {}).get("containers") or {}, name)
        self._stop_if_errors()
        logs = self._logs(data.get("logs", True), name, containers)
        if logs is not None:  # each task is made with its upload of its logs
            self.logs = (logs, _job_id(data["job"], name))
        pool = self._pool(data["pool"], name)
        if pool.start_task:
            self._check_commands([pool.start_task.command_line], ("pool", "startTask", "commandLine"))
        tasks, uses_dependencies = self._remembered_tasks(data["job"])
        self._check_slots(pool, tasks)
        job = self._job(data["job"], name, pool.id, uses_dependencies)
        download = self._download(data.get("download"))
        if logs is not None:
            containers = (*containers, Container(logs.container))
        self._stop_if_errors()
        return DesiredState(
            name=name,
            spec_path=str(self.doc.path),
            containers=containers,
            blobs=tuple(b for blobs in self.blobs.values() for b in blobs),
            pool=pool,
            job=job,
            tasks=tuple(tasks),
            download=download,
            logs=logs,
            wait_timeout=(data.get("wait") or {}).get("timeout"),
            setup_timeout=(data.get("wait") or {}).get("setupTimeout"),
            warnings=tuple(self.warnings),
        )

    def _remembered_tasks(self, job: dict[str, Any]) -> tuple[list[Task], bool]:
        """`_tasks(job)`, taken from the cache when everything they are made from is as it was."""
        key = self._tasks_key(job) if self.cache is not None else None
        if key is None:  # no cache, or values that do not serialise
            return self._tasks(job)
        found = self.cache.tasks(key)
        if found is not None:
            tasks, uses_dependencies, warnings = found
            self.warnings.extend(warnings)
            return list(tasks), uses_dependencies
        before = len(self.warnings)
        tasks, uses_dependencies = self._tasks(job)
        if not self.errors:
            self.cache.put_tasks(key, (tuple(tasks), uses_dependencies, tuple(self.warnings[before:])))
        return tasks, uses_dependencies

    def _tasks_key(self, job: dict[str, Any]) -> str | None:
        """A digest of all the tasks are made from (spec/cache.py), or None when the spec's
        values do not serialise (nothing is remembered then)."""
        digest = hashlib.sha256(code_digest().encode())
        try:
            head = [str(self.doc.path), str(self.doc.base_dir.resolve()), self.doc.digest, self.vars]
            digest.update(canonical_json(head).encode())
        except (TypeError, ValueError):
            return None
        # Four fields an upload, none holding a NUL (a path cannot), each ended by one: they read
        # back one way only. A few thousand at a time (all at once: 40 MB for 100,000).
        uploads = [b for blobs in self.blobs.values() for b in blobs]
        for i in range(0, len(uploads), 4096):
            chunk = "".join(f"{b.ref}\0{b.source}\0{b.size}\0{b.sha256}\0" for b in uploads[i : i + 4096])
            digest.update(chunk.encode("utf-8", "surrogateescape"))
        templates = job["tasks"] if isinstance(job["tasks"], list) else [job["tasks"]]
        for template in templates:
            pattern = (template.get("forEach") or {}).get("files") if isinstance(template, dict) else None
            if isinstance(pattern, str):
                if pattern not in self.listed:
                    self.listed[pattern] = files.match(self.base, pattern)
                listing = [(f.relative, f.shown, f.size) for f in self.listed[pattern]]
                digest.update(b"\n" + canonical_json([pattern, listing]).encode())
        return digest.hexdigest()

    def _check_slots(self, pool: Pool, tasks: list[Task]) -> None:
        """A task needing more slots than a node has is never scheduled ("A Task can only be
        scheduled to run on a compute node if the node has enough free scheduling slots")."""
        over = next((t for t in tasks if (t.required_slots or 1) > pool.task_slots_per_node), None)
        if over is not None:
            if over.stage is not None:
                index = next(
                    i for i, s in enumerate(self.doc.data["job"]["tasks"]) if s["name"] == over.stage
                )
                where: Path_ = ("job", "tasks", index, "requiredSlots")
            else:
                where = ("job", "mergeTask" if over.depends_on else "tasks", "requiredSlots")
            self.error(
                f"task {over.id!r} needs {over.required_slots} slots but the pool's nodes have "
                f"{pool.task_slots_per_node} (pool.taskSlotsPerNode): it would never run",
                where,
            )

    def _check_commands(self, lines: list[str], path: Path_) -> None:
        """Warn once per command line template that relies on a shell no one starts."""
        found = [f for f in map(commands.shell_feature, lines) if f]
        if not found:
            return
        count = f" (in {len(found)} of {len(lines)} tasks)" if len(lines) > 1 else ""
        self.warnings.append(
            SpecWarning(
                f"uses {found[0]}{count}, but Batch runs command lines without a shell: "
                "the program gets it as plain text",
                location=self.doc.location(path),
                field=field_path(path),
                hint="add `shell: bash` beside commandLine, or start the line with /bin/bash -c '...'",
            )
        )

    # -- rendering --------------------------------------------------------------------------

    def _render(self, value: Any, path: Path_, context: dict[str, Any]) -> Any:
        try:
            return self.renderer.render(value, path, context)
        except SpecError as exc:
            self.errors.append(exc)
            return None

    def _render_globals(self) -> dict[str, Any]:
        """Every value but the task templates, rendered with the vars; `vars` stay as given."""
        context = {"vars": self.vars}
        data = {}
        for key, value in self.doc.data.items():
            if key == "vars":
                data[key] = value
            elif key == "job":
                data[key] = {
                    k: (v if k in _TEMPLATED_PER_TASK else self._render(v, (key, k), context))
                    for k, v in value.items()
                }
            else:
                data[key] = self._render(value, (key,), context)
        return data

    # -- storage ----------------------------------------------------------------------------

    def _containers(self, spec: dict[str, Any], owner: str) -> tuple[Container, ...]:
        containers = []
        for cname, body in spec.items():
            body = body or {}
            container = Container(cname, tuple(sorted((body.get("metadata") or {}).items())))
            containers.append(container)
            self._check_container_metadata(container, owner)
            by_name: dict[str, tuple[Blob, Path_]] = {}
            for i, entry in enumerate(body.get("upload") or []):
                path = ("storage", "containers", cname, "upload", i)
                pattern, prefix = (
                    (entry, "") if isinstance(entry, str) else (entry["files"], entry.get("prefix", ""))
                )
                found = files.match(self.base, pattern)
                if not found:
                    self.error(
                        f"upload glob {pattern!r} matches no file "
                        f"(relative to {self.base.as_posix() or '.'}/)",
                        path,
                    )
                for f in found:
                    blob = Blob(
                        container=cname,
                        name=prefix + f.relative,
                        source=f.path,
                        size=f.size,
                        sha256=self.cache.sha256(f) if self.cache else files.sha256_file(f.path),
                    )
                    if blob.name in by_name and by_name[blob.name][0].source != blob.source:
                        self.error(
                            f"two files would upload to blob {blob.ref!r}: "
                            f"{by_name[blob.name][0].source} and {blob.source}",
                            path,
                        )
                    by_name[blob.name] = (blob, path)
            self.blobs[cname] = sorted((b for b, _ in by_name.values()), key=lambda b: b.name)
            self.blob_by_ref.update({b.ref: b for b in self.blobs[cname]})
        if self.cache is not None and not self.errors:
            self.cache.save_hashes()
        return tuple(containers)

    def _check_container_metadata(self, container: Container, owner: str) -> None:
        # batchspec adds its owner tag and a fingerprint (a sha256 in hex); the user's pairs
        # share the 8 KB with them.
        own = len(STORAGE_OWNER) + len(owner) + len(STORAGE_FINGERPRINT) + 64
        size = own + sum(len(k.encode()) + len(v.encode()) for k, v in container.metadata)
        if size > MAX_CONTAINER_METADATA:
            self.error(
                f"the container's metadata would take {size} bytes with batchspec's own tags; "
                f"the storage service accepts at most {MAX_CONTAINER_METADATA}",
                ("storage", "containers", container.name, "metadata"),
                key=True,
            )

    def _container_ref(self, name: Any, path: Path_) -> bool:
        if name in self.blobs:
            return True
        known = ", ".join(sorted(self.blobs)) or "none"
        self.error(f"container {name!r} is not defined in storage.containers (defined: {known})", path)
        return False

    def _resource_files(
        self, specs: list[dict[str, Any]] | None, path: Path_, *, outputs: set[str] = frozenset()
    ) -> tuple[ResourceFile, ...]:
        result = []
        for i, rf in enumerate(specs or []):
            p = (*path, i)
            kinds = [k for k in ("blob", "container", "httpUrl") if k in rf]
            if len(kinds) != 1:
                self.error("a resource file needs exactly one of blob, container or httpUrl", p)
                continue
            file_path = rf.get("filePath")
            if file_path is not None and not files.is_safe_relative(file_path):
                self.error(
                    f"filePath {file_path!r} must be a relative path inside the working "
                    "directory (no '..', no absolute path)",
                    (*p, "filePath"),
                )
                continue
            if "blobPrefix" in rf and kinds[0] != "container":
                self.error("blobPrefix goes only with container", (*p, "blobPrefix"))
                continue
            common = {"file_path": file_path, "file_mode": rf.get("fileMode")}
            if kinds[0] == "blob" and rf["blob"] in outputs:  # written by an earlier stage
                name = rf["blob"].partition("/")[2]
                result.append(ResourceFile(blob=rf["blob"], **{**common, "file_path": file_path or name}))
            elif kinds[0] == "blob":
                blob = self._blob_ref(rf["blob"], (*p, "blob"))
                if blob:
                    result.append(
                        ResourceFile(
                            blob=blob.ref,
                            content=blob.sha256,
                            **{**common, "file_path": file_path or blob.name},
                        )
                    )
            elif kinds[0] == "container":
                if self._container_ref(rf["container"], (*p, "container")):
                    prefix = rf.get("blobPrefix") or ""
                    listing = [
                        (b.name, b.sha256) for b in self.blobs[rf["container"]] if b.name.startswith(prefix)
                    ]
                    content = hashlib.sha256(canonical_json(listing).encode()).hexdigest()
                    result.append(
                        ResourceFile(
                            container=rf["container"], blob_prefix=prefix or None, content=content, **common
                        )
                    )
            else:
                if file_path is None:
                    self.error("a resource file with httpUrl needs a filePath", p)
                    continue
                result.append(ResourceFile(http_url=rf["httpUrl"], **common))
        return tuple(result)

    def _blob_ref(self, ref: Any, path: Path_) -> Blob | None:
        container, sep, name = str(ref).partition("/")
        if not sep or not name:
            self.error(f"blob {ref!r} must be container/name, e.g. input/data.txt", path)
            return None
        if not self._container_ref(container, path):
            return None
        blob = self.blob_by_ref.get(f"{container}/{name}")
        if blob is None:
            self.error(f"blob {ref!r}: the spec uploads no file named {name!r} to {container!r}", path)
        return blob

    def _output_files(self, specs: list[dict[str, Any]] | None, path: Path_) -> tuple[OutputFile, ...]:
        result = []
        for i, of in enumerate(specs or []):
            p = (*path, i)
            if not self._container_ref(of["container"], (*p, "container")):
                continue
            if of.get("path") and not files.is_safe_relative(of["path"]):
                self.error(
                    f"path {of['path']!r} must be a relative blob name (no '..', no leading '/')",
                    (*p, "path"),
                )
                continue
            result.append(
                OutputFile(
                    pattern=of["pattern"],
                    container=of["container"],
                    path=of.get("path") or None,
                    upon=of.get("upon", "taskSuccess"),
                )
            )
        return tuple(result)

    # -- pool and job -----------------------------------------------------------------------

    def _pool(self, spec: dict[str, Any], name: str) -> Pool:
        for i, registry in enumerate((spec.get("containers") or {}).get("registries") or []):
            login = ("username" in registry, "passwordEnv" in registry)
            identity = "identityReference" in registry
            if not (login == (True, True) and not identity or login == (False, False) and identity):
                self.error(
                    "a registry takes username with passwordEnv, or identityReference",
                    ("pool", "containers", "registries", i),
                )
        autoscale = spec.get("autoScale")
        dedicated, low = spec.get("targetDedicatedNodes"), spec.get("targetLowPriorityNodes")
        if autoscale and (dedicated is not None or low is not None):
            self.error(
                "autoScale and targetDedicatedNodes/targetLowPriorityNodes exclude each other",
                ("pool", "autoScale"),
                key=True,
            )
        if not autoscale:
            dedicated = dedicated if dedicated is not None else (0 if low else 1)
            low = low or 0
        elif interval := autoscale.get("evaluationInterval"):
            low_bound, high_bound = AUTOSCALE_INTERVAL
            if not low_bound <= durations.parse(interval) <= high_bound:
                self.error(
                    f"evaluationInterval {interval} is outside what Batch accepts: PT5M to PT168H",
                    ("pool", "autoScale", "evaluationInterval"),
                )
        start = spec.get("startTask")
        return Pool(
            id=spec.get("id") or f"{name}-pool",
            vm_size=spec["vmSize"],
            image=Image(**{"version": "latest", **spec["image"]}),
            node_agent_sku_id=spec.get("nodeAgentSkuId"),
            target_dedicated_nodes=dedicated,
            target_low_priority_nodes=low,
            task_slots_per_node=spec.get("taskSlotsPerNode", 1),
            autoscale_formula=(autoscale or {}).get("formula"),
            autoscale_interval=(autoscale or {}).get("evaluationInterval"),
            start_task=StartTask(
                command_line=_command_line(start),
                resource_files=self._resource_files(
                    start.get("resourceFiles"), ("pool", "startTask", "resourceFiles")
                ),
                environment=_env(start.get("environment")),
                wait_for_success=start.get("waitForSuccess", True),
                elevated=start.get("elevated", False),
                max_task_retry_count=start.get("maxTaskRetryCount"),
            )
            if start
            else None,
            display_name=spec.get("displayName"),
            metadata=tuple(sorted((spec.get("metadata") or {}).items())),
            extra_json=canonical_json(spec.get("extra") or {}),
            identity=(spec.get("identityReference") or {}).get("resourceId"),
            containers=_pool_containers(spec.get("containers")),
        )

    def _job(self, spec: dict[str, Any], name: str, pool_id: str, uses_dependencies: bool) -> Job:
        constraints = spec.get("constraints") or {}
        return Job(
            id=_job_id(spec, name),
            pool_id=pool_id,
            display_name=spec.get("displayName"),
            priority=spec.get("priority"),
            max_parallel_tasks=spec.get("maxParallelTasks"),
            max_wall_clock_time=constraints.get("maxWallClockTime"),
            max_task_retry_count=constraints.get("maxTaskRetryCount"),
            on_all_tasks_complete=spec.get("onAllTasksComplete"),
            on_task_failure=spec.get("onTaskFailure"),
            uses_task_dependencies=uses_dependencies,
            metadata=tuple(sorted((spec.get("metadata") or {}).items())),
            extra_json=canonical_json(spec.get("extra") or {}),
            preparation_task=self._job_task(spec.get("preparationTask"), "preparationTask"),
            release_task=self._job_task(spec.get("releaseTask"), "releaseTask"),
        )

    def _job_task(self, spec: dict[str, Any] | None, key: str) -> JobTask | None:
        if spec is None:
            return None
        path: Path_ = ("job", key)
        if key == "releaseTask" and "preparationTask" not in self.doc.data["job"]:
            # BatchJobCreateOptions.jobReleaseTask: "A Job Release Task cannot be specified
            # without also specifying a Job Preparation Task for the Job."
            self.error(
                "a releaseTask needs a preparationTask: the service refuses a job with only one",
                path,
                key=True,
            )
        self._check_commands([_command_line(spec)], (*path, "commandLine"))
        constraints = spec.get("constraints") or {}
        preparation = key == "preparationTask"
        return JobTask(
            command_line=_command_line(spec),
            resource_files=self._resource_files(spec.get("resourceFiles"), (*path, "resourceFiles")),
            environment=_env(spec.get("environment")),
            elevated=spec.get("elevated", False),
            max_wall_clock_time=constraints.get("maxWallClockTime"),
            retention_time=constraints.get("retentionTime"),
            max_task_retry_count=spec.get("maxTaskRetryCount"),
            wait_for_success=spec.get("waitForSuccess", True) if preparation else None,
            rerun_on_node_reboot=spec.get("rerunOnNodeRebootAfterSuccess", True) if preparation else None,
        )

    def _logs(self, spec: bool | dict[str, Any], name: str, containers: tuple[Container, ...]) -> Logs | None:
        """Where the tasks' stdout and stderr go (on unless `logs: false`)."""
        if spec is False:
            return None
        spec = spec if isinstance(spec, dict) else {}
        container = spec.get("container") or f"{name}-logs"
        path = ("logs", "container") if spec.get("container") else ("name",)
        if not re.match(schema.schema()["$defs"]["containerName"]["pattern"], container):
            self.error(f"the logs container {container!r} is not a valid name: set logs.container", path)
        elif container in {c.name for c in containers}:
            self.error(f"the logs container {container!r} is one of storage.containers: name another", path)
        return Logs(container, bool(spec.get("keep", False)))

    def _with_logs(self, outputs: tuple[OutputFile, ...], task_id: str) -> tuple[OutputFile, ...]:
        """A task's output files and, after them, its stdout.txt and stderr.txt going to the logs
        container whatever its result."""
        if self.logs is None:
            return outputs
        logs, job_id = self.logs
        return (
            *outputs,
            OutputFile(Logs.PATTERN, logs.container, logs.path(job_id, task_id), "taskCompletion"),
        )

    def _download(self, spec: dict[str, Any] | None) -> Download | None:
        if not spec:
            return None
        self._container_ref(spec["container"], ("download", "container"))
        to = (self.base / spec["to"]).resolve()
        return Download(container=spec["container"], to=str(to), prefix=spec.get("prefix") or None)

    # -- tasks ------------------------------------------------------------------------------

    def _tasks(self, job: dict[str, Any]) -> tuple[list[Task], bool]:
        origin: dict[str, Any] = {}
        if isinstance(job["tasks"], list):
            tasks = self._stages(job["tasks"], origin)
        else:
            tasks = self._expand(dict(job["tasks"]), ("job", "tasks"), origin, {})
        merge = job.get("mergeTask")
        if merge and not self.errors:
            ids = tuple(t.id for t in tasks)
            if not self._dependency_fits(ids, ("job", "mergeTask"), "the merge task", "the other tasks"):
                return tasks, True
            task = self._task(merge, ("job", "mergeTask"), {"vars": self.vars, "tasks": list(ids)})
            if task:
                self._check_commands([task.command_line], ("job", "mergeTask", "commandLine"))
            if task and self._unique(task.id, origin, "mergeTask", ("job", "mergeTask")):
                tasks.append(dataclasses.replace(task, depends_on=ids))
        return tasks, bool(merge) or any(t.depends_on for t in tasks)

    def _stages(self, specs: list[dict[str, Any]], origin: dict[str, Any]) -> list[Task]:
        """Every stage's tasks, each stage after those it depends on, each task depending on
        every task of the stage's dependsOn."""
        found = stages.graph(specs)
        if isinstance(found, list):
            for problem in found:
                key = problem.field == "name"
                self.error(problem.message, ("job", "tasks", problem.index, problem.field), key=key)
            return []
        made: dict[str, list[Task]] = {}
        seen: dict[str, dict[str, Any]] = {}  # what later stages' templates see of each stage
        tasks: list[Task] = []
        for i in found.order:
            spec = dict(specs[i])
            name = spec.pop("name")
            direct = spec.pop("dependsOn", None) or []
            path: Path_ = ("job", "tasks", i)
            names = {n.lower(): n for n in made}
            ids = tuple(t.id for d in direct for t in made[names[d.lower()]])
            upstream = found.upstream[name]
            if ids and not self._dependency_fits(
                ids, (*path, "dependsOn"), f"stage {name!r}", ", ".join(direct)
            ):
                return tasks
            context = {"stage": name, "stages": {n: seen[n] for n in upstream}}
            outputs = {o["ref"] for n in upstream for o in seen[n]["outputs"] if o["ref"]}
            default = (i + 1) * stages.ID_BLOCK if "id" not in spec else None
            made[name] = self._expand(
                spec, path, origin, context, stage=name, depends_on=ids, default_id=default, outputs=outputs
            )
            logs = self.logs[0].container if self.logs else None
            seen[name] = {"ids": [t.id for t in made[name]], "outputs": _outputs(made[name], logs)}
            tasks.extend(made[name])
            if self.errors:
                break
        return tasks

    def _dependency_fits(self, ids: tuple[str, ...], path: Path_, who: str, whom: str) -> bool:
        """Whether dependsOn can name `ids`: the ids that are whole numbers go as ranges, the
        others by id, at most 64,000 characters of them (TaskDependencyListTooLong)."""
        chars = dependencies(ids).id_chars
        if chars <= MAX_DEPENDENCY_CHARS:
            return True
        self.error(
            f"{who} would depend on {len(ids)} tasks ({whom}) whose ids total {chars} characters; "
            f"Batch accepts at most {MAX_DEPENDENCY_CHARS} (TaskDependencyListTooLong): give the "
            "tasks depended on numeric ids (a stage without id gets them), which go as id ranges, "
            "or shorten their ids",
            path,
            key=True,
        )
        return False

    def _expand(
        self,
        template: dict[str, Any],
        base_path: Path_,
        origin: dict[str, Any],
        context: dict[str, Any],
        *,
        stage: str | None = None,
        depends_on: tuple[str, ...] = (),
        default_id: int | None = None,
        outputs: set[str] = frozenset(),
    ) -> list[Task]:
        """The template's tasks, one per forEach item."""
        for_each = template.pop("forEach", None)
        found = expand.items(for_each, self.base, self.blobs, self.listed)
        if isinstance(found, str):
            self.error(found, (*base_path, "forEach"))
            return []
        if default_id is not None and len(found) > stages.ID_BLOCK:
            self.error(
                f"the stage has {len(found)} items; a stage without id takes at most {stages.ID_BLOCK}",
                (*base_path, "forEach"),
            )
            return []
        tasks: list[Task] = []
        for index, item in enumerate(found):
            scope = {"vars": self.vars, **context, "index": index}
            if item is not None:
                scope["item"] = item
            task_id = str(default_id + index) if default_id is not None else None
            task = self._task(
                template,
                base_path,
                scope,
                task_id=task_id,
                outputs=outputs,
                depends_on=depends_on,
                stage=stage,
            )
            if task is None:
                continue
            if self._unique(task.id, origin, item, base_path):
                tasks.append(task)
            if len(self.errors) > 50:  # the same mistake repeated per item says nothing new
                break
        self._check_commands([t.command_line for t in tasks], (*base_path, "commandLine"))
        return tasks

    def _unique(self, task_id: str, origin: dict[str, Any], item: Any, base_path: Path_) -> bool:
        # Batch task ids are unique within a job regardless of case.
        key = task_id.lower()
        if key in origin:
            self.error(
                f"duplicate task id {task_id!r}: items {expand.describe(origin[key])} and "
                f"{expand.describe(item)} both render to it; derive the id from what differs",
                (*base_path, "id"),
            )
            return False
        origin[key] = item
        return True

    def _task(
        self,
        template: dict[str, Any],
        path: Path_,
        context: dict[str, Any],
        *,
        task_id: str | None = None,
        outputs: set[str] = frozenset(),
        depends_on: tuple[str, ...] = (),
        stage: str | None = None,
    ) -> Task | None:
        before = len(self.errors)
        spec = {k: self._render(v, (*path, k), context) for k, v in template.items()}
        if len(self.errors) > before:
            return None
        task_id = spec["id"] if task_id is None else task_id
        if not _valid_id(task_id):
            self.error(
                f"task id {task_id!r} is invalid: must be 1-64 letters, digits, hyphens and underscores",
                (*path, "id"),
            )
            return None
        constraints = spec.get("constraints") or {}
        for key, value in constraints.items():
            try:
                durations.parse(value)
            except ValueError as exc:
                self.error(str(exc), (*path, "constraints", key))
        task = Task(
            id=task_id,
            command_line=_command_line(spec),
            display_name=spec.get("displayName"),
            resource_files=self._resource_files(
                spec.get("resourceFiles"), (*path, "resourceFiles"), outputs=outputs
            ),
            output_files=self._with_logs(
                self._output_files(spec.get("outputFiles"), (*path, "outputFiles")), task_id
            ),
            environment=_env(spec.get("environment")),
            max_wall_clock_time=constraints.get("maxWallClockTime"),
            retention_time=constraints.get("retentionTime"),
            max_task_retry_count=spec.get("maxTaskRetryCount"),
            required_slots=spec.get("requiredSlots"),
            elevated=spec.get("elevated"),
            extra_json=canonical_json(spec.get("extra") or {}),
            container=self._task_container(spec.get("container"), (*path, "container")),
            depends_on=depends_on,
            stage=stage,
        )
        return task if len(self.errors) == before else None

    def _task_container(self, spec: dict[str, Any] | None, path: Path_) -> TaskContainer | None:
        if spec is None:
            return None
        pool = self.doc.data["pool"].get("containers")
        if pool is None:
            # "containerSettings ... If the Pool that will run this Task has
            # containerConfiguration set, this must be set as well. If [it] does not, this
            # must not be set" (BatchTaskCreateOptions.containerSettings).
            self.error(
                "a task with a container needs pool.containers: set it to run container tasks", path, key=True
            )
            return None
        servers = [r["server"] for r in pool.get("registries") or []]
        if spec.get("registry") is not None and spec["registry"] not in servers:
            known = ", ".join(servers) or "none"
            self.error(
                f"registry {spec['registry']!r} is not one of pool.containers.registries (servers: {known})",
                (*path, "registry"),
            )
            return None
        return TaskContainer(
            image=spec["image"],
            options=spec.get("options") or None,
            working_directory=spec.get("workingDirectory"),
            registry=spec.get("registry"),
        )


def _job_id(spec: dict[str, Any], name: str) -> str:
    return spec.get("id") or f"{name}-job"


def _pool_containers(spec: dict[str, Any] | None) -> PoolContainers | None:
    if spec is None:
        return None
    registries = tuple(
        Registry(r["server"], r.get("username"), r.get("passwordEnv"), r.get("identityReference"))
        for r in spec.get("registries") or []
    )
    return PoolContainers(spec.get("type", "dockerCompatible"), tuple(spec.get("images") or ()), registries)


def _outputs(tasks: list[Task], logs: str | None) -> list[dict[str, Any]]:
    """What later stages see of a stage's output files (not the logs each sends to `logs`): the
    task, the container, the path and pattern, and `ref` (container/name, for a blob resource
    file) where the name is known."""
    return [
        {
            "task": t.id,
            "container": o.container,
            "path": o.path,
            "pattern": o.pattern,
            "ref": f"{o.container}/{o.path}" if o.path and not _WILDCARD.search(o.pattern) else None,
        }
        for t in tasks
        for o in t.output_files
        if o.container != logs
    ]


_WILDCARD = re.compile(r"[*?\[]")


def _command_line(spec: dict[str, Any]) -> str:
    shell = spec.get("shell")
    return commands.with_shell(shell, spec["commandLine"]) if shell else spec["commandLine"]


def _valid_id(value: Any) -> bool:
    return isinstance(value, str) and _BATCH_ID.fullmatch(value) is not None


def _env(spec: dict[str, Any] | None) -> tuple[tuple[str, str], ...]:
    def text(v: Any) -> str:
        return json.dumps(v) if isinstance(v, bool) else str(v)

    return tuple(sorted((k, text(v)) for k, v in (spec or {}).items()))
