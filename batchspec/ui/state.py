"""The desired state as a tree, and JSON: what `render` prints. Nothing here computes or decides."""

from __future__ import annotations

import json
import os
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.tree import Tree

from batchspec.model import DesiredState, ResourceFile, Task


def to_json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False)


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


def _shown_path(path: str) -> str:
    relative = os.path.relpath(path)
    return relative if not relative.startswith("../../") else path


def _resource(rf: ResourceFile) -> str:
    source = rf.blob or (f"{rf.container}/{rf.blob_prefix or ''}*" if rf.container else rf.http_url)
    mode = f" (mode {rf.file_mode})" if rf.file_mode else ""
    return f"{source} -> {rf.file_path or '.'}{mode}"


def _task(tree: Tree, task: Task) -> None:
    node = tree.add(f"[bold]{escape(task.id)}[/]")
    node.add(f"commandLine: {escape(task.command_line)}")
    for rf in task.resource_files:
        node.add(f"resourceFile: {escape(_resource(rf))}")
    for of in task.output_files:
        node.add(
            f"outputFile: {escape(of.pattern)} -> {escape(of.container)}/"
            f"{escape(of.path or '')} (upon {of.upon})"
        )
    for key, value in task.environment:
        node.add(f"env: {escape(key)}={escape(value)}")
    if task.depends_on:
        node.add(f"dependsOn: {len(task.depends_on)} task(s)")
    if task.container:
        c = task.container
        node.add(f"container: {escape(c.image)}" + (f" (from {escape(c.registry)})" if c.registry else ""))
    for key, value in (
        ("maxWallClockTime", task.max_wall_clock_time),
        ("maxTaskRetryCount", task.max_task_retry_count),
        ("requiredSlots", task.required_slots),
    ):
        if value is not None:
            node.add(f"{key}: {value}")


def desired_state(state: DesiredState, console: Console) -> None:
    """Print the fully expanded desired state as a tree."""
    root = Tree(f"[bold]{escape(state.name)}[/] ({escape(state.spec_path)})")
    storage = root.add("storage")
    for container in state.containers:
        blobs = [b for b in state.blobs if b.container == container.name]
        c = storage.add(f"container [bold]{escape(container.name)}[/] ({len(blobs)} blob(s))")
        for blob in blobs:
            c.add(
                f"{escape(blob.name)}  {_size(blob.size)}  sha256:{blob.sha256[:12]}  "
                f"<- {escape(_shown_path(blob.source))}"
            )
    pool = state.pool
    p = root.add(f"pool [bold]{escape(pool.id)}[/]")
    p.add(f"vmSize: {escape(pool.vm_size)}")
    image = pool.image
    p.add(
        f"image: {escape(image.publisher)}/{escape(image.offer)}/{escape(image.sku)}/"
        f"{escape(image.version)}"
        + (f" ({escape(pool.node_agent_sku_id)})" if pool.node_agent_sku_id else "")
    )
    if pool.autoscale_formula:
        p.add(f"autoScale: {escape(pool.autoscale_formula)}")
    else:
        p.add(
            f"nodes: {pool.target_dedicated_nodes} dedicated, {pool.target_low_priority_nodes} low-priority"
        )
    p.add(f"taskSlotsPerNode: {pool.task_slots_per_node}")
    if pool.start_task:
        s = p.add(f"startTask: {escape(pool.start_task.command_line)}")
        for rf in pool.start_task.resource_files:
            s.add(f"resourceFile: {escape(_resource(rf))}")
    if pool.containers:
        c = p.add(f"containers: {pool.containers.type}")
        for image in pool.containers.images:
            c.add(f"image: {escape(image)}")
        for registry in pool.containers.registries:
            how = f"password from ${registry.password_env}" if registry.password_env else "identity"
            c.add(f"registry: {escape(registry.server)} ({escape(how)})")
    job = state.job
    j = root.add(f"job [bold]{escape(job.id)}[/] on pool {escape(job.pool_id)}")
    for name, job_task in (("preparationTask", job.preparation_task), ("releaseTask", job.release_task)):
        if job_task:
            t = j.add(f"{name}: {escape(job_task.command_line)}")
            for rf in job_task.resource_files:
                t.add(f"resourceFile: {escape(_resource(rf))}")
    tasks = j.add(f"tasks ({len(state.tasks)})")
    stage, parent = None, tasks
    for task in state.tasks:
        if task.stage is not None and task.stage != stage:
            stage = task.stage
            count = sum(1 for t in state.tasks if t.stage == stage)
            parent = tasks.add(f"stage [bold]{escape(stage)}[/] ({count} task(s))")
        _task(parent, task)
    if state.wait_timeout:
        root.add(f"wait: timeout {state.wait_timeout}")
    if state.download:
        d = state.download
        root.add(f"download: {escape(d.container)}/{escape(d.prefix or '')}* -> {escape(_shown_path(d.to))}")
    console.print(root)
