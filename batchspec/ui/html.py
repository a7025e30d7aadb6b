"""The run report: one self-contained HTML file (inline SVG, CSS and a few lines of script; no
network), from what `status` reads (live/status.py).

- a node x time timeline: each task attempt is a bar on its node, coloured by result, with its
  retries and requeues marked and told in the tooltip; each node's start task too;
- the tasks by state, node-hours used (dedicated and spot), the failures by cause;
- a table of the tasks, sortable by any column.

The service keeps only a task's last attempt (executionInfo); an earlier one is drawn from what
apply saw of it while it waited (its kept logs, apply/attempts.py), else it shows only in the
retry count on the last attempt's bar.
"""

from __future__ import annotations

from array import array
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timezone
from html import escape
from pathlib import Path
from typing import Any

from batchspec.model import DesiredState

_WIDTH, _ROW, _LABEL = 960, 20, 180  # px: timeline width, row height, node label column

# How the report is opened headless (its browser test and its benchmark, with Debian's chromium):
# a fresh profile and no background networking, on a machine with no network beyond its own.
HEADLESS_CHROMIUM_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)

_STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#1d2430}
h1{font-size:20px;margin:0 0 4px}h2{font-size:16px;margin:24px 0 8px}
.meta{color:#5b6472}.cards{display:flex;gap:12px;flex-wrap:wrap}
.card{border:1px solid #d8dde5;border-radius:6px;padding:8px 12px;min-width:90px}
.card b{display:block;font-size:18px}
svg text{font:11px monospace;fill:#5b6472}
rect.success{fill:#2e9e5b}rect.failure{fill:#d64545}rect.running{fill:#3577d4}rect.other{fill:#9aa3af}
rect.start{fill:#c9ced6}rect.start.failure{fill:#f0a3a3}rect.moved{stroke:#e0a21b;stroke-width:2}
rect.earlier{fill-opacity:.55}
table{border-collapse:collapse;margin-top:8px}
th,td{padding:3px 10px;border-bottom:1px solid #eceff3;text-align:left}
th{cursor:pointer;user-select:none;background:#f6f7f9}td.num{text-align:right}
tr.failure td{color:#b42318}.cause{color:#b42318}.way{color:#8a5a00}
"""

_SCRIPT = """
document.querySelectorAll('table.sortable th').forEach((th, col) => th.addEventListener('click', () => {
  const body = th.closest('table').tBodies[0];
  const up = th.dataset.sorted !== 'up';
  th.closest('tr').querySelectorAll('th').forEach(h => delete h.dataset.sorted);
  th.dataset.sorted = up ? 'up' : 'down';
  const num = th.dataset.type === 'num';
  const key = r => num ? parseFloat(r.cells[col].textContent) || 0 : r.cells[col].textContent;
  const order = (a, b) => (key(a) > key(b) ? 1 : key(a) < key(b) ? -1 : 0) * (up ? 1 : -1);
  body.append(...Array.from(body.rows).sort(order));
}));
"""


def report_path(desired: DesiredState, given: str | None = None) -> Path:
    """Where the report goes: `given`, else beside the download folder (else the spec)."""
    if given:
        return Path(given)
    beside = Path(desired.download.to).parent if desired.download else Path(desired.spec_path).parent
    return beside / f"{desired.name}-report.html"


def _time(value: str | None) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def render(report: dict[str, Any], now: datetime | None = None) -> str:
    """The report page of `report` (status.read's dict) as of `now`."""
    return "".join(_page(report, now))


def write(report: dict[str, Any], path: Path, now: datetime | None = None) -> None:
    """The report page written to `path` as it is made: for 100,000 tasks the page is ~40 MB,
    which a whole string, its parts and its encoding would hold three times at once."""
    with path.open("w", encoding="utf-8") as out:
        for part in _page(report, now):
            out.write(part)


def _page(report: dict[str, Any], now: datetime | None) -> Iterator[str]:
    now = now or datetime.now(timezone.utc)
    tasks, pool, job = report["tasks"], report["pool"] or {}, report["job"] or {}
    nodes = pool.get("nodeList") or []
    yield "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
    yield f"<title>batchspec run: {escape(report['name'])}</title><style>{_STYLE}</style></head><body>"
    yield f"<h1>{escape(report['name'])}</h1>"
    yield (
        f"<p class='meta'>job {escape(job.get('id', '-'))} on pool {escape(pool.get('id', '-'))}, "
        f"as of {now.strftime('%Y-%m-%d %H:%M:%S')} UTC</p>"
    )
    yield _cards(tasks, nodes, now)
    yield "<h2>Timeline</h2>"
    yield from _timeline(tasks, nodes, now)
    yield _causes(report.get("causes") or [])
    yield "<h2>Tasks</h2>"
    yield from _table(tasks)
    yield f"<script>{_SCRIPT}</script></body></html>"


def _cards(tasks: list[dict], nodes: list[dict], now: datetime) -> str:
    states = Counter(t["result"] or t["state"] or "unknown" for t in tasks)
    hours = {True: 0.0, False: 0.0}
    for node in nodes:
        since = _time(node.get("allocationTime"))
        if since is not None:
            hours[bool(node.get("dedicated", True))] += max(0.0, (now - since).total_seconds()) / 3600
    cards = [("tasks", len(tasks))] + sorted(states.items())
    cards += [("node-hours, dedicated", f"{hours[True]:.2f}"), ("node-hours, spot", f"{hours[False]:.2f}")]
    body = "".join(f"<div class='card'><b>{escape(str(v))}</b>{escape(k)}</div>" for k, v in cards)
    return f"<div class='cards' id='counts'>{body}</div>"


def _bar_class(result: str | None, state: str | None) -> str:
    if result in ("success", "failure"):
        return result
    return "running" if state in ("running", "preparing") else "other"


class _NodeRuns:
    """The attempts drawn on one node's row, as columns: start and end (POSIX seconds), the
    task's position in the report's tasks (its row is made again to draw it: the report's rows
    are not kept, live/status.TaskRows), the attempt (0: the last), and each one's lane. As a
    tuple each with two datetimes, 100,000 attempts took ~25 MB beside the page being written."""

    __slots__ = ("start", "end", "index", "attempt", "lane", "lanes")

    def __init__(self) -> None:
        self.start, self.end = array("d"), array("d")
        self.index, self.attempt, self.lane = array("q"), array("q"), array("q")
        self.lanes = 1  # the start task's lane, then one per side-by-side task

    def add(self, start: datetime, end: datetime, index: int, attempt: int) -> None:
        self.start.append(start.timestamp())
        self.end.append(end.timestamp())
        self.index.append(index)
        self.attempt.append(attempt)

    def place(self) -> None:
        """A lane for each attempt, so that tasks running side by side on the node (several
        task slots) do not hide one another: the first lane free when it starts."""
        ends: list[float] = []
        self.lane = array("q", bytes(8 * len(self.start)))
        for i in sorted(range(len(self.start)), key=self.start.__getitem__):
            lane = next((k for k, busy_until in enumerate(ends) if busy_until <= self.start[i]), len(ends))
            if lane < len(ends):
                ends[lane] = self.end[i]
            else:
                ends.append(self.end[i])
            self.lane[i] = lane
        self.lanes = max(1, len(ends))


def _runs(tasks: Sequence[dict], now: datetime) -> dict[str, _NodeRuns]:
    """Every attempt that can be drawn, by node: each task's last (where the service says it
    ran) and the earlier ones apply saw whole (node, start and end)."""
    by_node: dict[str, _NodeRuns] = {}
    for index, task in enumerate(tasks):
        for seen in task.get("earlier") or ():
            if seen.get("node") and seen.get("startTime") and seen.get("endTime"):
                begin, end = _time(seen["startTime"]), _time(seen["endTime"])
                runs = by_node.setdefault(seen["node"], _NodeRuns())
                runs.add(begin, max(begin, end), index, seen["attempt"])
        if task.get("startTime") and task.get("node"):
            begin, end = _time(task["startTime"]), _time(task.get("endTime")) or now
            by_node.setdefault(task["node"], _NodeRuns()).add(begin, end, index, 0)
    for runs in by_node.values():
        runs.place()
    return by_node


def _timeline(tasks: Sequence[dict], nodes: list[dict], now: datetime) -> Iterator[str]:
    by_node = _runs(tasks, now)
    spans = [(min(r.start), max(r.end)) for r in by_node.values()]
    spans += [_span(n["startTask"], now) for n in nodes if (n.get("startTask") or {}).get("startTime")]
    if not spans:
        yield "<p class='meta'>No task has started yet.</p>"
        return
    begin = min(s for s, _ in spans)
    total = max(e - begin for _, e in spans) or 1.0
    ids = [n["id"] for n in nodes]
    ids += sorted(node_id for node_id in by_node if node_id not in ids)
    top: dict[str, int] = {}
    y = 0
    for node_id in ids:
        lanes = by_node[node_id].lanes if node_id in by_node else 1
        top[node_id], y = y, y + lanes * _ROW + 4

    def x(when: float) -> float:
        return _LABEL + (when - begin) / total * _WIDTH

    height = y + 16
    yield f"<svg id='timeline' width='{_LABEL + _WIDTH + 8}' height='{height}' xmlns='http://www.w3.org/2000/svg'>"
    yield "".join(f"<text x='0' y='{top[node_id] + 14}'>{escape(node_id[-24:])}</text>" for node_id in ids)
    for node in nodes:
        start = node.get("startTask") or {}
        if not start.get("startTime"):
            continue
        s, e = _span(start, now)
        kind = "start failure" if start.get("result") == "failure" else "start"
        ended = start.get("result") or "running"
        tip = f"start task on {node['id']}: {ended}, exit code {start.get('exitCode')}"
        yield _rect("start-task " + kind, x(s), top[node["id"]] + 3, x(e) - x(s), tip)
    for node_id, runs in by_node.items():
        for i, index in enumerate(runs.index):
            yield _bar(tasks[index], node_id, runs, i, top[node_id], x)
    yield f"<text x='{_LABEL}' y='{height - 2}'>0s</text>"
    yield f"<text x='{_LABEL + _WIDTH - 40}' y='{height - 2}'>{_seconds(total)}</text></svg>"


def _span(start_task: dict, now: datetime) -> tuple[float, float]:
    """When a node's start task ran (POSIX seconds), to `now` if it runs still."""
    return _time(start_task["startTime"]).timestamp(), (_time(start_task.get("endTime")) or now).timestamp()


def _bar(task: dict, node_id: str, runs: _NodeRuns, i: int, top: int, x: Callable[[float], float]) -> str:
    """The bar of attempt `i` of a node's runs, of `task` (its status row)."""
    s, e, attempt = runs.start[i], runs.end[i], runs.attempt[i]
    took = f"{e - s:.1f}s on {node_id}"
    if attempt:  # an earlier attempt: it failed, or it would not be retried
        tip = f"{task['id']}: attempt {attempt} of {task['retries'] + 1}, failed and retried, {took}"
        classes = "attempt failure earlier"
    else:
        kind = _bar_class(task.get("result"), task.get("state"))
        moved = task.get("retries") or task.get("requeues")
        tip = f"{task['id']}: {task.get('result') or task.get('state')}, "
        tip += f"exit code {task.get('exitCode')}, {took}"
        if task.get("cause"):
            tip += f"; cause: {task['cause']}"
        if moved:
            tip += f"; retried {task.get('retries', 0)}, requeued {task.get('requeues', 0)} time(s)"
        classes = f"attempt {kind}" + (" moved" if moved else "")
    return _rect(classes, x(s), top + runs.lane[i] * _ROW + 3, x(e) - x(s), tip, task["id"])


def _seconds(value: float) -> str:
    return f"{value:.1f}s" if value < 10 else f"{value:.0f}s"


def _rect(classes: str, x: float, y: float, width: float, tip: str, task_id: str | None = None) -> str:
    data = f" data-task='{escape(task_id)}'" if task_id else ""
    return (
        f"<rect class='{classes}'{data} x='{x:.1f}' y='{y:.1f}' width='{max(width, 1.5):.1f}' "
        f"height='{_ROW - 6}'><title>{escape(tip)}</title></rect>"
    )


def _causes(causes: list[dict]) -> str:
    if not causes:
        return ""
    items = []
    for c in causes:
        css = "cause" if c["failure"] else "way"
        examples = ", ".join(escape(e) for e in c["examples"])
        items.append(
            f"<li><span class='{css}'>{escape(c['key'])}</span>: {c['count']} {escape(c['kind'])}(s) "
            f"({examples}) - {escape(c.get('hint') or '')}</li>"
        )
    return "<h2>What went wrong</h2><ul id='causes'>" + "".join(items) + "</ul>"


def _table(tasks: list[dict]) -> Iterator[str]:
    head = [
        ("task", "text"),
        ("state", "text"),
        ("result", "text"),
        ("node", "text"),
        ("duration (s)", "num"),
    ]
    head += [("exit code", "num"), ("retries", "num"), ("requeues", "num"), ("cause", "text")]
    ths = "".join(f"<th data-type='{kind}'>{escape(name)}</th>" for name, kind in head)
    yield f"<table id='tasks' class='sortable'><thead><tr>{ths}</tr></thead><tbody>"
    for t in tasks:
        s, e = _time(t.get("startTime")), _time(t.get("endTime"))
        seconds = f"{(e - s).total_seconds():.1f}" if s and e else ""
        cells = [t["id"], t.get("state") or "", t.get("result") or "", t.get("node") or "", seconds]
        cells += ["" if t.get("exitCode") is None else str(t["exitCode"]), str(t.get("retries", 0))]
        cells += [str(t.get("requeues", 0)), t.get("cause") or ""]
        tds = "".join(
            f"<td class='num'>{escape(c)}</td>" if head[i][1] == "num" else f"<td>{escape(c)}</td>"
            for i, c in enumerate(cells)
        )
        yield f"<tr class='{escape(t.get('result') or '')}'>{tds}</tr>"
    yield "</tbody></table>"
