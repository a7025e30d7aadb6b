"""Apply's progress on a terminal (live bars) or in a pipe (plain, rate-limited lines)."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape

_COUNTED = ("active", "running", "succeeded", "failed", "preempted", "unusable")


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
            f"{counts['succeeded']} succeeded, {counts['failed']} failed"
        )
        if "rate" in counts:
            text += f"; {counts['rate']:.1f}/s, about {_duration(counts['left'])} left"
        troubled = [f"{counts[s]} {s}" for s in ("preempted", "unusable") if counts.get(s)]
        if troubled:
            text += f"; nodes: {', '.join(troubled)}"
        text += f"  ({elapsed:.0f}s)"
        if self.console.is_terminal:
            from rich.live import Live

            if self._live is None:
                self._live = Live(text, console=self.console, refresh_per_second=4, transient=False)
                self._live.start()
            self._live.update(text)
            return
        # A plain line when the counts change (the pace alone does not make one).
        key = tuple(counts.get(k) for k in _COUNTED)
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


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f}s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"
