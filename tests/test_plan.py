"""The planner's decisions on live states built by hand: `plan.diff` is a pure function."""

from __future__ import annotations

import dataclasses

import pytest

from batchspec.errors import PlanError
from batchspec.model import (
    FINGERPRINT,
    OWNER,
    STORAGE_FINGERPRINT,
    STORAGE_OWNER,
    TASK_FINGERPRINT_ENV,
    LiveBlob,
    LiveContainer,
    LiveState,
)
from batchspec.plan import Action, diff, pool_stamps, task_stamp
from batchspec.spec.build import build
from helpers import ROOT


@pytest.fixture(scope="module")
def desired():
    return build(ROOT / "specs" / "topn.yaml")


def _converged(desired) -> LiveState:
    """The live state a successful apply of `desired` leaves behind."""
    containers = {
        c.name: LiveContainer(c.name, {STORAGE_OWNER: "topn", STORAGE_FINGERPRINT: c.fingerprint()})
        for c in desired.containers
    }
    blobs: dict[str, dict[str, LiveBlob]] = {}
    for b in desired.blobs:
        blobs.setdefault(b.container, {})[b.name] = LiveBlob(b.container, b.name, b.size, b.sha256, None, "e")
    pool = desired.pool
    meta = [{"name": OWNER, "value": "topn"}] + [
        {"name": k, "value": v} for k, v in pool_stamps(pool).items()
    ]
    live_pool = {
        "id": pool.id,
        "state": "active",
        "allocationState": "steady",
        "vmSize": pool.vm_size,
        "virtualMachineConfiguration": {
            "imageReference": pool.image.to_dict(),
            "nodeAgentSKUId": "batch.node.ubuntu 24.04",
        },
        "taskSlotsPerNode": 1,
        "targetDedicatedNodes": 2,
        "targetLowPriorityNodes": 0,
        "metadata": meta,
    }
    from batchspec.apply.payloads import job_metadata

    live_job = {
        "id": desired.job.id,
        "state": "active",
        "poolInfo": {"poolId": pool.id},
        "priority": 0,
        "maxParallelTasks": -1,
        "onAllTasksComplete": "noaction",
        "metadata": job_metadata(desired.job, "topn"),
    }
    tasks = [
        {
            "id": t.id,
            "state": "completed",
            "commandLine": t.command_line,
            "environmentSettings": [{"name": TASK_FINGERPRINT_ENV, "value": task_stamp(t, pool)}],
            "executionInfo": {"result": "success", "exitCode": 0},
        }
        for t in desired.tasks
    ]
    return LiveState(containers=containers, blobs=blobs, pool=live_pool, job=live_job, tasks=tasks)


def test_a_converged_state_plans_nothing(desired):
    plan = diff(desired, _converged(desired))
    assert plan.changes == [] and plan.pending_tasks == 0


def test_an_empty_account_plans_everything_in_order(desired):
    live = LiveState(
        containers={}, blobs={}, pool=None, job=None, tasks=[], node_agent_sku_id="batch.node.ubuntu 24.04"
    )
    plan = diff(desired, live)
    # the spec's three containers and the logs container
    assert [c.kind for c in plan.changes] == ["container"] * 4 + ["blob"] * 4 + ["pool", "job"] + [
        "task"
    ] * 3 + ["download"]
    assert plan.of("pool")[0].how.node_agent_sku_id == "batch.node.ubuntu 24.04"
    assert plan.summary() == {"add": 14, "change": 0, "destroy": 0}


def test_every_task_sends_its_stdout_and_stderr_to_the_logs_container_whatever_its_result(desired):
    assert desired.logs.container == "topn-logs" and not desired.logs.keep
    for task in desired.tasks:
        logs = task.output_files[-1]
        assert (logs.pattern, logs.container, logs.path, logs.upon) == (
            "../std*.txt",
            "topn-logs",
            f"topn-job/{task.id}",
            "taskCompletion",
        )


def test_destroy_removes_the_logs_container_unless_kept(desired):
    import dataclasses

    from batchspec.plan.teardown import destroy

    live = _converged(desired)
    removed = {c.id for c in destroy(desired, live).of("container")}
    assert "topn-logs" in removed
    kept = dataclasses.replace(desired, logs=dataclasses.replace(desired.logs, keep=True))
    plan = destroy(kept, live)
    assert "topn-logs" not in {c.id for c in plan.of("container")}
    assert any("keeps the tasks' logs" in note for note in plan.notes)


