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

from collections import Counter
from collections.abc import Iterator, Sequence
from datetime import datetime, timezone
from html import escape
from pathlib import Path
from typing import Any, NamedTuple

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


class _Run(NamedTuple):
    """An attempt the timeline draws: its task's position in the report's tasks (the row is
    made again to draw it: the report's rows are not kept, live/status.TaskRows), attempt None
    for the last."""

    key: str
    node: str
    start: datetime
    end: datetime
    index: int
    attempt: int | None


def _runs(tasks: Sequence[dict], now: datetime) -> list[_Run]:
    """Every attempt that can be drawn: each task's last (where the service says it ran) and
    the earlier ones apply saw whole (node, start and end)."""
    runs = []
    for index, task in enumerate(tasks):
        for seen in task.get("earlier") or ():
            if seen.get("node") and seen.get("startTime") and seen.get("endTime"):
                begin, end = _time(seen["startTime"]), _time(seen["endTime"])
                key = f"{task['id']}#{seen['attempt']}"
                runs.append(_Run(key, seen["node"], begin, max(begin, end), index, seen["attempt"]))
        if task.get("startTime") and task.get("node"):
            begin, end = _time(task["startTime"]), _time(task.get("endTime")) or now
            runs.append(_Run(task["id"], task["node"], begin, end, index, None))
    return runs


def _lanes(runs: list[_Run]) -> dict[str, int]:
    """A lane of its node's row for each attempt, so that tasks running side by side on one
    node (several task slots) do not hide one another: the first lane free when it starts."""
    lane_of: dict[str, int] = {}
    by_node: dict[str, list[_Run]] = {}
    for run in runs:
        by_node.setdefault(run.node, []).append(run)
    for placed in by_node.values():
        ends: list[datetime] = []
        for run in sorted(placed, key=lambda r: r.start):
            lane = next((i for i, busy_until in enumerate(ends) if busy_until <= run.start), len(ends))
            if lane < len(ends):
                ends[lane] = run.end
            else:
                ends.append(run.end)
            lane_of[run.key] = lane
    return lane_of


def _timeline(tasks: Sequence[dict], nodes: list[dict], now: datetime) -> Iterator[str]:
    runs = _runs(tasks, now)
    spans = [(r.start, r.end) for r in runs]
    spans += [
        (_time(n["startTask"]["startTime"]), _time(n["startTask"].get("endTime")) or now)
        for n in nodes
        if n.get("startTask") and n["startTask"].get("startTime")
    ]
    if not spans:
        yield "<p class='meta'>No task has started yet.</p>"
        return
    begin = min(s for s, _ in spans)
    total = max((e - begin).total_seconds() for _, e in spans) or 1.0
    ids = [n["id"] for n in nodes]
    ids += sorted({r.node for r in runs if r.node not in ids})
    lane_of = _lanes(runs)
    lanes = {node_id: 1 for node_id in ids}  # the start task's lane, then one per side-by-side task
    for run in runs:
        lanes[run.node] = max(lanes[run.node], lane_of[run.key] + 1)
    top: dict[str, int] = {}
    y = 0
    for node_id in ids:
        top[node_id], y = y, y + lanes[node_id] * _ROW + 4

    def x(when: datetime) -> float:
        return _LABEL + (when - begin).total_seconds() / total * _WIDTH

    height = y + 16
    yield f"<svg id='timeline' width='{_LABEL + _WIDTH + 8}' height='{height}' xmlns='http://www.w3.org/2000/svg'>"
    yield "".join(f"<text x='0' y='{top[node_id] + 14}'>{escape(node_id[-24:])}</text>" for node_id in ids)
    for node in nodes:
        start = node.get("startTask") or {}
        if not start.get("startTime"):
            continue
        s, e = _time(start["startTime"]), _time(start.get("endTime")) or now
        kind = "start failure" if start.get("result") == "failure" else "start"
        ended = start.get("result") or "running"
        tip = f"start task on {node['id']}: {ended}, exit code {start.get('exitCode')}"
        yield _rect("start-task " + kind, x(s), top[node["id"]] + 3, x(e) - x(s), tip)
    for run in runs:
        task, s, e = tasks[run.index], run.start, run.end
        took = f"{(e - s).total_seconds():.1f}s on {run.node}"
        if run.attempt is not None:  # an earlier attempt: it failed, or it would not be retried
            tip = f"{task['id']}: attempt {run.attempt} of {task['retries'] + 1}, failed and retried"
            tip += f", {took}"
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
        y_bar = top[run.node] + lane_of[run.key] * _ROW + 3
        yield _rect(classes, x(s), y_bar, x(e) - x(s), tip, task["id"])
    yield f"<text x='{_LABEL}' y='{height - 2}'>0s</text>"
    yield f"<text x='{_LABEL + _WIDTH - 40}' y='{height - 2}'>{_seconds(total)}</text></svg>"


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
