"""Every Batch request batchspec sends, on every path (create, resize, properties, reboot, job
patch, autoscale on and off, task collections, a merge task, stages), conforms to the API
definition."""

from __future__ import annotations

import io
import json
import threading

from azure.core.pipeline.policies import SansIOHTTPPolicy
from rich.console import Console

from batchspec.apply import Applier
from batchspec.live import state as live_state
from batchspec.plan import diff
from batchspec.spec.build import build
from batchspec.ui.progress import ConsoleReporter
from helpers import ROOT
from support import arm, definition


class _Recorder(SansIOHTTPPolicy):
    """Keeps the method, URL and JSON body of every request sent to one endpoint."""

    def __init__(self, endpoint: str):
        self.endpoint = endpoint.rstrip("/")
        self.requests: list[tuple[str, str, object]] = []
        self._lock = threading.Lock()

    def on_request(self, request):
        http = request.http_request
        # The local target's management client reads the account's quotas from the same
        # endpoint (the stand-in for Resource Manager): body-less GETs of azure-mgmt-batch's own.
        if not http.url.startswith(self.endpoint) or arm.is_management(http.url):
            return
        content = http.content if hasattr(http, "content") else http.body
        body = json.loads(content) if content else None
        with self._lock:
            self.requests.append((http.method, http.url, body))


def _apply(target, spec) -> None:
    desired = build(spec)
    plan = diff(desired, live_state.read(target, desired))
    reporter = ConsoleReporter(Console(file=io.StringIO()))
    outcome = Applier(target, desired, plan, reporter, parallelism=4, timeout=120).run()
    assert outcome.exit_code == 0, outcome.problems


def _edit(path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new, 1))


