"""Pools and nodes: allocation, start tasks, resize, node counts, node files, async delete."""

from __future__ import annotations

import pytest
from azure.batch import models as bm
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError

from batchspec.apply.common import start_delete
from emulator_support import pool_options, ready_pool, unique, wait_for, wait_pool_ready


def _running_task(client, name: str) -> tuple[str, str]:
    """A one-node pool and a job whose task "t" is running there (for 30 s)."""
    pool_id = unique(name)
    client.create_pool(pool_options(pool_id, nodes=1))
    wait_pool_ready(client, pool_id, 1)
    job_id = unique("j")
    client.create_job(bm.BatchJobCreateOptions(id=job_id, pool_info=bm.BatchPoolInfo(pool_id=pool_id)))
    client.create_task(job_id, bm.BatchTaskCreateOptions(id="t", command_line="/bin/sleep 30"))
    wait_for(lambda: client.get_task(job_id, "t").state == "running", 10)
    return pool_id, job_id


def test_start_task_prepares_the_shared_dir_on_every_node(client, shared_pool):
    nodes = list(client.list_nodes(shared_pool))
    assert len(nodes) == 3
    for node in nodes:
        assert node.start_task_info.state == "completed"
        assert node.start_task_info.exit_code == 0
        marker = b"".join(client.download_node_file(shared_pool, node.id, "shared/marker.txt"))
        assert marker == b"prepared\n"
    pool = client.get_pool(shared_pool)
    assert pool.current_dedicated_nodes == 3
    assert pool.allocation_state == "steady"


def test_new_pool_is_resizing_then_steady(client):
    pool_id = unique("alloc")
    client.create_pool(pool_options(pool_id, nodes=1))
    assert client.get_pool(pool_id).allocation_state == "resizing"
    wait_pool_ready(client, pool_id, 1)
    assert client.get_pool(pool_id).current_dedicated_nodes == 1
    client.begin_delete_pool(pool_id, polling_interval=0.1).result()


def test_failing_wait_for_success_start_task_leaves_node_starttaskfailed(client):
    pool_id = unique("stfail")
    client.create_pool(
        pool_options(
            pool_id,
            nodes=1,
            start_task=bm.BatchStartTask(
                command_line="/bin/sh -c 'echo broken >&2; exit 7'",
                wait_for_success=True,
                max_task_retry_count=1,
            ),
        )
    )

    def failed_node():
        nodes = list(client.list_nodes(pool_id))
        return nodes[0] if nodes and nodes[0].state == "starttaskfailed" else None

    node = wait_for(failed_node, 20)
    info = node.start_task_info
    assert info.exit_code == 7
    assert info.result == "failure"
    assert info.retry_count == 1
    assert info.failure_info.category == "usererror"
    stderr = b"".join(client.download_node_file(pool_id, node.id, "startup/stderr.txt"))
    assert b"broken" in stderr
    counts = {c.pool_id: c for c in client.list_pool_node_counts()}[pool_id]
    assert counts.dedicated.start_task_failed == 1
    assert counts.dedicated.total == 1

    # No task is ever scheduled on a node whose start task failed.
    job_id = unique("j")
    client.create_job(bm.BatchJobCreateOptions(id=job_id, pool_info=bm.BatchPoolInfo(pool_id=pool_id)))
    client.create_task(job_id, bm.BatchTaskCreateOptions(id="t", command_line="/bin/true"))
    with pytest.raises(pytest.fail.Exception):
        wait_for(lambda: client.get_task(job_id, "t").state != "active", timeout=1)
    client.begin_delete_job(job_id, polling_interval=0.1).result()
    client.begin_delete_pool(pool_id, polling_interval=0.1).result()


