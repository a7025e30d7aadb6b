"""Multi-instance tasks: one instance per node on numberOfInstances nodes, the coordination
command everywhere first, then the primary's command; subtasks listed with their nodes."""

from __future__ import annotations

import pytest
from azure.batch import models as bm
from azure.core.exceptions import HttpResponseError

from emulator_support import new_job, ready_pool, unique, wait_for

# Each instance writes what the service told it into the task directory (AZ_BATCH_TASK_SHARED_DIR).
COORDINATE = (
    "/bin/sh -c 'cat $AZ_BATCH_TASK_SHARED_DIR/common.txt > $AZ_BATCH_TASK_SHARED_DIR/coordinated;"
    " echo $AZ_BATCH_IS_CURRENT_NODE_MASTER $AZ_BATCH_HOST_LIST $AZ_BATCH_MASTER_NODE"
    " >> $AZ_BATCH_TASK_SHARED_DIR/coordinated'"
)


@pytest.fixture(scope="module")
def mpi_pool(client) -> str:
    pool_id = ready_pool(client, "mpi", 3, enable_inter_node_communication=True)
    yield pool_id
    client.begin_delete_pool(pool_id, polling_interval=0.05).result()


def _task(
    task_id: str, instances: int, container=None, command: str = COORDINATE
) -> bm.BatchTaskCreateOptions:
    common = (
        [bm.ResourceFile(http_url=container.blob_sas("common.txt"), file_path="common.txt")]
        if container
        else None
    )
    return bm.BatchTaskCreateOptions(
        id=task_id,
        command_line="/bin/sh -c 'cat ../coordinated; echo primary done'",
        multi_instance_settings=bm.MultiInstanceSettings(
            number_of_instances=instances, coordination_command_line=command, common_resource_files=common
        ),
    )


def test_every_instance_coordinates_then_the_primary_runs_and_subtasks_are_listed(
    client, mpi_pool, container
):
    container.blobs.upload_blob("common.txt", b"shared input\n")
    job_id = new_job(client, mpi_pool, "mpi")
    client.create_task(job_id, _task("t", 3, container))
    wait_for(lambda: client.get_task(job_id, "t").state == "completed", 30)
    task = client.get_task(job_id, "t")
    assert task.execution_info.result == "success", task.execution_info.failure_info
    assert task.multi_instance_settings.number_of_instances == 3
    out = b"".join(client.download_task_file(job_id, "t", "stdout.txt")).decode().splitlines()
    # The common file reached the task directory; the primary saw itself as the master.
    assert out[0] == "shared input" and out[1].startswith("true 127.0.0.1,127.0.0.1,127.0.0.1 127.0.0.1:")
    assert out[-1] == "primary done"
    subtasks = list(client.list_subtasks(job_id, "t"))
    assert [s.id for s in subtasks] == [1, 2]
    nodes = {s.node_info.node_id for s in subtasks} | {task.node_info.node_id}
    assert len(nodes) == 3  # one instance per node
    assert all(s.state == "completed" and s.exit_code == 0 and s.result == "success" for s in subtasks)
    for s in subtasks:  # each subtask coordinated on its own node, as a non-master
        text = b"".join(
            client.download_node_file(
                mpi_pool, s.node_info.node_id, f"{s.node_info.task_root_directory}/coordinated"
            )
        )
        assert text.decode().splitlines()[1].startswith("false ")


def test_a_failed_coordination_fails_the_task_and_the_primary_command_never_runs(client, mpi_pool):
    job_id = new_job(client, mpi_pool, "mpi")
    client.create_task(job_id, _task("t", 2, command="/bin/sh -c 'exit 7'"))
    wait_for(lambda: client.get_task(job_id, "t").state == "completed", 30)
    info = client.get_task(job_id, "t").execution_info
    assert (info.result, info.exit_code) == ("failure", 7)
    assert b"primary done" not in b"".join(client.download_task_file(job_id, "t", "stdout.txt"))


def test_a_pool_without_inter_node_communication_never_schedules_it(client, shared_pool):
    """The guide: in such a pool "the task is never scheduled - it remains indefinitely in the
    active state"; so does one that needs more nodes than the pool has."""
    job_id = new_job(client, shared_pool, "mpi")
    client.create_task(job_id, _task("t", 2))
    client.create_task(job_id, bm.BatchTaskCreateOptions(id="plain", command_line="/bin/true"))
    wait_for(lambda: client.get_task(job_id, "plain").state == "completed", 30)
    assert client.get_task(job_id, "t").state == "active"


def test_what_the_service_refuses_of_multi_instance_settings(client, mpi_pool):
    job_id = new_job(client, mpi_pool, "mpi")
    for settings, code in (
        ({"numberOfInstances": 2}, "MissingRequiredProperty"),  # coordinationCommandLine is required
        ({"numberOfInstances": 0, "coordinationCommandLine": "/bin/true"}, "InvalidPropertyValue"),
    ):
        with pytest.raises(HttpResponseError) as info:
            client.create_task(
                job_id, {"id": unique("m"), "commandLine": "/bin/true", "multiInstanceSettings": settings}
            )
        assert (info.value.status_code, info.value.error.code) == (400, code)