def test_unowned_pool_job_or_container_is_a_clash(desired):
    live = _converged(desired)
    live.pool["metadata"] = []
    live.job["metadata"] = [{"name": OWNER, "value": "someone-else"}]
    live.containers["input"] = LiveContainer("input", {})
    with pytest.raises(PlanError) as err:
        diff(desired, live)
    text = str(err.value)
    assert "pool 'topn-pool' already exists and is not created by batchspec" in text
    assert "job 'topn-job' already exists and is owned by spec 'someone-else'" in text
    assert "container 'input' already exists and is not created by batchspec" in text


def test_task_outputs_in_a_container_are_never_deleted(desired):
    live = _converged(desired)
    live.blobs["input"]["stray_OUTPUT.txt"] = LiveBlob("input", "stray_OUTPUT.txt", 3, None, None, "e")
    live.blobs["input"]["old.txt"] = LiveBlob("input", "old.txt", 3, "ab" * 32, None, "e")
    plan = diff(desired, live)
    assert [(c.kind, c.id, c.action) for c in plan.changes] == [("blob", "input/old.txt", Action.DELETE)]


def test_a_failed_task_is_rerun_and_a_running_one_is_waited_for(desired):
    live = _converged(desired)
    live.tasks[0]["executionInfo"] = {"result": "failure", "exitCode": 2}
    live.tasks[1]["state"] = "running"
    plan = diff(desired, live)
    assert [(c.id, c.action, c.reasons) for c in plan.of("task")] == [
        ("topn-taskdata0", Action.RERUN, ("completed with failure (exit code 2)",))
    ]
    assert [c.action for c in plan.of("download")] == [Action.CREATE]  # after the rerun
    assert plan.pending_tasks == 1
    assert plan.summary() == {"add": 1, "change": 1, "destroy": 0}


def test_a_completed_job_that_must_take_new_tasks_is_replaced(desired):
    live = _converged(desired)
    live.job["state"] = "completed"
    assert diff(desired, live).changes == []  # nothing to add: it stays
    live.tasks.pop()
    plan = diff(desired, live)
    job = plan.of("job")[0]
    assert job.action == Action.REPLACE
    assert "state: completed" in job.reasons[0]
    assert {c.action for c in plan.of("task")} == {Action.CREATE} and len(plan.of("task")) == 3


def test_a_pool_being_deleted_is_created_again(desired):
    live = _converged(desired)
    live.pool["state"] = "deleting"
    change = diff(desired, live).of("pool")[0]
    assert change.action == Action.CREATE
    assert change.reasons == ("the existing pool is being deleted",)


def test_a_task_without_fingerprint_is_replaced(desired):
    live = _converged(desired)
    live.tasks[2]["environmentSettings"] = []
    change = diff(desired, live).of("task")[0]
    assert (change.id, change.action) == ("topn-taskdata2", Action.REPLACE)
    assert "no fingerprint" in change.reasons[0]


def test_a_changed_command_names_old_and_new(desired):
    live = _converged(desired)
    live.tasks[0]["environmentSettings"][0]["value"] = task_stamp(
        dataclasses.replace(desired.tasks[0], command_line="old"), desired.pool
    )
    live.tasks[0]["commandLine"] = "old"
    change = diff(desired, live).of("task")[0]
    assert change.reasons == (f"commandLine: 'old' -> {desired.tasks[0].command_line!r}",)


def test_an_image_change_replaces_the_pool_and_names_the_field(desired):
    live = _converged(desired)
    live.pool["virtualMachineConfiguration"]["imageReference"]["sku"] = "minimal"
    change = diff(desired, live).of("pool")[0]
    assert change.action == Action.REPLACE
    assert change.reasons == ("image.sku: 'minimal' -> 'server' (forces replacement)",)


def test_owned_containers_no_longer_in_the_spec_are_deleted(desired):
    live = _converged(desired)
    live.owned_containers = ["scratch"]
    assert [(c.kind, c.id, c.action) for c in diff(desired, live).changes] == [
        ("container", "scratch", Action.DELETE)
    ]


def test_job_priority_change_is_an_update(desired):
    live = _converged(desired)
    live.job["priority"] = 5
    live.job["metadata"] = [
        m if m["name"] != FINGERPRINT else {"name": FINGERPRINT, "value": "x"} for m in live.job["metadata"]
    ]
    change = diff(desired, live).of("job")[0]
    assert (change.action, change.reasons) == (Action.UPDATE, ("priority: 5 -> 0",))


