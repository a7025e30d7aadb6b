"""Node operations: reboot, reimage, deallocate and start, enable/disable scheduling, remove
nodes; node users, remote login settings, extensions; the account's applications and metrics."""

from __future__ import annotations

import pytest
from azure.batch import models as bm
from azure.core.exceptions import HttpResponseError

from emulator_support import new_job, pool_options, unique, wait_for, wait_pool_ready


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


def _ran(client, pool_id: str, command: str, state: str) -> tuple[str, str]:
    """A new job whose task "t" runs `command`: (the job, the task's node) once it is `state`."""
    job_id = new_job(client, pool_id, "j")
    client.create_task(job_id, bm.BatchTaskCreateOptions(id="t", command_line=command))
    wait_for(lambda: client.get_task(job_id, "t").state == state, 10)
    return job_id, client.get_task(job_id, "t").node_info.node_id


def test_reboot_requeues_the_running_task_and_reruns_the_start_task(client, small_pool):
    pool_id, boots = small_pool
    job_id, node_id = _ran(client, pool_id, "/bin/sleep 30", "running")
    # (the SDK cannot send these requests without an options body)
    client.begin_reboot_node(
        pool_id, node_id, {"nodeRebootOption": "requeue"}, polling_interval=0.05
    ).result()
    wait_for(lambda: client.get_node(pool_id, node_id).state in ("idle", "running"), 10)
    assert boots.read_text().splitlines().count(node_id) == 2
    assert client.get_task(job_id, "t").execution_info.requeue_count == 1


def test_reimage_wipes_the_node_directory(client, small_pool):
    pool_id, boots = small_pool
    job_id, node_id = _ran(client, pool_id, "/bin/true", "completed")
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
    job_id = new_job(client, pool_id, "j")
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


def test_a_deallocated_node_runs_nothing_until_it_is_started(client, small_pool):
    """Nodes_DeallocateNode (from idle or running only) and Nodes_StartNode (from deallocated
    only): the node keeps its place, its running task is requeued, and it runs again once started."""
    pool_id, boots = small_pool
    job_id, busy = _ran(client, pool_id, "/bin/sleep 30", "running")
    # (the SDK needs the options: without them it sends no content-type and fails)
    requeue = {"nodeDeallocateOption": "requeue"}  # (no model for it in azure-batch 15.1)
    client.begin_deallocate_node(pool_id, busy, requeue, polling_interval=0.05).result()
    assert client.get_node(pool_id, busy).state == "deallocated"
    wait_for(lambda: client.get_task(job_id, "t").execution_info.requeue_count == 1, 10)
    with pytest.raises(HttpResponseError) as info:
        client.begin_deallocate_node(pool_id, busy, requeue)
    assert (info.value.status_code, info.value.error.code) == (409, "OperationNotValidOnNode")
    other = next(n.id for n in client.list_nodes(pool_id) if n.id != busy)
    with pytest.raises(HttpResponseError) as info:
        client.begin_start_node(pool_id, other)
    assert (info.value.status_code, info.value.error.code) == (409, "OperationNotValidOnNode")
    started_before = boots.read_text().count(busy)
    client.begin_start_node(pool_id, busy, polling_interval=0.05).result()
    wait_for(lambda: client.get_node(pool_id, busy).state in ("idle", "running"), 10)
    assert boots.read_text().count(busy) == started_before + 1  # its start task ran again
    client.begin_delete_job(job_id, polling_interval=0.05).result()


