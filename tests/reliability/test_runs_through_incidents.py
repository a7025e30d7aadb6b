"""What goes wrong on a real account, end to end: the emulator produces it (`--incidents`), and
`batchspec apply` rides through it or stops at once, and says what happened, by cause."""

from __future__ import annotations

import json
import re
import time

import pytest

import reliability_support as rs
from reliability_support import new_name, slow


def _stack(rel_home, azurite, tmp_path, incidents: dict) -> rs.Stack:
    launch = rs.services.emulator(tmp_path / "batch", "--incidents", json.dumps(incidents))
    return rs.Stack(rel_home, launch.start(), azurite.url, azurite)


@pytest.fixture
def spot_ws(rel_home, azurite, tmp_path):
    """The tutorial on a spot pool of two nodes: the first task start gets its node preempted, and
    every later one with an even chance (the draws are seeded with the pool id, new each run)."""
    incidents = {"preemptions": 1, "preemptRate": 0.5, "preemptAfter": 0.2, "preemptBack": 0.3}
    stack = _stack(rel_home, azurite, tmp_path, incidents)
    ws = rs.Workspace.tutorial(tmp_path / "ws", new_name(), stack.env, inputs=6)
    ws.spec.write_text(ws.spec.read_text().replace("targetDedicatedNodes: 2", "targetLowPriorityNodes: 2"))
    yield ws, stack
    stack.batch.stop()


def test_a_spot_pool_with_preemptions_finishes_every_task_and_shows_the_requeues(spot_ws):
    ws, stack = spot_ws
    result = ws.apply("--var", slow(1.0))
    assert result.returncode == 0, result.stdout + result.stderr
    ws.check_outputs()
    client = stack.batch_client()
    requeued = [t.id for t in client.list_tasks(f"{ws.name}-job") if t.execution_info.requeue_count]
    assert requeued, "the first task start preempts its node"
    assert "On the way:" in result.stdout
    assert re.search(rf"preempted and requeued: {len(requeued)} task\(s\)", result.stdout), result.stdout
    status = json.loads(ws.run("status", "spec.yaml", "--json").stdout)
    assert [c["count"] for c in status["causes"] if c["key"] == "preempted and requeued"] == [len(requeued)]
    # The report marks each requeued task's bar and says so in its tooltip.
    page = (ws.root / f"{ws.name}-report.html").read_text()
    for task_id in requeued:
        bar = re.search(rf"<rect class='([^']*)' data-task='{task_id}'[^>]*><title>([^<]*)</title>", page)
        assert bar and "moved" in bar.group(1) and "requeued" in bar.group(2), task_id


def test_an_allocation_error_with_no_node_stops_the_apply_at_once_naming_the_quota(
    rel_home, azurite, tmp_path
):
    stack = _stack(rel_home, azurite, tmp_path, {"allocationError": "AccountCoreQuotaReached", "maxNodes": 0})
    try:
        ws = rs.Workspace.tutorial(tmp_path / "ws", new_name(), stack.env)
        started = time.monotonic()
        result = ws.apply()
        assert result.returncode == 1, result.stdout + result.stderr
        assert "could not allocate nodes: AccountCoreQuotaReached" in result.stdout + result.stderr
        assert time.monotonic() - started < 60  # not waited out until a timeout
    finally:
        stack.batch.stop()


def test_a_pool_left_short_runs_its_tasks_on_the_nodes_it_got_and_says_so(rel_home, azurite, tmp_path):
    stack = _stack(rel_home, azurite, tmp_path, {"allocationError": "AccountCoreQuotaReached", "maxNodes": 1})
    try:
        ws = rs.Workspace.tutorial(tmp_path / "ws", new_name(), stack.env)
        result = ws.apply()
        assert result.returncode == 0, result.stdout + result.stderr
        ws.check_outputs()
        said = " ".join(result.stdout.split())  # as one line: the terminal wraps long ones
        assert "has 1 node(s), fewer than asked: AccountCoreQuotaReached" in said
        assert "allocation error: AccountCoreQuotaReached: 1 pool(s)" in said
    finally:
        stack.batch.stop()


