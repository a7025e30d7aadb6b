"""Job preparation and release tasks through the SDK, as the API definition describes them."""

from __future__ import annotations

import pytest
from azure.batch import models as bm
from azure.core.exceptions import HttpResponseError

from emulator_support import ready_pool, unique, wait_for, wait_job_done


@pytest.fixture
def two_nodes(client):
    pool_id = ready_pool(client, "prep", 2, slots=2)
    yield pool_id
    client.begin_delete_pool(pool_id, polling_interval=0.05).result()


def _job(client, pool_id: str, **kw) -> str:
    job_id = unique("j")
    client.create_job(bm.BatchJobCreateOptions(id=job_id, pool_info=bm.BatchPoolInfo(pool_id=pool_id), **kw))
    return job_id


def _status(client, job_id: str) -> dict[str, bm.BatchJobPreparationAndReleaseTaskStatus]:
    return {s.node_id: s for s in client.list_job_preparation_and_release_task_status(job_id)}


def test_preparation_runs_on_a_node_before_the_jobs_tasks_and_release_when_the_job_ends(
    client, two_nodes, tmp_path
):
    marker = '"$AZ_BATCH_NODE_SHARED_DIR/prepared-$AZ_BATCH_JOB_ID"'
    job_id = _job(
        client,
        two_nodes,
        job_preparation_task=bm.BatchJobPreparationTask(command_line=f"/bin/sh -c 'touch {marker}'"),
        job_release_task=bm.BatchJobReleaseTask(
            command_line=f"/bin/sh -c 'echo $AZ_BATCH_NODE_ID >> {tmp_path}/released'"
        ),
    )
    job = client.get_job(job_id)
    prep = job.job_preparation_task  # filled in as the service fills it in
    assert (prep.id, prep.wait_for_success, prep.rerun_on_node_reboot_after_success) == (
        "jobpreparation",
        True,
        True,
    )
    assert job.job_release_task.id == "jobrelease" and job.job_release_task.max_wall_clock_time is not None
    # Each task fails unless the preparation task ran on its node before it.
    client.create_tasks(
        job_id,
        [
            bm.BatchTaskCreateOptions(id=f"t{i}", command_line=f"/bin/sh -c 'test -f {marker}'")
            for i in range(8)
        ],
    )
    wait_job_done(client, job_id, 8)
    assert {t.execution_info.result for t in client.list_tasks(job_id)} == {"success"}
    ran_on = {t.node_info.node_id for t in client.list_tasks(job_id)}
    status = _status(client, job_id)
    assert set(status) >= ran_on
    for s in status.values():
        info = s.job_preparation_task_execution_info
        assert (info.state, info.exit_code, info.retry_count) == ("completed", 0, 0)
        assert info.task_root_directory == f"workitems/{job_id}/job-1/jobpreparation"
    client.begin_terminate_job(job_id, {"terminateReason": "done"}, polling_interval=0.05).result()
    wait_for(
        lambda: all(
            s.job_release_task_execution_info and s.job_release_task_execution_info.state == "completed"
            for s in _status(client, job_id).values()
        ),
        10,
    )
    assert sorted((tmp_path / "released").read_text().split()) == sorted(status)
    client.begin_delete_job(job_id, polling_interval=0.05).result()


def test_a_failed_preparation_task_keeps_the_jobs_tasks_off_the_node(client, two_nodes):
    """BatchJobPreparationTask.waitForSuccess: tasks of the job run on a node only once its
    preparation task succeeded; a nonzero exit is retried up to maxTaskRetryCount."""
    job_id = _job(
        client,
        two_nodes,
        job_preparation_task=bm.BatchJobPreparationTask(
            command_line="/bin/sh -c 'exit 3'", constraints=bm.BatchTaskConstraints(max_task_retry_count=1)
        ),
    )
    client.create_task(job_id, bm.BatchTaskCreateOptions(id="never", command_line="/bin/true"))
    wait_for(
        lambda: (
            len(_status(client, job_id)) == 2
            and all(
                s.job_preparation_task_execution_info.state == "completed"
                for s in _status(client, job_id).values()
            )
        ),
        10,
    )
    for s in _status(client, job_id).values():
        info = s.job_preparation_task_execution_info
        assert (info.result, info.exit_code, info.retry_count) == ("failure", 3, 1)
    assert client.get_task(job_id, "never").state == "active"
    client.begin_delete_job(job_id, polling_interval=0.05).result()


def test_what_the_service_refuses_of_preparation_and_release_tasks(client, two_nodes):
    with pytest.raises(HttpResponseError) as info:  # "cannot be specified without ... a Job Preparation Task"
        _job(client, two_nodes, job_release_task=bm.BatchJobReleaseTask(command_line="/bin/true"))
    assert (info.value.status_code, info.value.error.code) == (400, "InvalidPropertyValue")
    plain = _job(client, two_nodes)
    with pytest.raises(HttpResponseError) as info:
        list(client.list_job_preparation_and_release_task_status(plain))
    assert (info.value.status_code, info.value.error.code) == (409, "JobPreparationTaskNotSpecified")
    prepared = _job(
        client, two_nodes, job_preparation_task=bm.BatchJobPreparationTask(command_line="/bin/true")
    )
    with pytest.raises(HttpResponseError) as info:
        client.create_task(prepared, bm.BatchTaskCreateOptions(id="JobPreparation", command_line="/bin/true"))
    assert (info.value.status_code, info.value.error.code) == (409, "TaskIdSameAsJobPreparationTask")
    for job_id in (plain, prepared):
        client.begin_delete_job(job_id, polling_interval=0.05).result()