def test_resize_up_and_down_removes_idle_nodes_first(client):
    pool_id = ready_pool(client, "resize")
    client.begin_resize_pool(
        pool_id, bm.BatchPoolResizeOptions(target_dedicated_nodes=3), polling_interval=0.1
    ).result()
    wait_pool_ready(client, pool_id, 3)
    job_id = unique("j")
    client.create_job(bm.BatchJobCreateOptions(id=job_id, pool_info=bm.BatchPoolInfo(pool_id=pool_id)))
    client.create_task(job_id, bm.BatchTaskCreateOptions(id="busy", command_line="/bin/sleep 30"))
    wait_for(lambda: client.get_task(job_id, "busy").state == "running", 10)
    busy_node = client.get_task(job_id, "busy").node_info.node_id
    client.begin_resize_pool(
        pool_id, bm.BatchPoolResizeOptions(target_dedicated_nodes=1), polling_interval=0.1
    ).result()
    wait_pool_ready(client, pool_id, 1)
    assert [n.id for n in client.list_nodes(pool_id)] == [busy_node]
    busy = client.get_task(job_id, "busy")
    assert busy.state == "running" and busy.execution_info.requeue_count == 0
    assert client.get_pool(pool_id).current_dedicated_nodes == 1
    client.begin_delete_job(job_id, polling_interval=0.1).result()
    client.begin_delete_pool(pool_id, polling_interval=0.1).result()


def test_pool_delete_is_asynchronous_deleting_then_gone(client):
    pool_id = ready_pool(client, "del")
    poller = client.begin_delete_pool(pool_id, polling_interval=0.05)
    assert client.get_pool(pool_id).state == "deleting"
    with pytest.raises(HttpResponseError) as info:
        client.begin_resize_pool(pool_id, bm.BatchPoolResizeOptions(target_dedicated_nodes=2))
    assert info.value.error.code == "PoolBeingDeleted"
    poller.result()
    with pytest.raises(ResourceNotFoundError):
        client.get_pool(pool_id)


def test_update_properties_and_patch_change_the_pool(client):
    pool_id = unique("upd")
    client.create_pool(pool_options(pool_id, nodes=0, metadata=[bm.BatchMetadataItem(name="a", value="1")]))
    client.update_pool(pool_id, bm.BatchPoolUpdateOptions(display_name="renamed"))
    pool = client.get_pool(pool_id)
    assert pool.display_name == "renamed"
    assert pool.metadata[0].name == "a"
    client.replace_pool_properties(
        pool_id,
        bm.BatchPoolReplaceOptions(
            application_package_references=[],
            metadata=[bm.BatchMetadataItem(name="b", value="2")],
            start_task=bm.BatchStartTask(command_line="/bin/true"),
        ),
    )
    pool = client.get_pool(pool_id)
    assert [m.name for m in pool.metadata] == ["b"]
    assert pool.start_task.command_line == "/bin/true"
    client.begin_delete_pool(pool_id, polling_interval=0.1).result()


def test_list_pools_filters_by_id_prefix(client):
    prefix = unique("pfx")
    for i in range(3):
        client.create_pool(pool_options(f"{prefix}-{i}", nodes=0))
    found = [p.id for p in client.list_pools(filter=f"startswith(id, '{prefix}')")]
    assert sorted(found) == [f"{prefix}-{i}" for i in range(3)]


def test_node_files_list_recursively(client, shared_pool):
    node = next(iter(client.list_nodes(shared_pool)))
    names = {f.name for f in client.list_node_files(shared_pool, node.id, recursive=True)}
    assert {"shared", "shared/marker.txt", "startup/stdout.txt"} <= names
    top = {f.name for f in client.list_node_files(shared_pool, node.id, recursive=False)}
    assert "shared/marker.txt" not in top and "shared" in top
    props = client.get_node_file_properties(shared_pool, node.id, "shared/marker.txt")
    assert props.content_length == len(b"prepared\n")
    assert props.is_directory is False
    assert props.url.endswith("/files/shared/marker.txt")
    assert props.file_mode.startswith("0100")


def test_node_get_reports_slots_and_state(client, shared_pool):
    node = next(iter(client.list_nodes(shared_pool)))
    fetched = client.get_node(shared_pool, node.id)
    assert fetched.id == node.id
    assert fetched.state in ("idle", "running")
    assert fetched.is_dedicated is True
    with pytest.raises(ResourceNotFoundError) as info:
        client.get_node(shared_pool, "tvmps_nosuchnode_d")
    assert info.value.error.code == "NodeNotFound"


