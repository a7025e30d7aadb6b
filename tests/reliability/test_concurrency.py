"""Concurrency: two applies of one spec started at the same moment; one fails on the lock (or
waits for it), and the end state is correct either way."""

from __future__ import annotations

import pytest

import reliability_support as rs
from reliability_support import new_name


def _both(ws: rs.Workspace, *args: str) -> list[tuple[int, str, str]]:
    procs = [ws.popen_apply("--var", rs.slow(0.3), *args) for _ in range(2)]
    outputs = [p.communicate(timeout=180) for p in procs]
    return [(p.returncode, out, err) for p, (out, err) in zip(procs, outputs, strict=True)]


def _converged(ws: rs.Workspace, stack: rs.Stack) -> list:
    ws.check_outputs()
    tasks = list(stack.batch_client().list_tasks(f"{ws.name}-job"))
    assert sorted(t.id for t in tasks) == sorted(f"topn-taskdata{n}" for n in range(3))
    plan = ws.run("plan", "spec.yaml", "--detailed-exitcode", "--var", rs.slow(0.3))
    assert plan.returncode == 0, plan.stdout + plan.stderr
    return tasks


def test_of_two_simultaneous_applies_one_fails_on_the_lock_and_the_other_converges(tmp_path, clean):
    ws = rs.Workspace.create(tmp_path / "ws", new_name(), clean.env)
    results = sorted(_both(ws), key=lambda r: r[0])
    assert [code for code, _, _ in results] == [0, 1], results
    (_, won, _), (_, _, lost) = results
    assert "Apply complete: tasks 3 succeeded, 0 failed" in won
    assert "the spec is locked by apply on host" in lost and "pid" in lost
    assert "Traceback" not in lost
    _converged(ws, clean)


@pytest.mark.parametrize("services", ["clean", "faulty"])
def test_two_simultaneous_applies_waiting_on_the_lock_both_succeed_and_run_each_task_once(
    tmp_path, services, request
):
    stack: rs.Stack = request.getfixturevalue(services)
    ws = rs.Workspace.create(tmp_path / "ws", new_name(), stack.env, retries=6)
    results = _both(ws, "--lock-timeout", "90s")
    assert [code for code, _, _ in results] == [0, 0], results
    outputs = [out for _, out, _ in results]
    # The one that waited found the work done (or still running, and waited for it): it
    # submitted nothing.
    assert sum("submitting 3 task(s)" in out for out in outputs) == 1, outputs
    tasks = _converged(ws, stack)
    assert all(t.execution_info.result == "success" for t in tasks)