def test_failed_uploads_and_an_unusable_node_are_told_by_cause(rel_home, azurite, tmp_path):
    stack = _stack(
        rel_home, azurite, tmp_path, {"uploadFailure": 1.0, "unusableNodes": 1, "unusableAfter": 0.0}
    )
    try:
        ws = rs.Workspace.tutorial(tmp_path / "ws", new_name(), stack.env)
        result = ws.apply()
        assert result.returncode == 3, result.stdout + result.stderr  # the tasks failed
        said = " ".join(result.stdout.split())
        assert "Failures by cause: output upload failed: 3 task(s)" in said
        assert "check the output container exists" in said
        assert "On the way: node unusable: 1 node(s)" in said
        status = json.loads(ws.run("status", "spec.yaml", "--json").stdout)
        assert {c["key"]: c["count"] for c in status["causes"]} == {
            "output upload failed": 3,
            "node unusable": 1,
        }
    finally:
        stack.batch.stop()


def test_start_tasks_failing_on_a_share_of_the_nodes_stop_the_apply_and_are_told(rel_home, azurite, tmp_path):
    # A count, not a share: the draws are seeded with the pool id, which is new on every run.
    stack = _stack(rel_home, azurite, tmp_path, {"startTaskFailures": 2})
    try:
        ws = rs.Workspace.tutorial(tmp_path / "ws", new_name(), stack.env, nodes=4)
        result = ws.apply()
        assert result.returncode == 1, result.stdout + result.stderr
        said = " ".join((result.stdout + result.stderr).split())
        # apply stops at the first failed node it sees: the second may not have failed yet.
        assert re.search(r"the start task failed on [12] node\(s\)", said), said
        assert "an emulated incident" in said  # the failing node's start task stderr
        status = json.loads(ws.run("status", "spec.yaml", "--json").stdout)
        (cause,) = [c for c in status["causes"] if c["key"] == "start task failed"]
        assert 1 <= cause["count"] <= 2 and cause["kind"] == "node"
    finally:
        stack.batch.stop()


def test_a_slow_allocation_runs_into_the_setup_timeout_and_says_what_it_waited_for(
    rel_home, azurite, tmp_path
):
    stack = _stack(rel_home, azurite, tmp_path, {"allocationDelay": 30})
    try:
        ws = rs.Workspace.tutorial(tmp_path / "ws", new_name(), stack.env)
        result = ws.apply("--setup-timeout", "2s")
        assert result.returncode == 4, result.stdout + result.stderr
        said = " ".join((result.stdout + result.stderr).split())
        assert "the nodes of pool" in said and "--setup-timeout" in said
    finally:
        stack.batch.stop()


def test_an_input_whose_sas_expired_is_told_as_unreadable(clean, tmp_path):
    from datetime import datetime, timedelta, timezone

    from azure.storage.blob import BlobSasPermissions, generate_blob_sas

    service = clean.blob_service()
    container = service.create_container(new_name())
    container.upload_blob("in.txt", b"some words")
    expired = generate_blob_sas(
        rs.AZURITE_ACCOUNT,
        container.container_name,
        "in.txt",
        account_key=rs.AZURITE_KEY,
        permission=BlobSasPermissions(read=True),
        start=datetime.now(timezone.utc) - timedelta(hours=2),
        expiry=datetime.now(timezone.utc) - timedelta(hours=1),
    )
    ws = rs.Workspace.tutorial(tmp_path / "ws", new_name(), clean.env)
    url = f"{container.url}/in.txt?{expired}"
    ws.spec.write_text(
        ws.spec.read_text().replace(
            'resourceFiles: [{blob: "{{ item.ref }}"}]',
            f'resourceFiles: [{{httpUrl: "{url}", filePath: in.txt}}]',
        )
    )
    assert url in ws.spec.read_text()
    result = ws.apply()
    assert result.returncode == 3, result.stdout + result.stderr
    said = " ".join(result.stdout.split())
    assert "resource file unreadable: 3 task(s)" in said
    assert "its SAS expired or lacks read permission" in said
