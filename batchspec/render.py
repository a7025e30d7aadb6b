"""Turn computed results into terminal text (rich) or JSON. Nothing here computes or decides."""

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
    job = state.job
    j = root.add(f"job [bold]{escape(job.id)}[/] on pool {escape(job.pool_id)}")
    tasks = j.add(f"tasks ({len(state.tasks)})")
    for task in state.tasks:
        _task(tasks, task)
    if state.wait_timeout:
        root.add(f"wait: timeout {state.wait_timeout}")
    if state.download:
        d = state.download
        root.add(f"download: {escape(d.container)}/{escape(d.prefix or '')}* -> {escape(_shown_path(d.to))}")
    console.print(root)


# -- plans ------------------------------------------------------------------------------------

_STYLE = {"create": "green", "update": "yellow", "rerun": "yellow", "replace": "magenta", "delete": "red"}
_VERB = {
    "create": "will be created",
    "update": "will be updated in place",
    "rerun": "will run again",
    "replace": "must be replaced",
    "delete": "will be destroyed",
}
_SHOWN_PER_GROUP = 10


def warnings(found, console: Console) -> None:
    """Print spec warnings (SpecWarning), each on its own line."""
    for warning in found:
        console.print(f"[yellow]{escape(str(warning))}[/]", soft_wrap=True)


def plan(p, console: Console, *, title: str | None = None) -> None:
    """Print a plan as `+ ~ -/+ -` lines with reasons, then the one-line summary."""
    if title:
        console.print(title)
    groups: dict[tuple[str, str], list] = {}
    for change in p.changes:
        groups.setdefault((change.kind, change.action.value), []).append(change)
    for (kind, action), changes in groups.items():
        style = _STYLE[action]
        for change in changes[:_SHOWN_PER_GROUP]:
            console.print(
                f"  [{style}]{change.action.symbol:>3}[/] {kind} [bold]{escape(change.id)}[/] {_VERB[action]}"
            )
            for reason in change.reasons:
                console.print(f"        {escape(reason)}", style="dim")
        if len(changes) > _SHOWN_PER_GROUP:
            console.print(
                f"  [{style}]{changes[0].action.symbol:>3}[/] ... and "
                f"{len(changes) - _SHOWN_PER_GROUP} more {kind}(s) {_VERB[action]}"
            )
    for note in p.notes:
        console.print(f"  note: {escape(note)}", style="dim")
    if p.pending_tasks:
        console.print(f"  {p.pending_tasks} task(s) still active or running: apply waits for them")
    s = p.summary()
    if not p.changes:
        console.print("[green]No changes.[/] The live state matches the spec.")
    else:
        console.print(
            f"[bold]Plan:[/] {s['add']} to add, {s['change']} to change, {s['destroy']} to destroy."
        )


# -- apply progress and summary ---------------------------------------------------------------