def test_resize_down_and_pool_delete_requeue_then_kill_running_tasks(client):
    pool_id = ready_pool(client, "busy", 2)
    job_id = unique("j")
    client.create_job(bm.BatchJobCreateOptions(id=job_id, pool_info=bm.BatchPoolInfo(pool_id=pool_id)))
    client.create_tasks(
        job_id,
        [bm.BatchTaskCreateOptions(id=f"s{i}", command_line="/bin/sleep 30") for i in range(2)],
    )
    wait_for(lambda: client.get_job_task_counts(job_id).task_counts.running == 2, 10)
    client.begin_resize_pool(
        pool_id, bm.BatchPoolResizeOptions(target_dedicated_nodes=1), polling_interval=0.1
    ).result()
    wait_pool_ready(client, pool_id, 1)
    tasks = list(client.list_tasks(job_id))
    requeued = [t for t in tasks if t.execution_info.requeue_count == 1]
    assert len(requeued) == 1
    assert requeued[0].state == "active"  # no free node: waits for one
    client.begin_delete_pool(pool_id, polling_interval=0.05).result()
    tasks = list(client.list_tasks(job_id))
    assert all(t.state == "active" for t in tasks)
    assert sum(t.execution_info.requeue_count for t in tasks) == 2
    client.begin_delete_job(job_id, polling_interval=0.05).result()


def test_stop_resize_keeps_the_nodes_the_pool_has(client):
    pool_id = ready_pool(client, "stop")
    client.begin_resize_pool(pool_id, bm.BatchPoolResizeOptions(target_dedicated_nodes=5))
    stopping = client.begin_stop_pool_resize(pool_id, polling_interval=0.1)
    # Pools_StopPoolResize: "the Pool allocation state changes first to stopping and then to steady".
    assert client.get_pool(pool_id).allocation_state == "stopping"
    stopping.result()
    pool = client.get_pool(pool_id)
    assert pool.allocation_state == "steady"
    assert [e.code for e in pool.resize_errors] == ["ResizeStopped"]
    assert pool.current_dedicated_nodes == 1
    assert len(list(client.list_nodes(pool_id))) == 1
    client.begin_delete_pool(pool_id, polling_interval=0.1).result()


def test_node_file_can_be_deleted(client, shared_pool):
    node = next(iter(client.list_nodes(shared_pool)))
    client.delete_node_file(shared_pool, node.id, "startup/stderr.txt")
    names = {f.name for f in client.list_node_files(shared_pool, node.id, recursive=True)}
    assert "startup/stderr.txt" not in names and "startup/stdout.txt" in names


def test_shrink_with_terminate_ends_the_busy_nodes_tasks(client):
    pool_id, job_id = _running_task(client, "shrinkterm")
    client.begin_resize_pool(
        pool_id,
        bm.BatchPoolResizeOptions(target_dedicated_nodes=0, node_deallocation_option="terminate"),
        polling_interval=0.05,
    ).result()
    wait_pool_ready(client, pool_id, 0)
    t = client.get_task(job_id, "t")
    assert t.state == "completed"
    assert t.execution_info.failure_info.code == "TaskEnded"
    assert t.execution_info.requeue_count == 0
    client.begin_delete_pool(pool_id, polling_interval=0.05).result()


def test_a_resize_while_the_pool_is_not_steady_is_pool_being_resized(client):
    """Pools_ResizePool: "If the Pool is already resizing, the request fails with status code 409"."""
    pool_id = unique("rapid")
    client.create_pool(pool_options(pool_id, nodes=1))  # resizing to its first node

    def resize(target: int) -> None:
        client.begin_resize_pool(pool_id, bm.BatchPoolResizeOptions(target_dedicated_nodes=target))

    for nodes, then in ((1, 2), (2, 0)):
        with pytest.raises(HttpResponseError) as info:
            resize(3)
        assert (info.value.status_code, info.value.error.code) == (409, "PoolBeingResized")
        wait_pool_ready(client, pool_id, nodes)
        resize(then)
    wait_pool_ready(client, pool_id, 0)
    client.begin_delete_pool(pool_id, polling_interval=0.05).result()