def _reference_stamp(task, pool) -> str:
    """task_stamp as first written (json.dumps of every part and of their mapping): the stamps
    live tasks carry must not change when the computation is made faster."""
    import hashlib
    import json

    def enc(v):
        return json.dumps(v, sort_keys=True, separators=(",", ":"), ensure_ascii=False)

    d = task.to_dict()
    parts = {
        "commandLine": d.get("commandLine"),
        "resourceFiles": d.get("resourceFiles"),
        "outputFiles": d.get("outputFiles"),
        "environment": d.get("environment"),
        "settings": {
            k: v
            for k, v in d.items()
            if k not in ("id", "commandLine", "resourceFiles", "outputFiles", "environment")
        },
        "application": pool.start_task.fingerprint() if pool.start_task else None,
    }
    order = ("commandLine", "resourceFiles", "outputFiles", "environment", "settings", "application")
    short = ".".join(hashlib.sha256(enc(parts[p]).encode()).hexdigest()[:8] for p in order)
    return f"{hashlib.sha256(enc(parts).encode()).hexdigest()[:32]}:{short}"


@pytest.mark.parametrize("spec", ["topn.yaml", "sweep.yaml"])
def test_task_stamps_are_those_live_tasks_carry(spec):
    import dataclasses

    d = build(str(ROOT / "specs" / spec), {})
    without_start = dataclasses.replace(d.pool, start_task=None)
    for task in d.tasks:
        for pool in (d.pool, without_start):
            assert task_stamp(task, pool) == _reference_stamp(task, pool)
    assert len({task_stamp(t, d.pool) for t in d.tasks}) == len(d.tasks)


def test_a_logs_container_name_the_spec_name_cannot_make_is_a_spec_error(tmp_path):
    import shutil

    from batchspec.errors import SpecErrors

    for folder in ("data", "node", "specs"):
        shutil.copytree(ROOT / folder, tmp_path / folder)
    spec = tmp_path / "specs" / "topn.yaml"
    spec.write_text(spec.read_text().replace("name: topn", "name: a--b", 1))
    with pytest.raises(SpecErrors, match="the logs container 'a--b-logs' is not a valid name"):
        build(spec)


def test_a_job_whose_preparation_sas_expires_soon_is_replaced_only_when_tasks_will_run(desired):
    from datetime import datetime, timedelta, timezone

    live = _converged(desired)
    live.read_at = datetime(2026, 12, 1, tzinfo=timezone.utc)
    soon = (live.read_at + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    live.job["jobPreparationTask"] = {
        "commandLine": "true",
        "resourceFiles": [{"httpUrl": f"https://acct.blob/app/ref.bin?se={soon}&sp=r&sig=x"}],
    }
    quiet = diff(desired, live)
    assert quiet.of("job") == [] and quiet.of("task") == []  # nothing runs: the job stays
    live.tasks[0]["executionInfo"] = {"result": "failure", "exitCode": 1}
    plan = diff(desired, live)
    (job,) = plan.of("job")
    assert job.action == Action.REPLACE
    assert job.reasons == (
        "preparationTask: resource file SAS expire 2026-12-02 00:00 UTC "
        "(nodes that join run it; forces replacement)",
    )
    assert {c.action for c in plan.of("task")} == {Action.CREATE}


def test_every_setting_of_a_task_is_in_its_stamp(desired):
    """A stamp made from the task's parts must see each field the task sends: a change to any
    of them replaces the task."""
    import dataclasses

    from batchspec.model import TaskContainer

    task = desired.tasks[0]
    changed = {
        "container": TaskContainer("python:3.12-slim"),
        "depends_on": ("topn-taskdata1",),
        "max_wall_clock_time": "PT1H",
        "retention_time": "PT1H",
        "max_task_retry_count": 3,
        "required_slots": 1,
        "elevated": True,
        "display_name": "shown",
        "extra_json": '{"a":1}',
    }
    stamp = task_stamp(task, desired.pool)
    for name, value in changed.items():
        assert task_stamp(dataclasses.replace(task, **{name: value}), desired.pool) != stamp, name
    # Where a task comes from is not what it runs.
    assert task_stamp(dataclasses.replace(task, stage="count"), desired.pool) == stamp


def test_canonical_json_is_the_sorted_compact_encoding_fingerprints_were_made_with():
    import json

    from batchspec.model import canonical_json

    values = [
        "x",
        'ü\u2028"\\',
        0,
        -1.5,
        1e300,
        True,
        None,
        [],
        {},
        ("t", 1),
        {"b": [1, {"z": None, "é": "ß"}], "a": 2},
    ]
    for value in values:
        assert canonical_json(value) == json.dumps(
            value, sort_keys=True, separators=(",", ":"), ensure_ascii=False
        )
