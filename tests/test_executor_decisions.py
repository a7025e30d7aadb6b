"""The executor's decisions that need no service: they read live documents (as the Batch REST API
returns them) and decide, so they are tested here on documents built by hand, in milliseconds."""

from __future__ import annotations

import pytest

from batchspec.apply.pool import nodes_ready, restart_split
from batchspec.apply.results import Outcome, TaskRow, exit_code, row, tally
from batchspec.errors import ApplyError


def _nodes(*states: str) -> list[dict]:
    return [{"id": f"n{i}", "state": s} for i, s in enumerate(states)]


def test_a_new_start_task_reboots_working_nodes_and_replaces_broken_ones():
    reboot, replace = restart_split(_nodes("idle", "running", "starttaskfailed", "unusable", "starting"))
    assert [n["state"] for n in reboot] == ["idle", "running"]
    assert [n["state"] for n in replace] == ["starttaskfailed", "unusable"]  # cannot be rebooted


@pytest.mark.parametrize(
    ("allocation", "states", "ready"),
    [
        ("resizing", ["idle"], False),  # still allocating
        ("steady", ["idle", "starting"], False),  # a node still starting
        ("steady", ["waitingforstarttask"], False),
        ("steady", [], False),  # no node yet
        ("steady", ["idle", "running"], True),
        ("steady", ["idle", "unusable"], True),  # one usable node is enough to start
    ],
)
def test_the_pool_is_ready_once_steady_with_its_nodes_started(allocation, states, ready):
    assert nodes_ready("p", {"allocationState": allocation}, _nodes(*states)) is ready


def test_a_steady_pool_without_a_usable_node_is_an_error_not_a_wait():
    with pytest.raises(ApplyError, match=r"no usable node \(states: preempted, unusable\)"):
        nodes_ready("p", {"allocationState": "steady"}, _nodes("unusable", "preempted"))


def test_an_allocation_error_is_reported_at_once_with_its_code():
    live = {
        "allocationState": "steady",
        "resizeErrors": [{"code": "AccountCoreQuotaReached", "message": "quota of 20 cores reached"}],
    }
    with pytest.raises(ApplyError, match="AccountCoreQuotaReached: quota of 20 cores reached"):
        nodes_ready("p", live, [])


def test_a_pool_left_short_waits_for_the_nodes_it_got_to_start():
    live = {
        "allocationState": "steady",
        "resizeErrors": [{"code": "AccountCoreQuotaReached", "message": "quota of 20 cores reached"}],
    }
    assert nodes_ready("p", live, _nodes("starting")) is False
    assert nodes_ready("p", live, _nodes("idle")) is True


def test_a_task_row_says_where_and_how_the_task_ended():
    live = {
        "state": "completed",
        "nodeInfo": {"nodeId": "tvm-1"},
        "executionInfo": {
            "startTime": "2026-12-05T10:00:00Z",
            "endTime": "2026-12-05T10:00:02.5Z",
            "exitCode": 2,
            "result": "failure",
            "failureInfo": {"code": "FailureExitCode", "message": "The task exited with an exit code"},
        },
    }
    r = row("t1", live)
    assert (r.state, r.node, r.exit_code, r.result, r.duration) == ("completed", "tvm-1", 2, "failure", 2.5)
    assert r.failure == "FailureExitCode: The task exited with an exit code"
    assert row("t2", None).state == "missing"


@pytest.mark.parametrize(
    ("timed_out", "results", "problems", "code"),
    [
        (False, ["success"], [], 0),
        (False, ["success", "failure"], [], 3),
        (True, ["failure"], [], 4),  # the timeout says more than the failures so far
        (False, ["success"], ["node n1: reboot failed"], 1),
        (False, ["failure"], ["node n1: reboot failed"], 3),
    ],
)
def test_the_exit_code_of_an_apply(timed_out, results, problems, code):
    rows = [TaskRow(f"t{i}", "completed", result=r) for i, r in enumerate(results)]
    failed = results.count("failure")
    outcome = Outcome(0, rows=rows, tasks=len(rows), failed=failed, timed_out=timed_out, problems=problems)
    assert exit_code(outcome) == code


def test_the_summary_lists_failed_tasks_first_then_by_id_and_counts_them_all():
    def live(result: str) -> dict:
        info = {"result": result, "exitCode": int(result == "failure")}
        return {"state": "completed", "executionInfo": info}

    tasks = {f"t{i:03d}": live("failure" if i in (7, 70, 99) else "success") for i in range(120)}
    del tasks["t005"]  # not there: "missing"
    tasks["t006"] = {"state": "running", "executionInfo": {}}
    rows, results = tally(sorted([*tasks, "t005"], reverse=True), tasks, shown=6)
    assert [(r.id, r.state) for r in rows] == [
        ("t007", "completed"),
        ("t070", "completed"),
        ("t099", "completed"),
        ("t000", "completed"),
        ("t001", "completed"),
        ("t002", "completed"),
    ]
    assert results == {"success": 115, "failure": 3, None: 2}
    rows, _ = tally(sorted([*tasks, "t005"]), tasks, shown=10)
    last = [(r.id, r.state) for r in rows[-3:]]
    assert last == [("t004", "completed"), ("t005", "missing"), ("t006", "running")]


def test_the_wait_line_shows_the_pace_the_time_left_and_troubled_nodes():
    import io

    from rich.console import Console

    from batchspec.apply.results import pace
    from batchspec.ui.progress import ConsoleReporter

    assert pace(10, 5, 5.0) == {"rate": 2.0, "left": 2.5}
    assert pace(0, 5, 5.0) == {}  # nothing completed yet: no pace to tell
    out = io.StringIO()
    counts = {"active": 3, "running": 2, "succeeded": 10, "failed": 0, **pace(10, 5, 5.0), "preempted": 1}
    ConsoleReporter(Console(file=out, width=200)).task_counts(counts, 5.0)
    assert out.getvalue().strip() == (
        "tasks: 3 active, 2 running, 10 succeeded, 0 failed; 2.0/s, about 2s left; nodes: 1 preempted  (5s)"
    )