def test_deleting_a_pool_being_deleted_is_pool_being_deleted(client):
    """Pools_DeletePool: "If you call an Update, Patch or Delete API on a Pool in the deleting
    state, it will fail with HTTP status code 409 with error code PoolBeingDeleted"."""
    pool_id = ready_pool(client, "deldel")
    poller = client.begin_delete_pool(pool_id, polling_interval=0.05)
    for again in (
        lambda: client.begin_delete_pool(pool_id),
        lambda: client.update_pool(pool_id, bm.BatchPoolUpdateOptions(metadata=[])),
    ):
        with pytest.raises(HttpResponseError) as info:
            again()
        assert (info.value.status_code, info.value.error.code) == (409, "PoolBeingDeleted")
    # batchspec's deletions take both answers as "wait for it to be gone".
    assert start_delete(client.begin_delete_pool, pool_id, 0.05) is None
    poller.result()
    assert start_delete(client.begin_delete_pool, pool_id, 0.05) is None


def test_stop_resize_during_a_shrink_keeps_the_busy_node(client):
    pool_id, job_id = _running_task(client, "stopshrink")
    client.begin_resize_pool(
        pool_id,
        bm.BatchPoolResizeOptions(target_dedicated_nodes=0, node_deallocation_option="taskcompletion"),
    )
    wait_for(lambda: next(iter(client.list_nodes(pool_id))).state == "leavingpool", 10)
    client.begin_stop_pool_resize(pool_id, polling_interval=0.05).result()
    node = next(iter(client.list_nodes(pool_id)))
    assert node.state == "running"
    assert client.get_pool(pool_id).allocation_state == "steady"
    assert client.get_task(job_id, "t").state == "running"
    client.begin_delete_job(job_id, polling_interval=0.05).result()
    client.begin_delete_pool(pool_id, polling_interval=0.05).result()


def test_secrets_are_never_returned(client):
    """UserAccount.password is `x-ms-secret` in the API definition: the service never returns it."""
    pool_id = unique("secret")
    accounts = [bm.UserAccount(name="worker", password="Pa55word!x", elevation_level="nonadmin")]
    client.create_pool(pool_options(pool_id, nodes=0, user_accounts=accounts))
    for pool in (client.get_pool(pool_id), *client.list_pools(filter=f"id eq '{pool_id}'")):
        assert [(u.name, u.password, u.elevation_level) for u in pool.user_accounts] == [
            ("worker", None, "nonadmin")
        ]
    client.update_pool(
        pool_id, bm.BatchPoolUpdateOptions(user_accounts=[*accounts, bm.UserAccount(name="b", password="x")])
    )
    assert [u.password for u in client.get_pool(pool_id).user_accounts] == [None, None]
    client.begin_delete_pool(pool_id, polling_interval=0.1).result()


def test_a_windows_pool_comes_up_and_says_its_commands_cannot_run_here(client):
    """The service creates Windows pools; the emulator's nodes run on a Linux host, so a Windows
    node's start task and tasks fail with a failureInfo that says why (docs/emulator.md)."""
    pool_id = unique("win")
    windows = bm.VirtualMachineConfiguration(
        image_reference=bm.BatchVmImageReference(
            publisher="MicrosoftWindowsServer", offer="WindowsServer", sku="2022-datacenter"
        ),
        node_agent_sku_id="batch.node.windows amd64",
    )
    start = bm.BatchStartTask(command_line="cmd /c echo hello", wait_for_success=False)
    client.create_pool(
        bm.BatchPoolCreateOptions(
            id=pool_id,
            vm_size="standard_d2s_v3",
            virtual_machine_configuration=windows,
            target_dedicated_nodes=1,
            start_task=start,
        )
    )
    wait_pool_ready(client, pool_id, 1)
    node = next(iter(client.list_nodes(pool_id)))
    wait_for(lambda: client.get_node(pool_id, node.id).start_task_info is not None, 10)
    info = client.get_node(pool_id, node.id).start_task_info
    assert info.failure_info.code == "CommandLaunchFailed"
    assert "Windows node cannot run" in info.failure_info.details[0].value
    job_id = unique("winjob")
    client.create_job(bm.BatchJobCreateOptions(id=job_id, pool_info=bm.BatchPoolInfo(pool_id=pool_id)))
    client.create_task(job_id, bm.BatchTaskCreateOptions(id="t", command_line="cmd /c hostname"))
    wait_for(lambda: client.get_task(job_id, "t").state == "completed", 20)
    failure = client.get_task(job_id, "t").execution_info.failure_info
    assert (failure.category, failure.code) == ("usererror", "CommandLaunchFailed")
    client.begin_delete_job(job_id, polling_interval=0.05).result()
    client.begin_delete_pool(pool_id, polling_interval=0.05).result()


