"""The API definition's own examples (tests/contract/examples), replayed against the emulator.

Each example is a request and the service's answer. The resources it names are made first (from
the example's answer where it shows them: a pool to get is created with the properties the
example returns), under fresh ids so examples never meet. Then its request is sent as written,
and the emulator must answer the example's status code with every property the example's body
has (values that depend on time, ids or the account aside: only the properties are compared).

What the emulator cannot do yet is listed in GAPS with the reason: such an example is expected to
fail (strictly: once it passes, its entry must go), so the list is the emulator's to-do.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from azure.batch import BatchClient
from azure.core.credentials import AzureNamedKeyCredential
from azure.core.rest import HttpRequest

from support import bodies, definition, services

EXAMPLES = Path(__file__).resolve().parent / "examples"

# Example file -> why the emulator does not answer it as the service does yet.
GAPS = {
    "Applications_ListApplications.json": "the local account has no applications (management plane)",
    "Certificates_CreateCertificate.json": "certificates (deprecated) are not emulated",
    "Certificates_DeleteCertificate.json": "certificates (deprecated) are not emulated",
}

_PATH_PARAMS = ("poolId", "nodeId", "jobId", "taskId", "jobScheduleId", "filePath", "userName")
_NOT_BODY = {"batchUrl", "api-version", "client-request-id", "ocp-date", "recursive", *_PATH_PARAMS}
_RENAMED = ("poolId", "jobId", "taskId", "jobScheduleId")


def _examples() -> list[str]:
    return sorted(p.name for p in EXAMPLES.glob("*.json"))


def paths(value: Any, prefix: str = "") -> set[str]:
    """Every property path of a JSON value; list items share `[]`."""
    found: set[str] = set()
    if isinstance(value, dict):
        for k, v in value.items():
            here = f"{prefix}/{k}" if prefix else k
            found |= {here} | paths(v, here)
    elif isinstance(value, list):
        for v in value:
            found |= paths(v, f"{prefix}[]")
    return found


def _booted(node: dict) -> bool:
    started = node.get("startTaskInfo")
    done = started is None or started.get("state") == "completed"
    return done and node.get("state") not in ("creating", "starting", "waitingforstarttask")


def _released(status: dict) -> bool:
    return bool(status["value"]) and all(
        (s.get("jobReleaseTaskExecutionInfo") or {}).get("state") == "completed" for s in status["value"]
    )


def _create_body(definition_name: str, shown: dict) -> dict:
    """The properties of a shown resource that a create request takes."""
    names = definition.document()["definitions"][definition_name]["properties"]
    return {k: v for k, v in shown.items() if k in names}


class Replay:
    def __init__(self, client: BatchClient, name: str):
        self.client, self.name = client, name
        self.example = json.loads((EXAMPLES / name).read_text("utf-8"))
        self.op = next(
            o for o in definition.operations() if o.id.lower() == self.example["operationId"].lower()
        )
        self.params = dict(self.example["parameters"])
        self.status, answer = next(iter(self.example["responses"].items()))
        self.expected = answer.get("body") if isinstance(answer, dict) else None
        self.renamed = {
            self.params[p]: f"{self.params[p]}-{uuid.uuid4().hex[:6]}" for p in _RENAMED if p in self.params
        }

    def send(self, method: str, path: str, body: Any = None, query: str = ""):
        url = f"{path}?api-version={self.params['api-version']}{query}"
        # Streamed, then read: the pipeline would try to decode a file's bytes as JSON.
        response = self.client.send_request(HttpRequest(method, url, json=body), stream=True)
        response.read()
        return response

    def ok(self, response, *statuses: int) -> None:
        assert response.status_code in statuses, (self.name, response.status_code, response.text())

    def _id(self, value: str) -> str:
        return self.renamed.get(value, value)

    def _shown(self, shown: dict) -> dict:
        return {**shown, "id": self._id(shown["id"])} if "id" in shown else shown

    # The resources an example needs.

    def pool(self, pool_id: str, nodes: int = 0, *, shown=None, start=None, extensions=()) -> None:
        vm = {**bodies.UBUNTU_VM, "extensions": list(extensions)}
        body = {"vmSize": "standard_d2s_v3", "virtualMachineConfiguration": vm}
        if shown is not None:
            body = _create_body("BatchPoolCreateOptions", shown)
        if start is not None:  # the example's start task, with a command line this host runs
            body["startTask"] = {**start, "commandLine": "/bin/sh -c 'echo hello'"}
        body |= {"id": pool_id, "targetDedicatedNodes": nodes}
        self.ok(self.send("POST", "/pools", body), 201)
        self.until(lambda: self.client.get_pool(pool_id).allocation_state == "steady")
        # ...and its nodes up, their start task done: an example may show its end.
        self.until(lambda: all(_booted(n.as_dict()) for n in self.client.list_nodes(pool_id)))

    def job(self, job_id: str, nodes: int = 1, **extra) -> None:
        pool_id = f"for-{job_id}"
        self.pool(pool_id, nodes=nodes)
        self.ok(self.send("POST", "/jobs", {"id": job_id, "poolInfo": {"poolId": pool_id}, **extra}), 201)

    def task(self, job_id: str, body: dict, wait: bool = False) -> None:
        self.ok(self.send("POST", f"/jobs/{job_id}/tasks", body), 201)
        if wait:
            self.until(lambda: self.client.get_task(job_id, body["id"]).state == "completed")

    @staticmethod
    def until(condition, seconds: float = 30) -> None:
        deadline = time.monotonic() + seconds
        while not condition():
            assert time.monotonic() < deadline, "the example's resources did not come up"
            time.sleep(0.05)

    def prepare(self) -> dict[str, str]:
        """Make what the example names; the path parameters to use."""
        p = {k: self._id(v) if k in _RENAMED else v for k, v in self.params.items() if k in _PATH_PARAMS}
        op, shown = self.op.id, self.expected or {}
        if op == "Pools_ListPools":
            for item in shown["value"]:
                self.pool(self._id(item["id"]), shown=item)
        elif op == "Pools_GetPool":
            self.pool(p["poolId"], shown=shown)
        elif op.startswith("Nodes_") or op == "Pools_RemoveNodes":
            self._nodes(p, op, shown)
        elif "poolId" in p:
            self.pool(p["poolId"])
        if op == "JobSchedules_ListJobSchedules":
            for item in shown["value"]:
                body = {"schedule": {}, **_create_body("BatchJobScheduleCreateOptions", self._shown(item))}
                self.ok(self.send("POST", "/jobschedules", body), 201)
                if item.get("previousState") == "disabled":  # its history, as the example shows it
                    for change in ("disable", "enable"):
                        self.ok(self.send("POST", f"/jobschedules/{body['id']}/{change}"), 204)
        elif op.startswith("JobSchedules_") and "jobScheduleId" in p:
            spec = {"poolInfo": {"poolId": "any"}}
            body = {"id": p["jobScheduleId"], "schedule": {}, "jobSpecification": spec}
            self.ok(self.send("POST", "/jobschedules", body), 201)
        if "jobId" in p and not op.startswith("JobSchedules"):
            self._job(p, op, shown)
        if "filePath" in p:
            p["filePath"] = p["filePath"].replace("\\", "/")
        return p

    def _nodes(self, p: dict[str, str], op: str, shown: dict) -> None:
        """A pool of two nodes; the example's node ids stand for theirs."""
        node = shown["value"][0] if op == "Nodes_ListNodes" else shown
        extensions = [e["vmExtension"] for e in shown.get("value", []) if "vmExtension" in e]
        self.pool(p["poolId"], nodes=2, start=node.get("startTask"), extensions=extensions)
        nodes = [n.id for n in self.client.list_nodes(p["poolId"])]
        named = [p["nodeId"]] if "nodeId" in p else self.params.get("removeOptions", {}).get("nodeList", [])
        self.renamed |= dict(zip(named, nodes, strict=False))
        if "nodeId" in p:
            p["nodeId"] = self.renamed[p["nodeId"]]
            self.until(lambda: self.client.get_node(p["poolId"], p["nodeId"]).state in ("idle", "running"))
        if op == "Nodes_ReplaceNodeUser":
            users = f"/pools/{p['poolId']}/nodes/{p['nodeId']}/users"
            self.ok(self.send("POST", users, {"name": p["userName"]}), 201)

    def _job(self, p: dict[str, str], op: str, shown: dict) -> None:
        job_id = p["jobId"]
        extra = {}
        if op == "Jobs_ListJobPreparationAndReleaseTaskStatus":
            extra = {
                "jobPreparationTask": {"commandLine": "/bin/true"},
                "jobReleaseTask": {"commandLine": "/bin/true"},
            }
        self.job(
            job_id, nodes=0 if op in ("Tasks_ReplaceTask", "Tasks_GetTask", "Tasks_ListTasks") else 1, **extra
        )
        if op == "Tasks_ListTasks":
            for item in shown["value"]:
                self.task(job_id, _create_body("BatchTaskCreateOptions", self._shown(item)))
        elif op == "Tasks_GetTask":  # the example shows id testTask for the path's taskId
            self.task(job_id, {**_create_body("BatchTaskCreateOptions", shown), "id": p["taskId"]})
        elif op == "Tasks_ReplaceTask":  # a task that has not run yet
            self.task(job_id, {"id": p["taskId"], "commandLine": "/bin/true"})
        elif op == "Jobs_ListJobPreparationAndReleaseTaskStatus":  # both ran on a node
            self.task(job_id, {"id": "t", "commandLine": "/bin/true"}, wait=True)
            self.ok(self.send("POST", f"/jobs/{job_id}/terminate", {}), 202)
            status = f"/jobs/{job_id}/jobpreparationandreleasetaskstatus"
            self.until(lambda: _released(self.send("GET", status).json()))
        elif op == "Jobs_UpdateJob":  # poolInfo changes only while the job is disabled
            self.ok(self.send("POST", f"/jobs/{job_id}/disable", {"disableTasks": "requeue"}), 202)
        elif "taskId" in p:  # a task that wrote the example's file
            name = p.get("filePath", "wd\\testFile.txt").replace("\\", "/").removeprefix("wd/")
            self.task(job_id, {"id": p["taskId"], "commandLine": f"/bin/sh -c 'echo hi > {name}'"}, wait=True)

    def request(self, p: dict[str, str]):
        path = self.op.template
        for name, value in p.items():
            path = path.replace("{" + name + "}", value)
        body = next((v for k, v in self.params.items() if k not in _NOT_BODY), None)
        if isinstance(body, dict):
            body = json.loads(json.dumps(body), object_hook=self._renamed_ids)
        query = f"&recursive={str(self.params['recursive']).lower()}" if "recursive" in self.params else ""
        return self.send(self.op.method, path, body, query)

    def _renamed_ids(self, obj: dict) -> dict:
        out = {k: self._id(v) if k == "id" and isinstance(v, str) else v for k, v in obj.items()}
        if isinstance(out.get("nodeList"), list):
            out["nodeList"] = [self.renamed.get(n, n) for n in out["nodeList"]]
        return out


