"""Incidents on demand (emulator/incidents.py): what goes wrong on a real account, asked for per
pool with a metadata item, shown as the service shows it, the same on every run of a seed."""

from __future__ import annotations

import json

import pytest
from azure.batch import models as bm
from azure.core.exceptions import HttpResponseError

from emulator_support import new_job, pool_options, unique, wait_for, wait_job_done
from support import services

KEY = "batchspec-emulator-incidents"


def _pool(client, name: str, incidents: dict, **options) -> str:
    pool_id = unique(name)
    metadata = [bm.BatchMetadataItem(name=KEY, value=json.dumps(incidents))]
    client.create_pool(pool_options(pool_id, metadata=metadata, **options))
    return pool_id


def _states(client, pool_id: str) -> list[str]:
    return sorted(n.state for n in client.list_nodes(pool_id))


def _booted(client, pool_id: str, nodes: int) -> bool:
    states = _states(client, pool_id)
    return len(states) == nodes and all(s in ("idle", "starttaskfailed") for s in states)


def _steady(client, pool_id: str) -> bm.BatchPool:
    wait_for(lambda: client.get_pool(pool_id).allocation_state == "steady", 20)
    return client.get_pool(pool_id)


def test_an_allocation_error_leaves_the_pool_short_and_says_why(client):
    pool_id = _pool(client, "quota", {"allocationError": "AccountCoreQuotaReached", "maxNodes": 1}, nodes=3)
    pool = _steady(client, pool_id)
    assert (pool.target_dedicated_nodes, pool.current_dedicated_nodes) == (3, 1)
    (error,) = pool.resize_errors
    assert error.code == "AccountCoreQuotaReached"
    assert "2 node(s) short" in error["values"][0]["value"]


def test_a_slow_allocation_keeps_the_pool_resizing(client):
    pool_id = _pool(client, "slow", {"allocationDelay": 1.5})
    with pytest.raises(pytest.fail.Exception):  # still resizing after a second
        wait_for(lambda: client.get_pool(pool_id).allocation_state == "steady", 1.0)
    assert _steady(client, pool_id).current_dedicated_nodes == 1


def test_start_tasks_fail_on_the_share_of_nodes_asked_for_the_same_on_every_run(client):
    start = bm.BatchStartTask(command_line="/bin/true", wait_for_success=True)
    incidents = {"seed": 3, "startTaskFailure": 0.5}
    # The draws are seeded with the pool's id too: a fresh id each run failed all 6 (or none)
    # one run in 32. This id and seed fail some of them on every run.
    first = "stfail-same-draws"
    metadata = [bm.BatchMetadataItem(name=KEY, value=json.dumps(incidents))]
    client.create_pool(pool_options(first, metadata=metadata, nodes=6, start_task=start))
    wait_for(lambda: _booted(client, first, 6), 20)
    failed = [n for n in client.list_nodes(first) if n.state == "starttaskfailed"]
    assert 0 < len(failed) < 6
    info = failed[0].start_task_info
    assert (info.exit_code, info.result, info.failure_info.category) == (1, "failure", "usererror")
    # A pool of the same id, made again with the same seed, fails on as many nodes.
    client.begin_delete_pool(first, polling_interval=0.05).result()
    wait_for(lambda: first not in {p.id for p in client.list_pools()}, 20)
    client.create_pool(pool_options(first, metadata=metadata, nodes=6, start_task=start))
    wait_for(lambda: _booted(client, first, 6), 20)
    assert _states(client, first).count("starttaskfailed") == len(failed)
    client.begin_delete_pool(first, polling_interval=0.05).result()


