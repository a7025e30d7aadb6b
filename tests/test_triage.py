"""Triage by cause (live/triage.py) on live documents built by hand, as the Batch REST API returns
them: each failure mode maps to its cause, with counts, examples and a hint."""

from __future__ import annotations

from batchspec.live.triage import task_cause, triage


def _task(task_id: str, result: str | None = "failure", **info) -> dict:
    return {"id": task_id, "state": "completed", "executionInfo": {"result": result, **info}}


def _failure(code: str, message: str = "", **details) -> dict:
    return {
        "category": "usererror",
        "code": code,
        "message": message,
        "details": [{"name": k, "value": v} for k, v in details.items()],
    }


def test_each_failure_maps_to_its_cause():
    cases = {
        "exit code 7": _task("a", exitCode=7, failureInfo=_failure("FailureExitCode")),
        "wall clock exceeded": _task(
            "b", failureInfo=_failure("TaskEnded", "exceeded", MaxWallClockTime="PT1S")
        ),
        "terminated": _task("c", failureInfo=_failure("TaskEnded", "Task was ended by user request.")),
        "resource file unreadable": _task("d", failureInfo=_failure("BlobAccessDenied")),
        "output upload failed": _task("e", exitCode=0, failureInfo=_failure("FileUploadAccessDenied")),
        "command could not start": _task("f", failureInfo=_failure("CommandProgramNotFound")),
    }
    assert {key: task_cause(task) for key, task in cases.items()} == {key: key for key in cases}
    assert task_cause(_task("g", result="success", exitCode=0)) is None
    assert task_cause({"id": "h", "state": "active"}) is None


def test_causes_count_their_tasks_show_three_examples_and_put_failures_first():
    tasks = [_task(f"t{i}", exitCode=1, failureInfo=_failure("FailureExitCode")) for i in range(5)]
    tasks += [_task("w", failureInfo=_failure("TaskEnded", MaxWallClockTime="PT1S"))]
    tasks += [_task("moved", result="success", exitCode=0, requeueCount=2)]
    nodes = [
        {"id": "n1", "state": "starttaskfailed", "startTaskInfo": {"exitCode": 3}},
        {"id": "n2", "state": "unusable", "errors": [{"code": "DiskFull", "message": "no space"}]},
        {"id": "n3", "state": "idle"},
    ]
    pool = {"id": "p", "resizeErrors": [{"code": "AccountCoreQuotaReached", "message": "quota reached"}]}
    causes = triage(tasks, nodes, pool)
    assert [(c.key, c.count, c.failure) for c in causes] == [
        ("exit code 1", 5, True),
        ("start task failed", 1, True),
        ("wall clock exceeded", 1, True),
        ("allocation error: AccountCoreQuotaReached", 1, False),
        ("node unusable", 1, False),
        ("preempted and requeued", 1, False),
    ]
    first = causes[0]
    assert first.examples == ["t0", "t1", "t2"] and first.detail == "FailureExitCode"
    assert "stderr" in first.hint
    assert causes[1].kind == "node" and causes[1].detail == "exit code 3"
    assert causes[3].as_dict()["hint"].startswith("the pool could not get all its nodes")
    assert triage([_task("ok", result="success", exitCode=0)]) == []
