"""The referee every emulator answer meets (support/definition.py, support/answers.py): it must
object to what the definition rules out, or the suite-wide check proves nothing."""

from __future__ import annotations

import json

from support import definition
from support.answers import Answers

# The 200 body of Pools_GetPool_Basic.json, the definition's own example (2025-06-01.21.0).
POOL = {
    "id": "pool",
    "url": "https://account.region.batch.azure.com/pools/pool",
    "eTag": "0x8D413091E739A56",
    "lastModified": "2016-11-22T18:55:25.2608598Z",
    "creationTime": "2016-11-22T18:55:24.2632496Z",
    "state": "active",
    "stateTransitionTime": "2016-11-22T18:55:24.2632496Z",
    "allocationState": "steady",
    "allocationStateTransitionTime": "2016-11-22T18:55:24.8154041Z",
    "vmSize": "standard_a1",
    "resizeTimeout": "PT15M",
    "currentDedicatedNodes": 0,
    "currentLowPriorityNodes": 0,
    "targetDedicatedNodes": 0,
    "targetLowPriorityNodes": 0,
    "enableAutoScale": False,
    "enableInterNodeCommunication": False,
    "startTask": {
        "commandLine": "/bin/bash -c 'echo start task'",
        "userIdentity": {"autoUser": {"scope": "task", "elevationLevel": "nonadmin"}},
        "maxTaskRetryCount": 0,
        "waitForSuccess": False,
    },
    "taskSlotsPerNode": 1,
    "taskSchedulingPolicy": {"nodeFillType": "spread"},
    "virtualMachineConfiguration": {
        "imageReference": {
            "publisher": "Canonical",
            "offer": "0001-com-ubuntu-server-focal",
            "sku": "20_04-lts",
            "version": "latest",
        },
        "nodeAgentSKUId": "batch.node.ubuntu 20.04",
    },
}
URL = "/pools/pool?api-version=2025-06-01"


def _get_pool(body, status=200, **kw) -> list[str]:
    return definition.response_errors("GET", URL, status, body, **kw)


def test_the_definitions_own_example_conforms_with_the_odata_envelope():
    assert _get_pool(POOL) == []
    assert _get_pool({"odata.metadata": "https://x/$metadata#pools/@Element", **POOL}) == []


def test_a_property_outside_the_definition_is_named():
    assert _get_pool({**POOL, "secret": "x"}) == [
        "Pools_GetPool 200 (body): Additional properties are not allowed ('secret' was unexpected)"
    ]
    nested = {**POOL, "startTask": {**POOL["startTask"], "odata.metadata": "x"}}
    assert _get_pool(nested) and "startTask" in _get_pool(nested)[0]


def test_wrong_types_enum_values_and_formats_are_named():
    bad = {
        **POOL,
        "targetDedicatedNodes": "0",
        "taskSchedulingPolicy": {"nodeFillType": "Spread"},
        "resizeTimeout": "PT1.5.H",
        "creationTime": "yesterday",
    }
    found = _get_pool(bad)
    assert len(found) == 4, found
    assert any("targetDedicatedNodes" in e and "not of type 'integer'" in e for e in found)
    assert any("taskSchedulingPolicy/nodeFillType" in e and "'Spread' is not one of" in e for e in found)
    assert any("resizeTimeout" in e for e in found) and any("creationTime" in e for e in found)


def test_a_secret_is_never_answered_and_so_never_required():
    account = {"name": "worker", "elevationLevel": "nonadmin"}
    assert _get_pool({**POOL, "userAccounts": [account]}) == []
    assert _get_pool({**POOL, "userAccounts": [{**account, "password": "p"}]}) == [
        "Pools_GetPool 200 userAccounts/0/password: is a secret (x-ms-secret): the service never returns it"
    ]


def test_a_required_property_missing_is_named():
    found = definition.response_errors(
        "POST", "/jobs/j/addtaskcollection?api-version=2025-06-01", 200, {"value": [{"status": "success"}]}
    )
    assert found == ["Tasks_CreateTaskCollection 200 value/0: 'taskId' is a required property"]


def test_a_property_left_out_by_select_is_not_required_but_its_type_still_counts():
    job = {"id": "j"}  # BatchJob requires poolInfo; `$select=id` asks for the id alone
    assert definition.response_errors("GET", "/jobs?api-version=x", 200, {"value": [job]}) == [
        "Jobs_ListJobs 200 value/0: 'poolInfo' is a required property"
    ]
    assert definition.response_errors("GET", "/jobs?$select=id&api-version=x", 200, {"value": [job]}) == []
    wrong = {"value": [{"id": 7}]}
    assert definition.response_errors("GET", "/jobs?$select=id", 200, wrong) == [
        "Jobs_ListJobs 200 value/0/id: 7 is not of type 'string'"
    ]


def test_status_codes_are_those_the_operation_declares():
    declared = "the definition declares ['200', 'default'] for this operation"
    assert _get_pool(None, 201) == [f"Pools_GetPool 201: {declared}"]
    error = {"code": "PoolNotFound", "message": {"lang": "en-US", "value": "The pool does not exist."}}
    assert _get_pool(error, 404) == []
    assert _get_pool(POOL, 404) != []  # an error status answers a BatchError
    assert _get_pool(None, 304, conditional=True) == []
    assert _get_pool(None, 304) != []
    assert definition.response_errors("HEAD", URL, 404, None) == []  # declared without a body
    assert definition.response_errors("HEAD", URL, 412, None) == []  # HEAD never has one
    assert definition.response_errors("DELETE", URL, 202, {"x": 1}) != []  # 202 has no body
    assert definition.response_errors("GET", "/nowhere?api-version=2025-06-01", 200, {}) != []


def test_answers_are_read_once_and_a_line_still_being_written_waits(tmp_path):
    log = tmp_path / "emulator-1.jsonl"
    meta = {"method": "GET", "url": URL, "status": 200, "conditional": False}
    good = json.dumps(meta) + "\t" + json.dumps(POOL) + "\n"
    bad = json.dumps(meta) + "\t" + json.dumps({**POOL, "password": "x"})
    log.write_text(good + bad[:40])
    answers = Answers(tmp_path)
    assert answers.problems() == [] and answers.checked == 1
    with log.open("a") as f:
        f.write(bad[40:] + "\n" + bad + "\n")
    found = answers.problems()
    assert found == [
        "Pools_GetPool 200 (body): Additional properties are not allowed ('password' was unexpected)  (x2)"
    ]
    assert answers.checked == 3 and answers.problems() == []
