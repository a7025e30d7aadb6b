"""The job manager task (BatchJobManagerTask): started with its job, first of its tasks, alone on
its node unless runExclusive is false, and its completion completes the job unless
killJobOnCompletion is false."""

from __future__ import annotations

import pytest
from azure.batch import models as bm
from azure.core.exceptions import HttpResponseError

from emulator_support import ready_pool, unique, wait_for


def _job(client, pool_id: str, command: str, **manager) -> str:
    job_id = unique("jm")
    client.create_job(
        bm.BatchJobCreateOptions(
            id=job_id,
            pool_info=bm.BatchPoolInfo(pool_id=pool_id),
            job_manager_task=bm.BatchJobManagerTask(id="manager", command_line=command, **manager),
        )
    )
    return job_id


def test_the_job_manager_starts_with_its_job_and_its_completion_completes_the_job(client, shared_pool):
    job_id = _job(client, shared_pool, "/bin/sh -c 'sleep 0.2'")
    shown = client.get_job(job_id).job_manager_task
    assert (shown.kill_job_on_completion, shown.run_exclusive, shown.allow_low_priority_node) == (
        True,
        True,
        True,
    )
    assert [t.id for t in client.list_tasks(job_id)] == ["manager"]  # it is one of the job's tasks
    wait_for(lambda: client.get_job(job_id).state == "completed", 30)
    job = client.get_job(job_id)
    assert job.execution_info.termination_reason == "JMComplete"
    assert client.get_task(job_id, "manager").execution_info.exit_code == 0


def test_with_kill_job_on_completion_false_the_job_goes_on(client, shared_pool):
    job_id = _job(client, shared_pool, "/bin/true", kill_job_on_completion=False)
    wait_for(lambda: client.get_task(job_id, "manager").state == "completed", 30)
    assert client.get_job(job_id).state == "active"


def test_an_exclusive_job_manager_keeps_the_jobs_other_tasks_off_its_node(client):
    pool_id = ready_pool(client, "jmpool", slots=2)
    job_id = _job(client, pool_id, "/bin/sh -c 'sleep 1'", kill_job_on_completion=False)
    client.create_task(job_id, bm.BatchTaskCreateOptions(id="worker", command_line="/bin/true"))
    wait_for(lambda: client.get_task(job_id, "worker").state == "completed", 30)
    manager, worker = client.get_task(job_id, "manager"), client.get_task(job_id, "worker")
    # Two free slots, yet the worker waited until the manager had the node to itself no more.
    assert worker.execution_info.start_time >= manager.execution_info.end_time
    client.begin_delete_pool(pool_id, polling_interval=0.05).result()


def test_a_job_manager_the_service_would_refuse_refuses_the_job(client, shared_pool):
    with pytest.raises(HttpResponseError) as info:
        client.create_job(
            {"id": unique("jm"), "poolInfo": {"poolId": shared_pool}, "jobManagerTask": {"id": "m"}}
        )
    assert (info.value.status_code, info.value.error.code) == (400, "MissingRequiredProperty")
