"""What status, triage and the run report keep of a listed task (live/status.TaskView): the same
JSON as the listing's, of the fields they read, held in slots."""

from __future__ import annotations

import copy

from batchspec.live.status import TaskView, reported_view
from batchspec.live.triage import triage


def _listed(task_id: str, node: str | None, **info) -> dict:
    """A task as `List Tasks` returns it with `$select=id,state,executionInfo,nodeInfo`."""
    task = {"id": task_id, "state": "completed"}
    if info:
        task["executionInfo"] = {"lastRequeueTime": "2026-12-05T10:00:00Z", **info}
    if node:
        task["nodeInfo"] = {
            "affinityId": "TVM:tvmps_0",
            "nodeUrl": f"https://acct.westeurope.batch.azure.com/pools/p/nodes/{node}",
            "poolId": "p",
            "nodeId": node,
            "taskRootDirectory": "workitems/j/job-1/t",
            "taskRootDirectoryUrl": "https://acct.westeurope.batch.azure.com/pools/p/nodes/n/files/x",
        }
    return task


FAILED = {"category": "usererror", "code": "FailureExitCode", "message": "exit code 2", "details": []}
TASKS = [
    _listed("a", "n1", startTime="2026-12-05T10:00:01Z", endTime="2026-12-05T10:00:02Z", exitCode=0,
            result="success", retryCount=0, requeueCount=0),
    _listed("b", "n1", startTime="2026-12-05T10:00:01Z", endTime="2026-12-05T10:00:03Z", exitCode=2,
            result="failure", retryCount=2, requeueCount=1, failureInfo=FAILED),
    _listed("c", None),
    {"id": "d", "state": "running", "executionInfo": {"startTime": None, "retryCount": 0}},
]  # fmt: skip


def test_a_view_reads_as_the_listing_s_json_of_the_fields_kept():
    views = [reported_view()(copy.deepcopy(t)) for t in TASKS]
    assert all(isinstance(v, TaskView) for v in views)
    assert dict(views[1]) == {
        "id": "b",
        "state": "completed",
        "executionInfo": {
            "startTime": "2026-12-05T10:00:01Z",
            "endTime": "2026-12-05T10:00:03Z",
            "exitCode": 2,
            "result": "failure",
            "retryCount": 2,
            "requeueCount": 1,
            "failureInfo": FAILED,
        },
        "nodeInfo": {"nodeId": "n1"},
    }
    assert dict(views[2]) == {"id": "c", "state": "completed"}  # never ran: no executionInfo
    assert views[2].get("executionInfo") is None and "nodeInfo" not in views[2]
    # A null the listing had is kept as null, a field it lacked stays missing.
    assert views[3]["executionInfo"] == {"startTime": None, "retryCount": 0}
    assert views[0]["id"] == "a" and views[0].get("nope", 5) == 5 and len(views[0]) == 4


def test_triage_of_the_views_is_triage_of_the_listing():
    views = [reported_view()(copy.deepcopy(t)) for t in TASKS]
    assert [c.as_dict() for c in triage(views)] == [c.as_dict() for c in triage(TASKS)]
    assert [c.key for c in triage(views)] == ["exit code 2", "preempted and requeued"]
