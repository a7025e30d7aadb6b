"""The run report's page (ui/html.py), rendered from hand-built status data."""

from __future__ import annotations

import re
from datetime import datetime, timezone

from batchspec.ui.html import render


def _task(
    task_id: str, node: str, start: str, end: str | None, result: str | None = "success", **more
) -> dict:
    base = {
        "state": "completed" if end else "running",
        "exitCode": 0 if end else None,
        "retries": 0,
        "requeues": 0,
    }
    return (
        {"id": task_id, "node": node, "startTime": start, "endTime": end, "result": result, "cause": None}
        | base
        | more
    )


def _report(tasks: list[dict]) -> dict:
    node = {"id": "n1", "state": "running", "dedicated": True, "allocationTime": "2026-12-05T10:00:00Z"}
    return {
        "name": "demo",
        "pool": {"id": "p", "nodeList": [node]},
        "job": {"id": "j"},
        "tasks": tasks,
        "causes": [],
    }


def test_tasks_side_by_side_on_one_node_get_lanes_of_their_own():
    tasks = [
        _task("a", "n1", "2026-12-05T10:00:01Z", "2026-12-05T10:00:05Z"),
        _task("b", "n1", "2026-12-05T10:00:02Z", "2026-12-05T10:00:04Z"),
        _task("c", "n1", "2026-12-05T10:00:06Z", "2026-12-05T10:00:07Z"),  # a's lane is free again
    ]
    page = render(_report(tasks), now=datetime(2026, 12, 5, 10, 1, tzinfo=timezone.utc))
    y = {m[0]: float(m[1]) for m in re.findall(r"data-task='(\w)' x='[\d.]+' y='([\d.]+)'", page)}
    assert y["a"] == y["c"] < y["b"]
    assert "node-hours, dedicated" in page and "<b>0.02</b>" in page  # one node for a minute


def test_a_retried_or_requeued_task_is_marked_and_every_value_is_escaped():
    tasks = [
        _task(
            "<b>x",
            "n1",
            "2026-12-05T10:00:01Z",
            "2026-12-05T10:00:02Z",
            "failure",
            requeues=2,
            cause="exit code 1",
        )
    ]
    page = render(_report(tasks))
    assert "<b>x" not in page and "&lt;b&gt;x" in page
    assert "class='attempt failure moved'" in page
    assert "requeued 2 time(s)" in page and "cause: exit code 1" in page


def test_each_earlier_attempt_apply_saw_is_a_bar_of_its_own_on_its_node():
    seen = {"node": "n1", "startTime": "2026-12-05T10:00:01Z", "endTime": "2026-12-05T10:00:03Z"}
    tasks = [
        _task(
            "r",
            "n2",
            "2026-12-05T10:00:06Z",
            "2026-12-05T10:00:08Z",
            retries=2,
            earlier=[
                {"attempt": 1, **seen},
                {"attempt": 2, "endTime": "2026-12-05T10:00:05Z"},  # not seen running: not drawn
            ],
        ),
        _task("s", "n1", "2026-12-05T10:00:02Z", "2026-12-05T10:00:04Z"),  # beside attempt 1
    ]
    page = render(_report(tasks), now=datetime(2026, 12, 5, 10, 1, tzinfo=timezone.utc))
    bar = r"<rect class='([^']*)' data-task='(\w)' x='[\d.]+' y='([\d.]+)'.*?<title>([^<]*)"
    bars = re.findall(bar, page)
    by_task = {}
    for classes, task, y, tip in bars:
        by_task.setdefault(task, []).append((classes, float(y), tip))
    assert [c for c, _, _ in by_task["r"]] == ["attempt failure earlier", "attempt success moved"]
    earlier = by_task["r"][0]
    assert "attempt 1 of 3, failed and retried, 2.0s on n1" in earlier[2]
    assert earlier[1] != by_task["s"][0][1]  # side by side on n1: lanes of their own
    assert "retried 2, requeued 0 time(s)" in by_task["r"][1][2]


def test_the_report_of_rows_made_as_they_are_read_is_the_page_of_a_list_of_them():
    from batchspec.live.status import TaskRows

    def view(task_id: str, node: str, start: str, end: str, retries: int = 0) -> dict:
        info = {"startTime": start, "endTime": end, "exitCode": 0, "result": "success", "retryCount": retries}
        return {"id": task_id, "state": "completed", "executionInfo": info, "nodeInfo": {"nodeId": node}}

    views = [
        view("a", "n1", "2026-12-05T10:00:01Z", "2026-12-05T10:00:05Z"),
        view("b", "n1", "2026-12-05T10:00:06Z", "2026-12-05T10:00:08Z", retries=1),
    ]
    earlier = {
        "b": [
            {
                "attempt": 1,
                "node": "n1",
                "startTime": "2026-12-05T10:00:02Z",
                "endTime": "2026-12-05T10:00:04Z",
            }
        ]
    }
    rows = TaskRows(views, earlier)
    assert len(rows) == 2 and rows[1]["earlier"] == earlier["b"] and [r["id"] for r in rows[:1]] == ["a"]
    assert rows[0] == rows[0] and rows[0] is not rows[0]  # made on each look, not kept
    now = datetime(2026, 12, 5, 10, 1, tzinfo=timezone.utc)
    page = render(_report(rows), now=now)
    assert page == render(_report(list(rows)), now=now)
    assert page.count("class='attempt ") == 3 and "attempt 1 of 2, failed and retried" in page