def test_a_preempted_spot_node_requeues_its_task_which_runs_again_and_the_node_comes_back(client):
    pool_id = _pool(
        client,
        "spot",
        {"preemptions": 1, "preemptAfter": 0.3, "preemptBack": 0.5},
        nodes=0,
        target_low_priority_nodes=1,
    )
    _steady(client, pool_id)
    job_id = new_job(client, pool_id, "spot")
    client.create_task(job_id, bm.BatchTaskCreateOptions(id="t", command_line="/bin/sh -c 'sleep 1'"))
    wait_for(lambda: _states(client, pool_id) == ["preempted"], 10)
    wait_job_done(client, job_id, 1, timeout=30)
    task = client.get_task(job_id, "t")
    assert task.execution_info.result == "success"
    assert task.execution_info.requeue_count == 1  # a preemption is no retry
    assert task.execution_info.retry_count == 0
    assert _states(client, pool_id) in (["idle"], ["running"])


def test_an_unusable_node_says_so_and_its_tasks_run_elsewhere(client):
    pool_id = _pool(client, "unusable", {"unusableNodes": 1, "unusableAfter": 0.1}, nodes=2)
    wait_for(lambda: _states(client, pool_id) == ["idle", "unusable"], 20)
    (bad,) = [n for n in client.list_nodes(pool_id) if n.state == "unusable"]
    assert client.get_node(pool_id, bad.id).errors[0].code == "EmulatedNodeFailure"
    job_id = new_job(client, pool_id, "unusable")
    client.create_tasks(
        job_id, [bm.BatchTaskCreateOptions(id=f"t{i}", command_line="/bin/true") for i in range(3)]
    )
    wait_job_done(client, job_id, 3)
    assert {client.get_task(job_id, f"t{i}").node_info.node_id for i in range(3)} != {bad.id}


def test_a_spoiled_upload_fails_the_attempt_through_the_agents_own_upload(client, container):
    pool_id = _pool(client, "upload", {"uploadFailure": 1.0})
    _steady(client, pool_id)
    job_id = new_job(client, pool_id, "upload")
    output = bm.OutputFile(
        file_pattern="out.txt",
        destination=bm.OutputFileDestination(
            container=bm.OutputFileBlobContainerDestination(container_url=container.sas())
        ),
        upload_options=bm.OutputFileUploadConfiguration(upload_condition="taskcompletion"),
    )
    command = "/bin/sh -c 'echo x > out.txt'"
    client.create_task(job_id, bm.BatchTaskCreateOptions(id="t", command_line=command, output_files=[output]))
    wait_job_done(client, job_id, 1)
    info = client.get_task(job_id, "t").execution_info
    assert info.result == "failure" and info.failure_info.code.startswith("FileUpload"), info.failure_info
    assert list(container.blobs.list_blobs()) == []


@pytest.mark.parametrize(
    "value",
    ['{"preemptRate": 2}', '{"allocationError": "Nope"}', '{"surprise": 1}', "not json"],
)
def test_an_incident_the_emulator_does_not_know_is_refused_at_create(client, value):
    with pytest.raises(HttpResponseError) as info:
        client.create_pool(
            pool_options(unique("bad"), metadata=[bm.BatchMetadataItem(name=KEY, value=value)])
        )
    assert (info.value.status_code, info.value.error.code) == (400, "InvalidPropertyValue")


def test_the_emulator_option_asks_for_incidents_in_every_pool(tmp_path):
    from emulator_support import start_server

    server = start_server(
        tmp_path / "data", "--incidents", '{"allocationError": "AllocationFailed", "maxNodes": 0}'
    )
    try:
        client = server.client()
        client.create_pool(pool_options("p", nodes=2))
        pool = _steady(client, "p")
        assert pool.current_dedicated_nodes == 0
        assert pool.resize_errors[0].message == "Desired number of dedicated nodes could not be allocated"
    finally:
        server.stop()
    bad = services.emulator(tmp_path / "other", "--incidents", '{"maxNodes": -1}')
    import subprocess

    refused = subprocess.run(bad.argv, capture_output=True, text=True, timeout=30)
    assert refused.returncode == 2 and "maxNodes is a number" in refused.stderr
