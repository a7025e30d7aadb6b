"""The plan's preflight against the account's quotas, end to end: `batchspec local up --quotas`
gives the local account little room, and `plan` and `apply` meet it before anything is made."""

from __future__ import annotations

import json
import uuid

import pytest
from azure.batch import BatchClient
from azure.core.credentials import AzureNamedKeyCredential
from azure.core.exceptions import ResourceNotFoundError
from azure.storage.blob import BlobServiceClient

from support.workspace import Workspace


def _workspace(root, small_account, **params) -> Workspace:
    env, status = small_account
    ws = Workspace.tutorial(root, "q" + uuid.uuid4().hex[:10], env, retries=0, **params)
    ws.secrets = (status["batch"]["account_key"], status["storage"]["account_key"])
    return ws


def _said(result) -> str:
    return " ".join((result.stdout + result.stderr).split())  # rich wraps long lines


def test_a_pool_over_the_core_quota_and_its_task_slots_stop_plan_and_apply_before_anything_is_made(
    tmp_path, small_account
):
    ws = _workspace(tmp_path, small_account)
    ws.spec.write_text(ws.spec.read_text().replace("taskSlotsPerNode: 2", "taskSlotsPerNode: 9"))
    plan = ws.run("plan", "spec.yaml")
    assert plan.returncode == 0, plan.stdout + plan.stderr
    said = _said(plan)
    assert (
        "error: pool.targetDedicatedNodes 2 x pool.vmSize Standard_D2s_v3 (2 vCPUs) needs 4 cores, more "
        "than the account's dedicatedCoreQuota of 2: lower pool.targetDedicatedNodes to at most 1"
    ) in said
    assert "error: pool.taskSlotsPerNode 9 is more than the service allows" in said
    checks = json.loads(ws.run("plan", "spec.yaml", "--json").stdout)["checks"]
    assert [c["level"] for c in checks] == ["error", "error"]

    applied = ws.apply()
    assert applied.returncode == 2, applied.stdout + applied.stderr
    assert "the plan's preflight found 2 error(s): nothing was created" in _said(applied)
    status = small_account[1]
    batch = status["batch"]
    client = BatchClient(
        batch["endpoint"], AzureNamedKeyCredential(batch["account_name"], batch["account_key"])
    )
    for read, name in ((client.get_pool, f"{ws.name}-pool"), (client.get_job, f"{ws.name}-job")):
        with pytest.raises(ResourceNotFoundError):
            read(name)
    blobs = BlobServiceClient.from_connection_string(status["storage"]["connection_string"])
    assert not [c.name for c in blobs.list_containers() if c.name.startswith(ws.name)]


def test_within_the_quotas_apply_runs_and_the_next_spec_meets_the_job_quota(tmp_path, small_account):
    first = _workspace(tmp_path / "first", small_account, nodes=1)
    plan = first.run("plan", "spec.yaml")
    assert (
        "warning: pool.targetDedicatedNodes 1 x pool.vmSize Standard_D2s_v3 (2 vCPUs) needs 2 cores"
        in _said(plan)
    )
    applied = first.apply()
    assert applied.returncode == 0, applied.stdout + applied.stderr
    first.check_outputs()
    assert first.run("plan", "spec.yaml", "--json").stdout.count('"level"') == 0  # converged: nothing read

    second = _workspace(tmp_path / "second", small_account, nodes=1)
    said = _said(second.run("plan", "spec.yaml"))
    assert (
        "error: the account has reached its activeJobAndJobScheduleQuota of 1 (1 jobs and job "
        f"schedules not completed): job.id {second.name}-job cannot be created"
    ) in said
    assert "the account's other pools use 2: together more than its dedicatedCoreQuota of 2" in said
    refused = second.apply()
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert first.run("destroy", "spec.yaml", "--auto-approve").returncode == 0
