"""Job schedules through the SDK: due jobs, one active job at a time, the start window,
doNotRunAfter, and the schedule's own lifecycle (disable, enable, terminate, delete)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from azure.batch import models as bm
from azure.core.exceptions import HttpResponseError

from emulator_support import unique, wait_for


def _spec(pool_id: str, **kw) -> bm.BatchJobSpecification:
    return bm.BatchJobSpecification(pool_info=bm.BatchPoolInfo(pool_id=pool_id), **kw)


def _create(client, config: bm.BatchJobScheduleConfiguration, spec: bm.BatchJobSpecification) -> str:
    schedule_id = unique("sched")
    client.create_job_schedule(
        bm.BatchJobScheduleCreateOptions(id=schedule_id, schedule=config, job_specification=spec)
    )
    return schedule_id


def test_a_schedule_without_recurrence_runs_one_job_and_completes_with_it(client, shared_pool):
    """BatchJobScheduleConfiguration.recurrenceInterval: "The default is that the schedule does
    not recur: one Job is created ... and the schedule is complete as soon as that Job finishes"."""
    schedule_id = _create(
        client, bm.BatchJobScheduleConfiguration(), _spec(shared_pool, all_tasks_complete_mode="terminatejob")
    )
    wait_for(lambda: client.get_job_schedule(schedule_id).state == "completed", 10)
    schedule = client.get_job_schedule(schedule_id)
    assert schedule.execution_info.recent_job.id == f"{schedule_id}:job-1"
    assert schedule.execution_info.end_time is not None
    [job] = client.list_jobs_from_schedule(schedule_id)
    assert (job.id, job.state) == (f"{schedule_id}:job-1", "completed")
    client.begin_delete_job_schedule(schedule_id, polling_interval=0.05).result()
    with pytest.raises(HttpResponseError) as info:
        client.job_schedule_exists(schedule_id)  # (azure-batch 15.1 raises on the 404)
    assert info.value.status_code == 404
    with pytest.raises(HttpResponseError) as info:
        client.get_job(job.id)
    assert info.value.status_code == 404  # its jobs go with it


def test_a_recurring_schedule_serves_the_occurrence_due_now_and_names_the_next(client, shared_pool):
    """Occurrences every recurrenceInterval from doNotRunUntil; one whose start window (at most
    the interval) has passed creates no job; the next run time is shown."""
    base = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(seconds=150)
    config = bm.BatchJobScheduleConfiguration(do_not_run_until=base, recurrence_interval=timedelta(minutes=1))
    schedule_id = _create(client, config, _spec(shared_pool))  # its jobs stay active: no terminatejob
    wait_for(lambda: list(client.list_jobs_from_schedule(schedule_id)), 10)
    schedule = client.get_job_schedule(schedule_id)
    assert [j.id for j in client.list_jobs_from_schedule(schedule_id)] == [f"{schedule_id}:job-1"]
    wait_for(lambda: client.get_job_schedule(schedule_id).execution_info.next_run_time is not None, 10)
    schedule = client.get_job_schedule(schedule_id)
    assert schedule.execution_info.next_run_time == base + timedelta(seconds=180)
    assert schedule.state == "active"
    client.begin_terminate_job_schedule(schedule_id, polling_interval=0.05).result()
    assert client.get_job_schedule(schedule_id).state == "completed"
    job = client.get_job(f"{schedule_id}:job-1")
    assert job.state == "completed"  # its active job was terminated, saying why
    assert job.execution_info.termination_reason == "TerminateJobSchedule"
    client.begin_delete_job_schedule(schedule_id, polling_interval=0.05).result()


def test_a_schedule_past_do_not_run_after_completes_without_a_job(client, shared_pool):
    past = datetime.now(timezone.utc) - timedelta(hours=1)
    config = bm.BatchJobScheduleConfiguration(
        do_not_run_until=past - timedelta(hours=1), do_not_run_after=past
    )
    schedule_id = _create(client, config, _spec(shared_pool))
    wait_for(lambda: client.get_job_schedule(schedule_id).state == "completed", 10)
    assert list(client.list_jobs_from_schedule(schedule_id)) == []
    client.begin_delete_job_schedule(schedule_id, polling_interval=0.05).result()


def test_a_disabled_schedule_creates_no_job_until_enabled(client, shared_pool):
    later = datetime.now(timezone.utc) + timedelta(seconds=2)
    schedule_id = _create(
        client, bm.BatchJobScheduleConfiguration(do_not_run_until=later), _spec(shared_pool)
    )
    client.disable_job_schedule(schedule_id)
    assert client.get_job_schedule(schedule_id).state == "disabled"
    wait_for(lambda: datetime.now(timezone.utc) > later + timedelta(seconds=0.5), 5)
    assert list(client.list_jobs_from_schedule(schedule_id)) == []
    client.enable_job_schedule(schedule_id)
    wait_for(lambda: list(client.list_jobs_from_schedule(schedule_id)), 10)
    client.update_job_schedule(
        schedule_id, bm.BatchJobScheduleUpdateOptions(metadata=[bm.BatchMetadataItem(name="k", value="v")])
    )
    assert client.get_job_schedule(schedule_id).metadata[0].value == "v"
    client.begin_delete_job_schedule(schedule_id, polling_interval=0.05).result()


def test_what_the_service_refuses_of_a_schedule(client, shared_pool):
    with pytest.raises(HttpResponseError) as info:  # "The minimum value is 1 minute"
        _create(
            client,
            bm.BatchJobScheduleConfiguration(recurrence_interval=timedelta(seconds=30)),
            _spec(shared_pool),
        )
    assert (info.value.status_code, info.value.error.code) == (400, "InvalidPropertyValue")
    schedule_id = _create(
        client,
        bm.BatchJobScheduleConfiguration(do_not_run_until=datetime.now(timezone.utc) + timedelta(days=1)),
        _spec(shared_pool),
    )
    with pytest.raises(HttpResponseError) as info:
        client.create_job_schedule(
            bm.BatchJobScheduleCreateOptions(
                id=schedule_id,
                schedule=bm.BatchJobScheduleConfiguration(),
                job_specification=_spec(shared_pool),
            )
        )
    assert (info.value.status_code, info.value.error.code) == (409, "JobScheduleExists")
    with pytest.raises(HttpResponseError) as info:
        client.get_job_schedule(unique("absent"))
    assert (info.value.status_code, info.value.error.code) == (404, "JobScheduleNotFound")
    client.begin_delete_job_schedule(schedule_id, polling_interval=0.05).result()
