"""A plan as `+ ~ -/+ -` lines with reasons and the one-line summary, and spec warnings."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape

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
    for check in p.checks:
        colour = {"error": "red", "warning": "yellow"}.get(check.level, "dim")
        console.print(f"[{colour}]{check.level}:[/] {escape(check.message)}", soft_wrap=True)
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
