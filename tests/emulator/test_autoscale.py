"""Autoscale pools: formulas evaluated on create, enable and evaluate; resize rules."""

from __future__ import annotations

import pytest
from azure.batch import models as bm
from azure.core.exceptions import HttpResponseError

from emulator_support import pool_options, unique, wait_for, wait_pool_ready

PENDING = "$TargetDedicatedNodes = min(3, max(0, $PendingTasks.GetSample(1)));"


def autoscale_pool(pool_id: str, formula: str, interval: str | None = None):
    return pool_options(
        pool_id,
        nodes=None,
        enable_auto_scale=True,
        auto_scale_formula=formula,
        auto_scale_evaluation_interval=interval,
    )


def test_formula_sets_the_pool_size_at_create_and_manual_resize_is_refused(client):
    pool_id = unique("as")
    client.create_pool(autoscale_pool(pool_id, "$TargetDedicatedNodes = 2; $unused = 7 * 3;"))
    wait_pool_ready(client, pool_id, 2)
    pool = client.get_pool(pool_id)
    assert pool.enable_auto_scale is True
    assert pool.target_dedicated_nodes == 2
    assert pool.auto_scale_evaluation_interval.total_seconds() == 15 * 60
    assert pool.auto_scale_run.results == "$TargetDedicatedNodes=2;$unused=21"
    assert pool.auto_scale_run.error is None
    with pytest.raises(HttpResponseError) as info:
        client.begin_resize_pool(pool_id, bm.BatchPoolResizeOptions(target_dedicated_nodes=1))
    assert info.value.status_code == 409
    client.disable_pool_auto_scale(pool_id)
    assert client.get_pool(pool_id).enable_auto_scale is False
    client.begin_resize_pool(
        pool_id, bm.BatchPoolResizeOptions(target_dedicated_nodes=1), polling_interval=0.05
    ).result()
    wait_pool_ready(client, pool_id, 1)
    client.begin_delete_pool(pool_id, polling_interval=0.05).result()


def test_pending_tasks_drive_the_formula_when_it_is_evaluated(client):
    pool_id = unique("aspend")
    client.create_pool(autoscale_pool(pool_id, PENDING, "PT5M"))
    wait_for(lambda: client.get_pool(pool_id).allocation_state == "steady", 10)
    assert client.get_pool(pool_id).current_dedicated_nodes == 0
    job_id = unique("j")
    client.create_job(bm.BatchJobCreateOptions(id=job_id, pool_info=bm.BatchPoolInfo(pool_id=pool_id)))
    client.create_tasks(
        job_id, [bm.BatchTaskCreateOptions(id=f"t{i}", command_line="/bin/true") for i in range(5)]
    )
    run = client.evaluate_pool_auto_scale(
        pool_id, bm.BatchPoolEvaluateAutoScaleOptions(auto_scale_formula=PENDING)
    )
    assert run.results == "$TargetDedicatedNodes=3"
    assert client.get_pool(pool_id).target_dedicated_nodes == 0  # evaluate applies nothing
    # Enabling again (a new formula or interval) evaluates at once, as the service does.
    client.enable_pool_auto_scale(
        pool_id,
        bm.BatchPoolEnableAutoScaleOptions(auto_scale_formula=PENDING, auto_scale_evaluation_interval="PT5M"),
    )
    wait_pool_ready(client, pool_id, 3)
    wait_for(lambda: client.get_job_task_counts(job_id).task_counts.completed == 5, 20)
    client.begin_delete_job(job_id, polling_interval=0.05).result()
    client.begin_delete_pool(pool_id, polling_interval=0.05).result()


def test_formula_errors_are_reported(client):
    with pytest.raises(HttpResponseError) as info:
        client.create_pool(autoscale_pool(unique("asbad"), "$TargetDedicatedNodes = = 1;"))
    assert info.value.error.code == "InvalidPropertyValue"
    with pytest.raises(HttpResponseError) as info:
        client.create_pool(autoscale_pool(unique("asint"), "$TargetDedicatedNodes = 1;", "PT1M"))
    assert info.value.error.code == "InvalidPropertyValue"
    pool_id = unique("asrun")
    # Parses, but fails when run: the error is the pool's last autoScaleRun.
    client.create_pool(autoscale_pool(pool_id, "$TargetDedicatedNodes = 1 / $PendingTasks;"))
    run = client.get_pool(pool_id).auto_scale_run
    assert run.error is not None and run.results is None
    assert "division by zero" in run.error.error_values[0].value
    client.begin_delete_pool(pool_id, polling_interval=0.05).result()