def test_every_batch_request_body_batchspec_sends_conforms_to_the_definition(
    workspace, services, monkeypatch
):
    from batchspec.services import targets

    env, status = services
    for var in ("BATCHSPEC_HOME", "BATCHSPEC_AZURITE_PORT", "BATCHSPEC_EMULATOR_PORT"):
        monkeypatch.setenv(var, env[var])
    recorder = _Recorder(status["batch"]["endpoint"])
    target = targets.connect("local", parallelism=4, policies=[recorder])
    spec = workspace.spec
    try:
        _apply(target, spec)  # pool, job, task collection
        _edit(spec, "targetDedicatedNodes: 2", "targetDedicatedNodes: 3")
        _apply(target, spec)  # resize
        _edit(spec, 'commandLine: cp "', 'commandLine: true && cp "')
        _apply(target, spec)  # properties (the new start task), reboot, tasks again
        _edit(spec, "job:\n", "job:\n  priority: 5\n  maxParallelTasks: 4\n")
        _apply(target, spec)  # job patch
        _edit(spec, "targetDedicatedNodes: 3", "autoScale: {formula: '$TargetDedicatedNodes = 1;'}")
        _apply(target, spec)  # autoscale on
        _edit(spec, "autoScale: {formula: '$TargetDedicatedNodes = 1;'}", "targetDedicatedNodes: 1")
        _apply(target, spec)  # autoscale off, resize
        preparation = "  preparationTask: {commandLine: /bin/true, constraints: {maxWallClockTime: PT5M}}\n"
        release = "  releaseTask: {commandLine: /bin/true, constraints: {retentionTime: PT1H}}\n"
        _edit(spec, "  tasks:\n", preparation + release + "  tasks:\n")
        _apply(target, spec)  # a job with preparation and release tasks
        monkeypatch.setenv("TEST_REGISTRY_PASSWORD", "p")
        _edit(spec, "offer: ubuntu-24_04-lts, sku: server}", "offer: ubuntu-hpc, sku: '2404'}")
        _edit(spec, "publisher: canonical, offer: ubuntu-hpc", "publisher: microsoft-dsvm, offer: ubuntu-hpc")
        registry = "{server: r.io, username: u, passwordEnv: TEST_REGISTRY_PASSWORD}"
        _edit(
            spec,
            "  startTask:\n",
            f"  containers: {{images: [a:1], registries: [{registry}]}}\n  startTask:\n",
        )
        task = '    resourceFiles: [{blob: "{{ item.ref }}"}]\n'
        _edit(spec, task, task + "    container: {image: r.io/b:2, registry: r.io}\n")
        _apply(target, spec)  # containers: the pool replaced, the tasks' container settings
        sweep = (ROOT / "specs" / "sweep.yaml").read_text().replace("sweep", workspace.name + "s")
        (workspace.root / "sweep.yaml").write_text(sweep)
        _apply(target, workspace.root / "sweep.yaml")  # a merge task with its dependencies
        (workspace.root / "specs").mkdir()
        stages = (ROOT / "specs" / "pipeline.yaml").read_text().replace("pipeline-", workspace.name + "p-")
        (workspace.root / "specs" / "pipeline.yaml").write_text(
            stages.replace("name: pipeline", f"name: {workspace.name}p")
        )
        _apply(target, workspace.root / "specs" / "pipeline.yaml")  # stages
    finally:
        target.close()

    problems = [
        p for method, url, body in recorder.requests for p in definition.request_errors(method, url, body)
    ]
    assert problems == []
    sent = {definition.operation(method, url).id for method, url, _ in recorder.requests}
    assert {
        "Pools_CreatePool",
        "Pools_ResizePool",
        "Pools_ReplacePoolProperties",
        "Nodes_RebootNode",
        "Jobs_CreateJob",
        "Jobs_UpdateJob",
        "Pools_EnablePoolAutoScale",
        "Pools_DisablePoolAutoScale",
        "Tasks_CreateTaskCollection",
    } <= sent
    pools = [b for m, u, b in recorder.requests if m == "POST" and u.split("?")[0].endswith("/pools")]
    assert any(b["virtualMachineConfiguration"].get("containerConfiguration") for b in pools)
    jobs = [b for m, u, b in recorder.requests if m == "POST" and u.split("?")[0].endswith("/jobs")]
    assert any(b.get("jobPreparationTask") and b.get("jobReleaseTask") for b in jobs)
    merge = [b for m, u, b in recorder.requests if u.split("?")[0].endswith("/addtaskcollection")]
    assert any(t.get("dependsOn") for body in merge for t in body["value"])


def test_the_referee_refuses_what_the_service_would():
    # The checks the test above relies on can fail: a typo, a read-only property, a missing
    # required one, a wrong type, an operation that does not exist.
    assert definition.request_errors("POST", "/pools/p/resize", {"targetDedicatedNode": 2}) == [
        "Pools_ResizePool (body): Additional properties are not allowed "
        "('targetDedicatedNode' was unexpected)"
    ]
    assert sorted(definition.request_errors("POST", "/pools/p/updateproperties", {"metadata": []})) == [
        "Pools_ReplacePoolProperties (body): 'applicationPackageReferences' is a required property",
        "Pools_ReplacePoolProperties (body): 'certificateReferences' is a required property",
    ]
    job = {"poolInfo": {"poolId": "p"}, "url": "https://x/jobs/j"}
    assert definition.request_errors("PUT", "/jobs/j", job) == [
        "Jobs_ReplaceJob url: is read-only: the service sets it, a request may not"
    ]
    errors = definition.request_errors(
        "POST", "/jobs/j/addtaskcollection", {"value": [{"id": "t", "commandLine": 1, "state": "active"}]}
    )
    assert sorted(errors) == [
        "Tasks_CreateTaskCollection value/0/commandLine: 1 is not of type 'string'",
        "Tasks_CreateTaskCollection value/0: Additional properties are not allowed ('state' was unexpected)",
    ]
    assert definition.request_errors("POST", "/pools/p/explode", {}) == [
        "POST /pools/p/explode: no operation of the definition"
    ]
