"""The end of an apply (each task's row, failures with their stderr) and `status`."""

from __future__ import annotations

from collections import Counter

from rich.console import Console
from rich.markup import escape


def outcome(o, console: Console) -> None:
    """The summary of an apply: a table of the tasks it lists (failed ones first), then the
    errors by cause."""
    from rich.table import Table

    if o.rows:
        table = Table(show_edge=False, pad_edge=False, box=None, header_style="bold")
        for column in ("task", "state", "node", "duration", "exit code"):
            table.add_column(column, justify="right" if column in ("duration", "exit code") else "left")
        for r in o.rows:
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
        if o.tasks > len(o.rows):
            console.print(f"  ... and {o.tasks - len(o.rows)} more task(s)")
    causes([c.as_dict() for c in o.causes], console)
    for problem in o.problems:
        console.print(f"[red]error:[/] {escape(problem)}")
    other = o.tasks - o.succeeded - o.failed
    parts = [f"{o.succeeded} succeeded", f"{o.failed} failed"] + ([f"{other} not complete"] if other else [])
    transfers = f"{o.uploaded} file(s) uploaded, {o.submitted} task(s) submitted, {o.downloaded} downloaded"
    if o.timed_out:
        console.print(f"[yellow]Timed out[/] waiting for tasks: {', '.join(parts)}. {transfers}.")
    else:
        console.print(f"[bold]Apply complete:[/] tasks {', '.join(parts)}; {transfers}.")


def causes(found: list[dict], console: Console) -> None:
    """What went wrong, by cause (live/triage.py, as dicts): failures, then what happened on the
    way."""
    for title, group in (
        ("Failures by cause:", [c for c in found if c["failure"]]),
        ("On the way:", [c for c in found if not c["failure"]]),
    ):
        if not group:
            continue
        console.print(f"[bold]{title}[/]")
        for c in group:
            shown = c["examples"]
            more = f", +{c['count'] - len(shown)} more" if c["count"] > len(shown) else ""
            colour = "red" if c["failure"] else "yellow"
            names = ", ".join(escape(e) for e in shown) + more
            console.print(f"  [{colour}]{escape(c['key'])}[/]: {c['count']} {c['kind']}(s): {names}")
            if c["detail"]:
                console.print(f"    {escape(c['detail'])}", style="dim")
            if c["hint"]:
                console.print(f"    {escape(c['hint'])}")
            if c.get("stderr"):
                console.print(f"    stderr (tail) of {escape(shown[0])}:", style="dim")
                for line in c["stderr"].splitlines()[-20:]:
                    console.print(f"      {escape(line)}", style="dim")


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
    details = owned(job["owned"]) if job else ""
    if job and job.get("preparation") is not None:
        ran = Counter(
            (p["preparationTask"] or {}).get("result") or (p["preparationTask"] or {}).get("state") or "-"
            for p in job["preparation"]
        )
        shown = ", ".join(f"{n} {r}" for r, n in sorted(ran.items())) or "not run yet"
        details += f"; preparation task: {shown}"
    table.add_row("job", escape(job["id"]) if job else "-", job["state"] if job else "missing", details)
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
    causes(report["causes"], console)
