"""`submit.add_tasks` against the emulator: collections of 100, bodies too large split in half,
refusals handed back, a failed request raised."""

from __future__ import annotations

import contextlib
import json
import threading
import uuid

import pytest
from azure.batch import BatchClient
from azure.batch import models as bm
from azure.core.credentials import AzureNamedKeyCredential
from azure.core.exceptions import HttpResponseError
from azure.core.pipeline.policies import SansIOHTTPPolicy

from batchspec.apply import Applier, payloads, submit, transfer
from batchspec.apply.grants import SasGrants
from batchspec.errors import ApplyError
from batchspec.live import state as live_state
from batchspec.plan import Action, diff, task_stamp
from batchspec.spec.build import build


def _ids(batch_client, job_id: str) -> list[str]:
    return sorted(t.id for t in batch_client.list_tasks(job_id, select=["id"]))


class _Collections(SansIOHTTPPolicy):
    """Counts the addtaskcollection requests a client sends."""

    def __init__(self):
        self.sizes: list[int] = []
        self._lock = threading.Lock()

    def on_request(self, request):
        if request.http_request.url.split("?")[0].endswith("/addtaskcollection"):
            with self._lock:
                self.sizes.append(len(json.loads(request.http_request.content)["value"]))


def test_every_task_is_added_in_collections_of_100(services, batch_client, idle_job):
    batch = services[1]["batch"]
    collections = _Collections()
    client = BatchClient(
        batch["endpoint"],
        AzureNamedKeyCredential(batch["account_name"], batch["account_key"]),
        per_retry_policies=[collections],
    )
    bodies = [{"id": f"t{i:04d}", "commandLine": "/bin/true"} for i in range(250)]
    assert submit.add_tasks(client, idle_job, bodies, threads=4) == []
    assert sorted(collections.sizes) == [50, 100, 100]
    assert _ids(batch_client, idle_job) == [b["id"] for b in bodies]
    task = batch_client.get_task(idle_job, "t0042")
    assert task.command_line == "/bin/true"


def test_a_collection_over_the_body_limit_is_split(batch_client, idle_job):
    # 100 tasks of ~16 KB each: 1.6 MB, over the service's 1 MB; halves of 0.8 MB pass.
    padding = "x" * 16_000
    bodies = [
        {
            "id": f"big{i:03d}",
            "commandLine": "/bin/true",
            "environmentSettings": [{"name": "P", "value": padding}],
        }
        for i in range(100)
    ]
    assert submit.add_tasks(batch_client, idle_job, bodies, threads=2) == []
    assert len(_ids(batch_client, idle_job)) == 100


def test_refusals_are_handed_back_and_the_rest_added(batch_client, idle_job):
    batch_client.create_task(idle_job, bm.BatchTaskCreateOptions(id="taken", command_line="/bin/true"))
    bodies = [
        {"id": "ok1", "commandLine": "/bin/true"},
        {"id": "taken", "commandLine": "/bin/false"},
        {
            "id": "huge",
            "commandLine": "/bin/true",
            "environmentSettings": [{"name": "P", "value": "y" * 1_100_000}],
        },
        {"id": "ok2", "commandLine": "/bin/true"},
    ]
    refused = submit.add_tasks(batch_client, idle_job, bodies, threads=2)
    assert sorted((r.task_id, r.code) for r in refused) == [
        ("huge", "RequestBodyTooLarge"),
        ("taken", "TaskExists"),
    ]
    assert _ids(batch_client, idle_job) == ["ok1", "ok2", "taken"]
    assert batch_client.get_task(idle_job, "taken").command_line == "/bin/true"  # not replaced


def test_a_request_that_fails_for_good_is_raised(batch_client):
    with pytest.raises(HttpResponseError) as info:
        submit.add_tasks(
            batch_client, "no-such-job-" + uuid.uuid4().hex[:6], [{"id": "a", "commandLine": "x"}], threads=1
        )
    assert info.value.status_code == 404


def test_server_errors_are_sent_again_then_handed_back():
    """The per-task `servererror` answer (the emulator never gives one): sent again up to the
    limit, then refused; a success or a client error is final at once."""
    chunk = [{"id": "a"}, {"id": "b"}, {"id": "c"}]
    results = [
        {"status": "success", "taskId": "a"},
        {"status": "serverError", "taskId": "b", "error": {"code": "ServerBusy"}},
        {
            "status": "clientError",
            "taskId": "c",
            "error": {"code": "InvalidPropertyValue", "message": {"value": "no"}},
        },
    ]
    tries: dict[str, int] = {}
    refused: list[submit.Refused] = []
    lock = threading.Lock()
    assert submit._sort_results(chunk, results, tries, refused, lock) == [{"id": "b"}]
    assert refused == [submit.Refused("c", "InvalidPropertyValue", "no")]
    busy = [results[1]]
    for _ in range(submit._SERVER_ERROR_TRIES - 2):
        assert submit._sort_results([{"id": "b"}], busy, tries, refused, lock) == [{"id": "b"}]
    assert submit._sort_results([{"id": "b"}], busy, tries, refused, lock) == []
    assert refused[-1] == submit.Refused("b", "ServerBusy", "")


class _Quiet:
    """An apply Reporter that says nothing."""

    def step(self, text):
        pass

    def note(self, text):
        pass

    def progress(self, label, total):
        return contextlib.nullcontext(lambda n: None)

    def task_counts(self, counts, elapsed):
        pass


@pytest.mark.parametrize("whose", ["ours", "theirs"])
def test_apply_takes_its_own_existing_task_and_refuses_somebody_elses(workspace, local_target, whose):
    """A task id that exists by the time apply adds it: the same task (a retried request that
    had succeeded: the same fingerprint) is taken as added; another one fails the apply."""
    assert workspace.apply().returncode == 0
    (workspace.root / "data" / "taskdata3.txt").write_text("one more file\n")
    desired = build(str(workspace.spec), {})
    plan = diff(desired, live_state.read(local_target, desired))
    new = next(t for t in desired.tasks if t.id == "topn-taskdata3")
    assert [(c.id, c.action) for c in plan.of("task")] == [(new.id, Action.CREATE)]
    if whose == "ours":
        # As if this apply had uploaded the input and added the task, then lost the answer.
        inputs = [b for b in desired.blobs if b.name == "taskdata3.txt"]
        assert transfer.upload(local_target, inputs, desired.name, parallelism=1) == []
        body = payloads.task(new, task_stamp(new, desired.pool), SasGrants(local_target.sas), desired.pool)
    else:
        body = {"id": new.id, "commandLine": "/bin/true"}
    local_target.batch.create_task(desired.job.id, bm.BatchTaskCreateOptions(body))

    applier = Applier(local_target, desired, plan, _Quiet(), parallelism=4, timeout=60)
    if whose == "ours":
        assert applier.run().exit_code == 0
        assert (workspace.root / "out" / "taskdata3_OUTPUT.txt").is_file()
    else:
        with pytest.raises(ApplyError, match=r"could not be added: task topn-taskdata3: TaskExists"):
            applier.run()
