"""The plan's preflight (plan/preflight.py) on hand-built live states: the pool's image, the
account's quotas, the pool's task slots, the tasks' SAS lifetimes."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timezone

import pytest

from batchspec.live.quotas import wanted
from batchspec.model import Account, LiveState, PoolUse, VmSize
from batchspec.plan.preflight import checks, image, sas_lifetime
from batchspec.plan.records import Action, Change, PoolHow
from batchspec.spec.build import build
from helpers import ROOT

NOW = datetime(2026, 12, 5, tzinfo=timezone.utc)
CREATE = Change("pool", "topn-pool", Action.CREATE)


@pytest.fixture(scope="module")
def desired():
    return build(ROOT / "specs" / "topn.yaml")


def _live(**image) -> LiveState:
    return LiveState(containers={}, blobs={}, pool=None, job=None, tasks=[], **image)


@pytest.mark.parametrize(
    ("end_of_life", "pool", "level", "says"),
    [
        ("2025-04-23T00:00:00Z", CREATE, "error", "ended on 2025-04-23: the service creates no pool of it"),
        ("2025-04-23T00:00:00Z", None, "warning", "the pool keeps running, but cannot be made again"),
        ("2027-01-12T00:00:00Z", CREATE, "warning", "ends on 2027-01-12, in 38 days"),
    ],
)
def test_batchs_end_of_support_for_the_image_is_told_before_anything_is_made(
    desired, end_of_life, pool, level, says
):
    (check,) = image(desired, _live(image_listed=True, image_end_of_life=end_of_life), pool, NOW)
    assert check.level == level and says in check.message


def test_an_image_far_from_its_end_or_without_one_passes(desired):
    assert (
        image(desired, _live(image_listed=True, image_end_of_life="2028-01-01T00:00:00Z"), CREATE, NOW) == []
    )
    assert image(desired, _live(image_listed=True), CREATE, NOW) == []


def test_an_image_the_account_does_not_list_is_an_error_unless_the_agent_is_given(desired):
    (check,) = image(desired, _live(image_listed=False), CREATE, NOW)
    assert check.level == "error" and "not among the account's supported images" in check.message
    given = dataclasses.replace(
        desired, pool=dataclasses.replace(desired.pool, node_agent_sku_id="batch.node.x")
    )
    assert image(given, _live(image_listed=False), CREATE, NOW) == []


# -- the account's quotas, the pool's task slots, the tasks' SAS lifetimes --------------------
# topn.yaml: pool topn-pool, 2 dedicated nodes of standard_d2s_v3 (2 vCPUs), one slot each.

D2S = VmSize("Standard_D2s_v3", 2, "standardDSv3Family")
D4S = VmSize("Standard_D4s_v3", 4, "standardDSv3Family")
F4S = VmSize("Standard_F4s_v2", 4, "standardFSv2Family")
JOB = Change("job", "topn-job", Action.CREATE)


def _account(**given) -> Account:
    quotas = {
        "dedicated_core_quota": 100,
        "low_priority_core_quota": 100,
        "pool_quota": 100,
        "job_quota": 100,
        "location": "westeurope",
        "vm_sizes": (D2S, D4S, F4S),
    }
    return Account(**{**quotas, **given})


def _checks(desired, account: Account | None, pool=CREATE, job=JOB, unread=None):
    live = _live(account=account, account_unread=unread)
    return checks(desired, live, pool, job, NOW)


def _pool(desired, **changes):
    return dataclasses.replace(desired, pool=dataclasses.replace(desired.pool, **changes))


@pytest.mark.parametrize(
    ("quota", "level", "says"),
    [
        (
            3,
            "error",
            "pool.targetDedicatedNodes 2 x pool.vmSize Standard_D2s_v3 (2 vCPUs) needs 4 cores, "
            "more than the account's dedicatedCoreQuota of 3: lower pool.targetDedicatedNodes to at most 1",
        ),
        (4, "warning", "4 of its dedicatedCoreQuota of 4 are taken"),
    ],
)
def test_a_pool_over_or_near_the_dedicated_core_quota_is_told_with_the_field_to_change(
    desired, quota, level, says
):
    (check,) = _checks(desired, _account(dedicated_core_quota=quota))
    assert check.level == level and says in check.message


def test_a_pool_well_within_its_quotas_passes(desired):
    assert _checks(desired, _account(dedicated_core_quota=5)) == []
    assert _checks(desired, _account()) == []


def test_the_other_pools_cores_count_towards_the_quota(desired):
    busy = (PoolUse("other", "standard_d4s_v3", dedicated=1, low_priority=0),)
    (check,) = _checks(desired, _account(dedicated_core_quota=7, pools=busy))
    assert check.level == "warning"
    assert "the account's other pools use 4: together more than its dedicatedCoreQuota of 7" in check.message
    # The spec's own pool is not counted twice: it is the one resized or replaced.
    own = (PoolUse("TOPN-pool", "standard_d2s_v3", dedicated=2, low_priority=0),)
    assert _checks(desired, _account(dedicated_core_quota=5, pools=own)) == []


def test_spot_nodes_count_against_the_low_priority_core_quota(desired):
    spot = _pool(desired, target_dedicated_nodes=0, target_low_priority_nodes=3)
    (check,) = _checks(spot, _account(low_priority_core_quota=4))
    assert check.level == "error"
    assert "pool.targetLowPriorityNodes 3 x" in check.message and "lowPriorityCoreQuota of 4" in check.message


def test_the_quota_of_the_vm_family_counts_where_the_account_enforces_it(desired):
    families = (("standardDSv3Family", 2), ("standardFSv2Family", 100))
    (check,) = _checks(desired, _account(family_core_quotas=families, family_quotas_enforced=True))
    assert check.level == "error" and "dedicatedCoreQuotaPerVMFamily for standardDSv3Family" in check.message
    assert _checks(desired, _account(family_core_quotas=families)) == []  # not enforced
    # Only the pools of the same family use it.
    other_family = (PoolUse("fsv2", "Standard_F4s_v2", dedicated=20, low_priority=0),)
    roomy = (("standardDSv3Family", 8),)
    assert (
        _checks(desired, _account(family_core_quotas=roomy, family_quotas_enforced=True, pools=other_family))
        == []
    )


def test_cores_are_checked_only_when_the_pool_is_made_or_resized(desired):
    small = _account(dedicated_core_quota=1)
    assert _checks(desired, small, pool=None, job=None) == []
    unchanged_size = Change("pool", "topn-pool", Action.UPDATE, details=PoolHow(properties=True))
    assert _checks(desired, small, pool=unchanged_size, job=None) == []
    resized = Change("pool", "topn-pool", Action.UPDATE, details=PoolHow(resize=True))
    assert [c.level for c in _checks(desired, small, pool=resized, job=None)] == ["error"]
    autoscaled = _pool(desired, target_dedicated_nodes=None, autoscale_formula="$TargetDedicatedNodes = 9;")
    assert _checks(autoscaled, small) == []  # the formula sets the counts


def test_an_account_in_user_subscription_mode_has_no_core_quotas_to_check(desired):
    assert _checks(desired, _account(dedicated_core_quota=None, low_priority_core_quota=None)) == []


def test_a_vm_size_the_region_does_not_list_is_warned_about(desired):
    (check,) = _checks(_pool(desired, vm_size="standard_d2s_v9"), _account())
    assert (
        check.level == "warning" and "pool.vmSize standard_d2s_v9 is not among the VM sizes" in check.message
    )


def test_a_new_pool_over_the_pool_quota_is_an_error(desired):
    two = tuple(PoolUse(f"p{i}", "standard_d2s_v3", 0, 0) for i in range(2))
    (check,) = _checks(desired, _account(pool_quota=2, pools=two))
    assert check.level == "error"
    assert (
        "the account has reached its poolQuota of 2 (2 pools): pool.id topn-pool cannot be created"
        in check.message
    )
    assert _checks(desired, _account(pool_quota=3, pools=two)) == []
    replaced = Change("pool", "topn-pool", Action.REPLACE)  # deleted first: no pool more
    assert _checks(desired, _account(pool_quota=2, pools=two), pool=replaced) == []


def test_a_new_job_over_the_active_job_quota_is_an_error(desired):
    (check,) = _checks(desired, _account(job_quota=5, active_jobs=5))
    assert check.level == "error"
    assert (
        "its activeJobAndJobScheduleQuota of 5 (5 jobs and job schedules not completed): job.id topn-job"
        in check.message
    )
    assert _checks(desired, _account(job_quota=6, active_jobs=5)) == []
    assert _checks(desired, _account(job_quota=5, active_jobs=5), job=None) == []  # the job exists


def test_quotas_not_read_are_a_note_saying_how_to_have_them_checked(desired):
    (check,) = _checks(desired, None, unread="set AZURE_SUBSCRIPTION_ID and AZURE_BATCH_RESOURCE_GROUP")
    assert check.level == "note" and check.message.endswith(
        "set AZURE_SUBSCRIPTION_ID and AZURE_BATCH_RESOURCE_GROUP"
    )
    assert _checks(desired, None) == []  # not wanted: a converged plan reads no quota


@pytest.mark.parametrize(
    ("slots", "vm_size", "ok"),
    [(8, "standard_d2s_v3", True), (9, "standard_d2s_v3", False), (16, "standard_d4s_v3", True)],
)
def test_task_slots_over_four_per_vcpu_are_an_error(desired, slots, vm_size, ok):
    found = _checks(_pool(desired, task_slots_per_node=slots, vm_size=vm_size), _account())
    if ok:
        assert found == []
    else:
        (check,) = found
        assert check.level == "error" and check.message.startswith(
            "pool.taskSlotsPerNode 9 is more than the service allows for pool.vmSize Standard_D2s_v3: "
            "at most 4 per vCPU, 8 for its 2"
        )


def test_task_slots_are_not_checked_without_the_vcpus_or_on_a_pool_that_exists(desired):
    many = _pool(desired, task_slots_per_node=64)
    assert _checks(many, None) == []
    assert _checks(many, _account(), pool=None) == []


@pytest.mark.parametrize(
    ("wait", "setup", "most"),
    [
        ("PT20M", None, None),
        ("P6DT21H30M", None, None),  # 30 minutes of setup (the default) + the wait + an hour: 6 days 23 hours
        ("P6DT21H31M", None, "6 days 21 hours 30 minutes"),
        ("P7D", None, "6 days 21 hours 30 minutes"),
        ("P6DT21H50M", "PT10M", None),
        ("P6DT21H50M", "PT1H", "6 days 21 hours"),
    ],
)
def test_a_wait_longer_than_a_sas_can_last_is_warned_about_naming_wait_timeout(desired, wait, setup, most):
    found = sas_lifetime(dataclasses.replace(desired, wait_timeout=wait, setup_timeout=setup))
    if most is None:
        assert found == []
    else:
        (check,) = found
        assert check.level == "warning" and check.message.startswith(f"wait.timeout {wait} is longer")
        assert f"lower wait.timeout to at most {most}," in check.message


def test_a_pool_identity_needs_no_sas_and_no_warning(desired):
    spec = dataclasses.replace(_pool(desired, identity="/subscriptions/s/id"), wait_timeout="P30D")
    assert sas_lifetime(spec) == []


def test_the_account_is_read_only_when_the_plan_may_add_to_what_it_uses(desired):
    pool = {"id": "topn-pool", "vmSize": "STANDARD_D2S_V3", "taskSlotsPerNode": 1, "targetDedicatedNodes": 2}
    job = {"id": "topn-job", "state": "active"}
    assert not wanted(desired, pool, job)  # converged: a plan that changes nothing reads no quota
    assert wanted(desired, None, job) and wanted(desired, pool, None)
    assert wanted(desired, {**pool, "state": "deleting"}, job)
    assert wanted(desired, {**pool, "targetDedicatedNodes": 1}, job)  # a resize
    assert wanted(desired, {**pool, "vmSize": "standard_d4s_v3"}, job)  # a replacement
    assert wanted(desired, {**pool, "taskSlotsPerNode": 2}, job)
    autoscaled = _pool(desired, target_dedicated_nodes=None, autoscale_formula="$TargetDedicatedNodes = 1;")
    assert not wanted(autoscaled, {**pool, "targetDedicatedNodes": 1}, job)