@pytest.fixture(scope="module")
def client(tmp_path_factory) -> BatchClient:
    service = services.emulator(tmp_path_factory.mktemp("examples") / "data").start()
    yield BatchClient(
        service.url, AzureNamedKeyCredential(services.DEV_ACCOUNT_NAME, services.DEV_ACCOUNT_KEY)
    )
    service.stop()


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(n, marks=pytest.mark.xfail(reason=GAPS[n], strict=True)) if n in GAPS else n
        for n in _examples()
    ],
)
def test_the_emulator_answers_the_definitions_example(client, name):
    replay = Replay(client, name)
    answer = replay.request(replay.prepare())
    assert answer.status_code == int(replay.status), answer.text()
    if replay.expected is None or "json" not in (answer.headers.get("content-type") or ""):
        return
    # odata.nextLink is there only when a listing has more pages than one answer holds.
    missing = paths(replay.expected) - paths(answer.json()) - {"odata.nextLink"}
    assert not missing, f"properties the example has and the emulator does not: {sorted(missing)}"


def test_every_example_names_an_operation_of_the_definition():
    ids = {o.id.lower() for o in definition.operations()}
    for name in _examples():
        assert json.loads((EXAMPLES / name).read_text("utf-8"))["operationId"].lower() in ids, name
    assert set(GAPS) <= set(_examples())
    assert re.fullmatch(r"\d+", str(len(_examples())))
