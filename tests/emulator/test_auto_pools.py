"""Auto pools (BatchAutoPoolSpecification): the service makes a pool for a job, or for the jobs
of a schedule, runs their tasks on it, and deletes it when that lifetime ends unless kept alive."""

from __future__ import annotations

import pytest
from azure.batch import models as bm
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError

from emulator_support import UBUNTU, unique, wait_for


def _auto(
    lifetime: str = "job", *, keep_alive: bool | None = None, prefix: str = "auto", **pool
) -> bm.BatchPoolInfo:
    spec = bm.BatchPoolSpecification(
        vm_size="standard_d2s_v3",
        virtual_machine_configuration=pool.pop("vm", UBUNTU),
        target_dedicated_nodes=1,
        **pool,
    )
    return bm.BatchPoolInfo(
        auto_pool_specification=bm.BatchAutoPoolSpecification(
            auto_pool_id_prefix=prefix, pool_lifetime_option=lifetime, keep_alive=keep_alive, pool=spec
        )
    )


def _job(client, pool_info: bm.BatchPoolInfo, **options) -> str:
    job_id = unique("autojob")
    client.create_job(bm.BatchJobCreateOptions(id=job_id, pool_info=pool_info, **options))
    return job_id


def _gone(client, pool_id: str) -> bool:
    try:
        client.get_pool(pool_id)
    except ResourceNotFoundError:
        return True
    return False


def test_a_job_with_an_auto_pool_runs_on_a_pool_made_for_it_which_goes_with_the_job(client):
    job_id = _job(client, _auto())
    pool_id = client.get_job(job_id).execution_info.pool_id
    assert pool_id.startswith("auto_") and len(pool_id) == len("auto_") + 36
    assert client.get_pool(pool_id).target_dedicated_nodes == 1
    shown = client.get_job(job_id).pool_info.auto_pool_specification
    assert (shown.pool_lifetime_option, shown.keep_alive, shown.auto_pool_id_prefix) == ("job", False, "auto")
    client.create_task(job_id, bm.BatchTaskCreateOptions(id="t", command_line="/bin/sh -c 'echo hi'"))
    client.update_job(job_id, bm.BatchJobUpdateOptions(all_tasks_complete_mode="terminatejob"))
    wait_for(lambda: client.get_job(job_id).state == "completed", 30)
    assert client.get_task(job_id, "t").node_info.pool_id == pool_id
    # keepAlive false: "the Batch service deletes the Pool once ... the Job ... completes".
    wait_for(lambda: _gone(client, pool_id), 30)


def test_a_kept_alive_auto_pool_outlives_its_job(client):
    job_id = _job(client, _auto(keep_alive=True))
    pool_id = client.get_job(job_id).execution_info.pool_id
    client.begin_terminate_job(job_id, {"terminateReason": "done"}, polling_interval=0.05).result()
    assert client.get_job(job_id).state == "completed"
    client.begin_delete_job(job_id, polling_interval=0.05).result()
    assert client.get_pool(pool_id).state == "active"
    client.begin_delete_pool(pool_id, polling_interval=0.05).result()


def test_keep_alive_is_the_one_thing_of_an_auto_pool_a_job_update_changes(client):
    """Jobs_UpdateJob: "only the keepAlive property of the autoPoolSpecification can be updated,
    and then only if the autoPoolSpecification has a poolLifetimeOption of Job"."""
    job_id = _job(client, _auto())
    pool_id = client.get_job(job_id).execution_info.pool_id
    client.update_job(job_id, bm.BatchJobUpdateOptions(pool_info=_auto(keep_alive=True)))
    assert client.get_job(job_id).pool_info.auto_pool_specification.keep_alive is True
    with pytest.raises(HttpResponseError) as info:
        client.update_job(job_id, bm.BatchJobUpdateOptions(pool_info=_auto("jobschedule")))
    assert info.value.status_code == 400  # a schedule's lifetime, on a job
    client.begin_terminate_job(job_id, {"terminateReason": "done"}, polling_interval=0.05).result()
    assert client.get_pool(pool_id).state == "active"
    client.begin_delete_pool(pool_id, polling_interval=0.05).result()


def test_a_job_on_a_named_pool_cannot_switch_to_an_auto_pool(client, shared_pool):
    job_id = unique("named")
    client.create_job(bm.BatchJobCreateOptions(id=job_id, pool_info=bm.BatchPoolInfo(pool_id=shared_pool)))
    with pytest.raises(HttpResponseError) as info:
        client.update_job(job_id, bm.BatchJobUpdateOptions(pool_info=_auto()))
    assert info.value.status_code == 400
    assert client.get_job(job_id).execution_info.pool_id == shared_pool


def test_an_auto_pool_the_service_cannot_create_completes_the_job_with_its_error(client):
    """BatchPoolInfo: "If auto Pool creation fails, the Batch service moves the Job to a
    completed state, and the Pool creation error is set in the Job's scheduling error"."""
    bad = bm.VirtualMachineConfiguration(
        image_reference=UBUNTU.image_reference, node_agent_sku_id="batch.node.nope"
    )
    job_id = _job(client, _auto(vm=bad))
    job = client.get_job(job_id)
    assert job.state == "completed"
    error = job.execution_info.scheduling_error
    assert (error.category, error.code) == ("usererror", "InvalidPropertyValue")
    assert {d.name: d.value for d in error.details}["PropertyName"].endswith("nodeAgentSKUId")


@pytest.mark.parametrize(
    "spec",
    [
        {"poolLifetimeOption": "jobschedule", "pool": {"vmSize": "standard_d2s_v3"}},  # schedules only
        {"pool": {"vmSize": "standard_d2s_v3"}},  # poolLifetimeOption is required
        {"poolLifetimeOption": "job"},  # a pool specification is needed
        {"poolLifetimeOption": "job", "autoPoolIdPrefix": "p" * 21, "pool": {"vmSize": "standard_d2s_v3"}},
    ],
)
def test_what_the_service_refuses_of_an_auto_pool_at_job_add(client, spec):
    body = {"id": unique("badauto"), "poolInfo": {"autoPoolSpecification": spec}}
    with pytest.raises(HttpResponseError) as info:
        client.create_job(body)
    assert info.value.status_code == 400


def test_a_schedules_jobs_share_its_auto_pool_which_goes_when_the_schedule_ends(client):
    schedule_id = unique("autosched")
    client.create_job_schedule(
        bm.BatchJobScheduleCreateOptions(
            id=schedule_id,
            schedule=bm.BatchJobScheduleConfiguration(recurrence_interval="PT1H"),
            job_specification=bm.BatchJobSpecification(pool_info=_auto("jobschedule", prefix="sched")),
        )
    )
    wait_for(lambda: list(client.list_jobs_from_schedule(schedule_id)), 10)
    job_id = f"{schedule_id}:job-1"
    pool_id = client.get_job(job_id).execution_info.pool_id
    assert pool_id.startswith("sched_")
    # The job ends; the pool lives as long as the schedule.
    client.begin_terminate_job(job_id, {"terminateReason": "done"}, polling_interval=0.05).result()
    assert client.get_pool(pool_id).state == "active"
    client.begin_terminate_job_schedule(schedule_id, polling_interval=0.05).result()
    wait_for(lambda: client.get_job_schedule(schedule_id).state == "completed", 10)
    wait_for(lambda: _gone(client, pool_id), 30)