def test_a_pool_of_a_compute_gallery_image_is_created(client):
    image_id = (
        "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers/"
        "Microsoft.Compute/galleries/gallery/images/worker/versions/1.0.0"
    )
    pool_id = unique("gallery")
    vm = bm.VirtualMachineConfiguration(
        image_reference=bm.BatchVmImageReference(virtual_machine_image_id=image_id),
        node_agent_sku_id="batch.node.ubuntu 24.04",
    )
    client.create_pool(
        bm.BatchPoolCreateOptions(id=pool_id, vm_size="standard_d2s_v3", virtual_machine_configuration=vm)
    )
    assert (
        client.get_pool(pool_id).virtual_machine_configuration.image_reference.virtual_machine_image_id
        == image_id
    )
    client.begin_delete_pool(pool_id, polling_interval=0.05).result()


def test_network_and_data_disk_defaults_are_filled_in_and_nodes_get_their_inbound_endpoints(client):
    """NetworkConfiguration (dynamicVNetAssignmentScope, enableAcceleratedNetworking),
    NetworkSecurityGroupRule.sourcePortRanges ('*') and DataDisk (caching readwrite,
    storageAccountType standard_lrs) as the definition says the service fills them in."""
    pool_id = unique("net")
    rule = bm.NetworkSecurityGroupRule(priority=150, access="allow", source_address_prefix="*")
    nat = bm.BatchInboundNatPool(
        name="ssh",
        protocol="tcp",
        backend_port=22,
        frontend_port_range_start=15000,
        frontend_port_range_end=15100,
        network_security_group_rules=[rule],
    )
    subnet = (
        "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers/"
        "Microsoft.Network/virtualNetworks/vnet/subnets/batch"
    )
    network = bm.NetworkConfiguration(
        subnet_id=subnet, endpoint_configuration=bm.BatchPoolEndpointConfiguration(inbound_nat_pools=[nat])
    )
    vm = bm.VirtualMachineConfiguration(
        image_reference=bm.BatchVmImageReference(
            publisher="canonical", offer="ubuntu-24_04-lts", sku="server"
        ),
        node_agent_sku_id="batch.node.ubuntu 24.04",
        data_disks=[bm.DataDisk(logical_unit_number=0, disk_size_gb=64)],
    )
    client.create_pool(
        bm.BatchPoolCreateOptions(
            id=pool_id,
            vm_size="standard_d2s_v3",
            virtual_machine_configuration=vm,
            network_configuration=network,
            target_dedicated_nodes=2,
        )
    )
    pool = client.get_pool(pool_id)
    got = pool.network_configuration
    assert (got.dynamic_vnet_assignment_scope, got.enable_accelerated_networking) == ("none", False)
    assert got.endpoint_configuration.inbound_nat_pools[0].network_security_group_rules[
        0
    ].source_port_ranges == ["*"]
    disk = pool.virtual_machine_configuration.data_disks[0]
    assert (disk.caching, disk["storageAccountType"]) == ("readwrite", "standard_lrs")  # (no SDK attribute)
    wait_pool_ready(client, pool_id, 2)
    endpoints = sorted(
        (e.name, e.frontend_port, e.backend_port)
        for n in client.list_nodes(pool_id)
        for e in n.endpoint_configuration.inbound_endpoints
    )
    assert endpoints == [("ssh.0", 15000, 22), ("ssh.1", 15001, 22)]
    client.begin_delete_pool(pool_id, polling_interval=0.05).result()
