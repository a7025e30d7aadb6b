"""Node operations: reboot, reimage, enable/disable scheduling, remove nodes."""

from __future__ import annotations

import pytest
from azure.batch import models as bm
from azure.core.exceptions import HttpResponseError

from emulator_support import pool_options, unique, wait_for, wait_pool_ready


@pytest.fixture
def small_pool(client, tmp_path):
    """Two nodes whose start task appends a line to boots.txt in the test's tmp dir."""
    pool_id = unique("nodeops")
    boots = tmp_path / "boots.txt"
    client.create_pool(
        pool_options(
            pool_id,
            nodes=2,
            start_task=bm.BatchStartTask(
                command_line=f"/bin/sh -c 'echo $AZ_BATCH_NODE_ID >> {boots}; touch scratch'",
                wait_for_success=True,
            ),
        )
    )
    wait_pool_ready(client, pool_id, 2)
    yield pool_id, boots
    client.begin_delete_pool(pool_id, polling_interval=0.05).result()


def _job(client, pool_id):
    job_id = unique("j")
    client.create_job(bm.BatchJobCreateOptions(id=job_id, pool_info=bm.BatchPoolInfo(pool_id=pool_id)))
    return job_id


def test_reboot_requeues_the_running_task_and_reruns_the_start_task(client, small_pool):
    pool_id, boots = small_pool
    job_id = _job(client, pool_id)
    client.create_task(job_id, bm.BatchTaskCreateOptions(id="t", command_line="/bin/sleep 30"))
    wait_for(lambda: client.get_task(job_id, "t").state == "running", 10)
    node_id = client.get_task(job_id, "t").node_info.node_id
    # (the SDK cannot send these requests without an options body)
    client.begin_reboot_node(
        pool_id, node_id, {"nodeRebootOption": "requeue"}, polling_interval=0.05
    ).result()
    wait_for(lambda: client.get_node(pool_id, node_id).state in ("idle", "running"), 10)
    assert boots.read_text().splitlines().count(node_id) == 2
    assert client.get_task(job_id, "t").execution_info.requeue_count == 1


def test_reimage_wipes_the_node_directory(client, small_pool):
    pool_id, boots = small_pool
    job_id = _job(client, pool_id)
    client.create_task(job_id, bm.BatchTaskCreateOptions(id="t", command_line="/bin/true"))
    wait_for(lambda: client.get_task(job_id, "t").state == "completed", 10)
    node_id = client.get_task(job_id, "t").node_info.node_id
    task_dir = f"workitems/{job_id}/job-1/t/stdout.txt"
    assert task_dir in {f.name for f in client.list_node_files(pool_id, node_id, recursive=True)}
    client.begin_reimage_node(
        pool_id, node_id, {"nodeReimageOption": "requeue"}, polling_interval=0.05
    ).result()
    wait_for(lambda: client.get_node(pool_id, node_id).state == "idle", 10)
    names = {f.name for f in client.list_node_files(pool_id, node_id, recursive=True)}
    assert task_dir not in names
    assert "startup/wd/scratch" in names  # the start task ran again on the fresh node
    assert boots.read_text().splitlines().count(node_id) == 2


def test_disabled_node_gets_no_tasks_until_enabled(client, small_pool):
    pool_id, _ = small_pool
    first, second = (n.id for n in client.list_nodes(pool_id))
    client.disable_node_scheduling(pool_id, first, {"nodeDisableSchedulingOption": "requeue"})
    assert client.get_node(pool_id, first).scheduling_state == "disabled"
    job_id = _job(client, pool_id)
    client.create_tasks(
        job_id, [bm.BatchTaskCreateOptions(id=f"t{i}", command_line="/bin/true") for i in range(6)]
    )
    wait_for(lambda: client.get_job_task_counts(job_id).task_counts.completed == 6, 20)
    assert {t.node_info.node_id for t in client.list_tasks(job_id)} == {second}
    client.enable_node_scheduling(pool_id, first)
    client.disable_node_scheduling(pool_id, second, {"nodeDisableSchedulingOption": "requeue"})
    client.create_task(job_id, bm.BatchTaskCreateOptions(id="later", command_line="/bin/true"))
    wait_for(lambda: client.get_task(job_id, "later").state == "completed", 10)
    assert client.get_task(job_id, "later").node_info.node_id == first


def test_remove_nodes_shrinks_the_pool_by_those_nodes(client, small_pool):
    pool_id, _ = small_pool
    victim = next(iter(client.list_nodes(pool_id))).id
    client.begin_remove_nodes(
        pool_id, bm.BatchNodeRemoveOptions(node_ids=[victim]), polling_interval=0.05
    ).result()
    pool = client.get_pool(pool_id)
    assert pool.target_dedicated_nodes == 1
    assert pool.current_dedicated_nodes == 1
    assert victim not in {n.id for n in client.list_nodes(pool_id)}
    with pytest.raises(HttpResponseError) as info:
        client.begin_remove_nodes(pool_id, bm.BatchNodeRemoveOptions(node_ids=["tvmps_nope_d"]))
    assert info.value.error.code == "NodeNotFound"
