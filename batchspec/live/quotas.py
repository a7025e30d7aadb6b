"""What the Batch account allows and already uses, for the plan's preflight (plan/preflight.py).

The quotas, and the vCPUs and quota family of each VM size, come from the management plane
through the target's azure-mgmt-batch client: Azure Resource Manager, or the local emulator's
stand-in for it, read by the same two calls (services/targets.py). What the account uses comes
from the Batch service: its pools (one listing of a few fields each) and its jobs and job
schedules that are not completed.

Read only when the plan may add to what the account uses (`wanted`): a converged plan makes
none of these requests (the tasks_10k benchmark's converged plan makes 16 in all).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

from azure.batch import BatchClient
from azure.core.exceptions import AzureError, ClientAuthenticationError

from batchspec.model import Account, DesiredState, PoolUse, VmSize
from batchspec.services.targets import Management, Target

_POOL_FIELDS = [
    "id",
    "vmSize",
    "currentDedicatedNodes",
    "targetDedicatedNodes",
    "currentLowPriorityNodes",
    "targetLowPriorityNodes",
]
# activeJobAndJobScheduleQuota counts what is not completed (a disabled job still counts).
_NOT_COMPLETED = "state ne 'completed'"


def wanted(desired: DesiredState, pool: dict[str, Any] | None, job: dict[str, Any] | None) -> bool:
    """Whether the plan may add a pool, nodes or a job: the pool or the job is not there yet (or
    the pool is being deleted), or the pool's VM size, task slots or node counts are not the
    spec's. Erring towards reading: the preflight decides what it checks."""
    if pool is None or job is None or pool.get("state") == "deleting":
        return True
    want = desired.pool
    if str(pool.get("vmSize", "")).lower() != want.vm_size.lower():
        return True
    if (pool.get("taskSlotsPerNode") or 1) != want.task_slots_per_node:
        return True
    if want.autoscale_formula:
        return False  # its formula sets the node counts: none to check
    have = (pool.get("targetDedicatedNodes") or 0, pool.get("targetLowPriorityNodes") or 0)
    return have != (want.target_dedicated_nodes or 0, want.target_low_priority_nodes or 0)


def read(target: Target, desired: DesiredState) -> tuple[Account | None, str | None]:
    """The account's quotas and usage; or None, and why they were not read and what to do."""
    if target.management is None:
        return None, target.no_management
    with ThreadPoolExecutor(max_workers=3) as pool:
        pools_f = pool.submit(_pools, target.batch)
        jobs_f = pool.submit(_count, target.batch.list_jobs, desired.job.id)
        schedules_f = pool.submit(_count, target.batch.list_job_schedules, None)
        try:
            limits = _limits(target.management)
        except AzureError as exc:
            return None, _unread(exc)
        used = jobs_f.result() + schedules_f.result()
        return replace(limits, pools=pools_f.result(), active_jobs=used), None


def _limits(management: Management) -> Account:
    """The account's quotas and its region's VM sizes (what it uses is read apart)."""
    client = management.client
    account = client.batch_account.get(management.resource_group, management.account_name)
    skus = client.location.list_supported_virtual_machine_skus(account.location)
    families = account.dedicated_core_quota_per_vm_family or []
    return Account(
        dedicated_core_quota=account.dedicated_core_quota,
        low_priority_core_quota=account.low_priority_core_quota,
        family_core_quotas=tuple((f.name, f.core_quota) for f in families if f.core_quota is not None),
        family_quotas_enforced=bool(account.dedicated_core_quota_per_vm_family_enforced),
        pool_quota=account.pool_quota,
        job_quota=account.active_job_and_job_schedule_quota,
        location=account.location,
        vm_sizes=tuple(size for size in map(_vm_size, skus) if size is not None),
    )


def _vm_size(sku: Any) -> VmSize | None:
    vcpus = next((c.value for c in sku.capabilities or [] if c.name == "vCPUs"), None)
    try:
        return VmSize(sku.name, int(vcpus), sku.family_name)
    except (TypeError, ValueError):
        return None  # a size without a vCPU count: nothing to check it by


def _pools(client: BatchClient) -> tuple[PoolUse, ...]:
    return tuple(
        PoolUse(
            p.id,
            p.vm_size or "",
            max(p.current_dedicated_nodes or 0, p.target_dedicated_nodes or 0),
            max(p.current_low_priority_nodes or 0, p.target_low_priority_nodes or 0),
        )
        for p in client.list_pools(select=_POOL_FIELDS)
    )


def _count(listing: Any, leave_out: str | None) -> int:
    """Jobs (or job schedules) not completed, but the spec's own job: it is replaced, not added."""
    ids = (item.id for item in listing(filter=_NOT_COMPLETED, select=["id"]))
    return sum(1 for i in ids if leave_out is None or i.lower() != leave_out.lower())


def _unread(exc: AzureError) -> str:
    status = getattr(exc, "status_code", None)
    what = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    if status in (401, 403) or isinstance(exc, ClientAuthenticationError):
        hint = "the signed-in identity needs the role Reader on the Batch account"
    elif status == 404:
        hint = "check AZURE_SUBSCRIPTION_ID, AZURE_BATCH_RESOURCE_GROUP and AZURE_BATCH_ACCOUNT_NAME"
    else:
        hint = "plan again later"
    return f"reading them from Azure Resource Manager failed ({what}): {hint}"