class ConsoleReporter:
    """Apply's progress on a terminal (live bars) or in a pipe (plain, rate-limited lines)."""

    def __init__(self, console: Console):
        self.console = console
        self._last_counts: tuple | None = None
        self._last_print = 0.0
        self._live = None

    def step(self, text: str) -> None:
        self._close_live()
        self.console.print(f"[bold cyan]==>[/] {escape(text)}")

    def note(self, text: str) -> None:
        self.console.print(f"    {escape(text)}", style="dim")

    def progress(self, label: str, total: int):
        from contextlib import contextmanager

        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

        @contextmanager
        def bar():
            if not self.console.is_terminal:
                yield lambda n: None
                self.console.print(f"    {label}: {total}/{total} done")
                return
            with Progress(
                "    " + label,
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=self.console,
                transient=False,
            ) as progress:
                task = progress.add_task(label, total=total)
                yield lambda n: progress.advance(task, n)

        return bar()

    def task_counts(self, counts: dict[str, int], elapsed: float) -> None:
        import time

        text = (
            f"    tasks: {counts['active']} active, {counts['running']} running, "
            f"{counts['succeeded']} succeeded, {counts['failed']} failed  ({elapsed:.0f}s)"
        )
        if self.console.is_terminal:
            from rich.live import Live

            if self._live is None:
                self._live = Live(text, console=self.console, refresh_per_second=4, transient=False)
                self._live.start()
            self._live.update(text)
            return
        key = tuple(counts.values())
        now = time.monotonic()
        if key != self._last_counts and (
            now - self._last_print > 2 or counts["active"] + counts["running"] == 0
        ):
            self.console.print(text)
            self._last_counts, self._last_print = key, now

    def _close_live(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None

    def close(self) -> None:
        self._close_live()


def outcome(o, console: Console, *, max_rows: int = 50) -> None:
    """The summary of an apply: a table of tasks (failed ones first), then their errors."""
    from rich.table import Table

    rows = sorted(o.rows, key=lambda r: (r.result != "failure", r.id))
    if rows:
        table = Table(show_edge=False, pad_edge=False, box=None, header_style="bold")
        for column in ("task", "state", "node", "duration", "exit code"):
            table.add_column(column, justify="right" if column in ("duration", "exit code") else "left")
        for r in rows[:max_rows]:
            style = "red" if r.result == "failure" else ("green" if r.result == "success" else None)
            table.add_row(
                escape(r.id),
                r.state,
                escape(r.node or "-"),
                f"{r.duration:.1f}s" if r.duration is not None else "-",
                "-" if r.exit_code is None else str(r.exit_code),
                style=style,
            )
        console.print(table)
        if len(rows) > max_rows:
            console.print(f"  ... and {len(rows) - max_rows} more task(s)")
    for r in [r for r in rows if r.result == "failure"][:10]:
        console.print(f"[red]task {escape(r.id)} failed[/]" + (f": {escape(r.failure)}" if r.failure else ""))
        if r.stderr_tail:
            console.print("  stderr (tail):", style="dim")
            for line in r.stderr_tail.splitlines()[-20:]:
                console.print(f"    {escape(line)}", style="dim")
    for problem in o.problems:
        console.print(f"[red]error:[/] {escape(problem)}")
    succeeded = sum(r.result == "success" for r in o.rows)
    failed = sum(r.result == "failure" for r in o.rows)
    other = len(o.rows) - succeeded - failed
    parts = [f"{succeeded} succeeded", f"{failed} failed"] + ([f"{other} not complete"] if other else [])
    transfers = f"{o.uploaded} file(s) uploaded, {o.submitted} task(s) submitted, {o.downloaded} downloaded"
    if o.timed_out:
        console.print(f"[yellow]Timed out[/] waiting for tasks: {', '.join(parts)}. {transfers}.")
    else:
        console.print(f"[bold]Apply complete:[/] tasks {', '.join(parts)}; {transfers}.")


def status(report: dict, console: Console) -> None:
    """The live state of a spec as tables."""
    from rich.table import Table

    def owned(flag) -> str:
        return "-" if flag is None else ("owned" if flag else "NOT owned")

    table = Table(title=f"spec {escape(report['name'])}", show_edge=False, box=None, header_style="bold")
    for column in ("kind", "id", "state", "details"):
        table.add_column(column)
    for c in report["containers"]:
        table.add_row(
            "container", escape(c["name"]), "exists" if c["exists"] else "missing", owned(c["owned"])
        )
    pool = report["pool"]
    if pool:
        nodes = ", ".join(f"{n} {s}" for s, n in sorted(pool["nodes"].items())) or "no nodes"
        table.add_row(
            "pool",
            escape(pool["id"]),
            f"{pool['state']}/{pool['allocationState']}",
            f"{owned(pool['owned'])}; {pool['vmSize']}; {nodes}",
        )
    else:
        table.add_row("pool", "-", "missing", "")
    job = report["job"]
    table.add_row(
        "job",
        escape(job["id"]) if job else "-",
        job["state"] if job else "missing",
        owned(job["owned"]) if job else "",
    )
    console.print(table)
    tasks = report["tasks"]
    if tasks:
        t = Table(show_edge=False, box=None, header_style="bold")
        for column in ("task", "state", "result", "exit code", "node"):
            t.add_column(column)
        for row in tasks[:200]:
            t.add_row(
                escape(row["id"]),
                row["state"] or "-",
                row["result"] or "-",
                "-" if row["exitCode"] is None else str(row["exitCode"]),
                escape(row["node"] or "-"),
            )
        console.print(t)
        if len(tasks) > 200:
            console.print(f"... and {len(tasks) - 200} more task(s)")