def test_node_users_are_kept_without_passwords_and_never_shown_with_the_node(client, small_pool):
    pool_id, _ = small_pool
    node_id = next(iter(client.list_nodes(pool_id))).id
    user = bm.BatchNodeUserCreateOptions(name="alice", password="S3cret!pw", is_admin=True)
    client.create_node_user(pool_id, node_id, user)
    with pytest.raises(HttpResponseError) as info:
        client.create_node_user(pool_id, node_id, user)
    assert (info.value.status_code, info.value.error.code) == (409, "NodeUserExists")
    client.replace_node_user(pool_id, node_id, "ALICE", bm.BatchNodeUserReplaceOptions(password="0ther!pw"))
    client.delete_node_user(pool_id, node_id, "alice")
    with pytest.raises(HttpResponseError) as info:
        client.delete_node_user(pool_id, node_id, "alice")
    assert (info.value.status_code, info.value.error.code) == (404, "NodeUserNotFound")
    # (the suite's answer check refuses any node body with a property outside the definition)
    assert client.get_node(pool_id, node_id).id == node_id


def test_remote_login_settings_and_extensions_describe_the_node(client):
    pool_id = unique("admin")
    extension = bm.VMExtension(
        name="monitor",
        publisher="Microsoft.Azure.Monitor",
        type="AzureMonitorLinuxAgent",
        protected_settings={"token": "hidden"},
    )
    vm = bm.VirtualMachineConfiguration(
        image_reference=bm.BatchVmImageReference(
            publisher="canonical", offer="ubuntu-24_04-lts", sku="server"
        ),
        node_agent_sku_id="batch.node.ubuntu 24.04",
        extensions=[extension],
    )
    client.create_pool(
        bm.BatchPoolCreateOptions(
            id=pool_id, vm_size="standard_d2s_v3", virtual_machine_configuration=vm, target_dedicated_nodes=2
        )
    )
    wait_pool_ready(client, pool_id, 2)
    logins = [client.get_node_remote_login_settings(pool_id, n.id) for n in client.list_nodes(pool_id)]
    assert {(s.remote_login_ip_address, s.remote_login_port) for s in logins} == {
        ("127.0.0.1", 50000),
        ("127.0.0.1", 50001),
    }
    node_id = next(iter(client.list_nodes(pool_id))).id
    [listed] = client.list_node_extensions(pool_id, node_id)
    assert (listed.vm_extension.name, listed.provisioning_state) == ("monitor", "Succeeded")
    assert listed.vm_extension.protected_settings is None  # write-only
    assert (
        client.get_node_extension(pool_id, node_id, "MONITOR").vm_extension.type == "AzureMonitorLinuxAgent"
    )
    with pytest.raises(HttpResponseError) as info:
        client.get_node_extension(pool_id, node_id, "absent")
    assert info.value.status_code == 404
    client.begin_delete_pool(pool_id, polling_interval=0.05).result()


def test_a_local_account_has_no_applications_and_no_usage_metrics_yet(client):
    assert list(client.list_applications()) == []
    assert list(client.list_pool_usage_metrics()) == []
    with pytest.raises(HttpResponseError) as info:
        client.get_application("anything")
    assert (info.value.status_code, info.value.error.code) == (404, "ApplicationNotFound")


def test_only_an_idle_or_running_node_is_rebooted_or_reimaged(client):
    """Nodes_RebootNode / Nodes_ReimageNode: "only if it is in an idle or running state"."""
    pool_id = unique("failed")
    failing = bm.BatchStartTask(command_line="/bin/sh -c 'exit 4'", wait_for_success=True)
    client.create_pool(pool_options(pool_id, nodes=1, start_task=failing))
    wait_for(lambda: [n.state for n in client.list_nodes(pool_id)] == ["starttaskfailed"], 20)
    node_id = next(iter(client.list_nodes(pool_id))).id
    for restart in (
        lambda: client.begin_reboot_node(pool_id, node_id, {"nodeRebootOption": "requeue"}),
        lambda: client.begin_reimage_node(pool_id, node_id, {"nodeReimageOption": "requeue"}),
    ):
        with pytest.raises(HttpResponseError) as info:
            restart()
        assert (info.value.status_code, info.value.error.code) == (409, "OperationNotValidOnNode")
    client.begin_delete_pool(pool_id, polling_interval=0.05).result()
