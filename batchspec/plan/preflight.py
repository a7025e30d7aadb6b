"""What would fail after resources are created, checked before: the pool's image against the
account's supported images and Batch's end of support for it; the account's quotas (cores,
pools, active jobs); the pool's task slots against its VM size; the tasks' SAS lifetimes against
the timeouts. Pure: the facts come in the LiveState (live/state.py, live/quotas.py).

ImageInformation.batchSupportEndOfLife: "The time when the Azure Batch service will stop
accepting create Pool requests for the Image." So a pool to be created (or replaced) on an image
past it is an error; a pool that exists is warned about, as is an image whose end is near.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from batchspec import durations, timeouts
from batchspec.model import Account, DesiredState, LiveState, Pool, PoolUse, VmSize
from batchspec.plan.records import Action, Change, Check

WARN_WITHIN = timedelta(days=180)
# A quota this close to being used up is warned about: a retried node or another pool's resize
# would meet it.
NEAR_QUOTA = 0.9
# Pool.taskSlotsPerNode: "The maximum value is the smaller of 4 times the number of cores of the
# vmSize of the pool or 256."
SLOTS_PER_VCPU, MAX_SLOTS = 4, 256
_MORE_QUOTA = "or ask Azure support for a higher quota (Batch account > Quotas in the portal)"


def checks(
    desired: DesiredState,
    live: LiveState,
    pool: Change | None,
    job: Change | None,
    now: datetime | None = None,
) -> list[Check]:
    """Every finding of the preflight for a plan whose pool and job changes are `pool`, `job`."""
    return [
        *image(desired, live, pool, now),
        *containers(desired, live, pool),
        *quotas(desired, live, pool, job),
        *task_slots(desired, live, pool),
        *sas_lifetime(desired),
    ]


def image(
    desired: DesiredState, live: LiveState, pool: Change | None, now: datetime | None = None
) -> list[Check]:
    now = now or live.read_at or datetime.now(timezone.utc)
    ref = desired.pool.image.to_dict()
    if not ref.get("publisher"):
        return []  # a gallery or managed image: not in the supported-images list
    name = "/".join(str(ref.get(k)) for k in ("publisher", "offer", "sku"))
    creating = pool is not None and pool.action in (Action.CREATE, Action.REPLACE)
    if live.image_listed is False and desired.pool.node_agent_sku_id is None:
        return [
            Check(
                "error",
                f"pool.image {name} is not among the account's supported images: choose one it "
                "lists (az batch pool supported-images list), or give pool.nodeAgentSkuId",
            )
        ]
    if not live.image_end_of_life:
        return []
    ends = datetime.fromisoformat(live.image_end_of_life.replace("Z", "+00:00"))
    day = ends.strftime("%Y-%m-%d")
    if ends <= now:
        level = "error" if creating else "warning"
        what = (
            "the service creates no pool of it"
            if creating
            else "the pool keeps running, but cannot be made again"
        )
        return [
            Check(level, f"Batch support for pool.image {name} ended on {day}: {what}; choose a newer image")
        ]
    if ends - now <= WARN_WITHIN:
        days = (ends - now).days
        return [
            Check(
                "warning",
                f"Batch support for pool.image {name} ends on {day}, in {days} days: plan a newer image",
            )
        ]
    return []


# Batch's container workload guide: images that run containers carry the DockerCompatible
# capability in the supported-images list.
CONTAINER_CAPABLE = "DockerCompatible"


def containers(desired: DesiredState, live: LiveState, pool: Change | None) -> list[Check]:
    """A pool with containers on an image the service does not list as container capable:
    its nodes could not run the container tasks."""
    if desired.pool.containers is None or live.image_capabilities is None:
        return []  # no containers, or an image the service does not list (checked above)
    if any(c.lower() == CONTAINER_CAPABLE.lower() for c in live.image_capabilities):
        return []
    ref = desired.pool.image
    creating = pool is not None and pool.action in (Action.CREATE, Action.REPLACE)
    return [
        Check(
            "error" if creating else "warning",
            f"pool.containers: pool.image {ref.publisher}/{ref.offer}/{ref.sku} is not container "
            f"capable (the account's supported images do not list {CONTAINER_CAPABLE} for it): "
            "choose one that is, such as microsoft-dsvm/ubuntu-hpc (az batch pool supported-images "
            "list shows their capabilities)",
        )
    ]


def quotas(desired: DesiredState, live: LiveState, pool: Change | None, job: Change | None) -> list[Check]:
    """The account's quotas: its dedicated and spot cores (per VM family where enforced) for the
    nodes a created, replaced or resized pool asks for, its pools for a new pool, and its active
    jobs and job schedules for a new job."""
    account = live.account
    if account is None:
        unread = live.account_unread
        what = "the account's quotas, and pool.taskSlotsPerNode against pool.vmSize's vCPUs,"
        return [Check("note", f"{what} were not checked: {unread}")] if unread else []
    grows = pool is not None and (pool.action in (Action.CREATE, Action.REPLACE) or pool.how.resize)
    found = _cores(desired.pool, account) if grows else []
    others = _others(account, desired.pool.id)
    if pool is not None and pool.action == Action.CREATE and _reached(len(others), account.pool_quota):
        found.append(
            Check(
                "error",
                f"the account has reached its poolQuota of {account.pool_quota} ({len(others)} pools): "
                f"pool.id {desired.pool.id} cannot be created; delete a pool it no longer needs "
                f"(`batchspec destroy` deletes a spec's), {_MORE_QUOTA}",
            )
        )
    if job is not None and job.action == Action.CREATE and _reached(account.active_jobs, account.job_quota):
        found.append(
            Check(
                "error",
                f"the account has reached its activeJobAndJobScheduleQuota of {account.job_quota} "
                f"({account.active_jobs} jobs and job schedules not completed): job.id "
                f"{desired.job.id} cannot be created; let some complete or delete them (`batchspec "
                f"destroy` deletes a spec's), {_MORE_QUOTA}",
            )
        )
    return found


def _reached(count: int, quota: int | None) -> bool:
    return quota is not None and count >= quota


def _others(account: Account, pool_id: str) -> list[PoolUse]:
    """The account's pools but the spec's own (which is created, replaced or resized)."""
    return [p for p in account.pools if p.id.lower() != pool_id.lower()]


def _cores(spec: Pool, account: Account) -> list[Check]:
    size = account.vm_size(spec.vm_size)
    if size is None:
        return [
            Check(
                "warning",
                f"pool.vmSize {spec.vm_size} is not among the VM sizes Batch supports in the "
                f"account's region ({account.location}): the service may refuse the pool; choose "
                f"one `az batch location list-skus --location {account.location}` lists",
            )
        ]
    if spec.autoscale_formula:
        return []  # the formula sets the node counts as it runs
    others = _others(account, spec.id)
    dedicated = spec.target_dedicated_nodes or 0

    def used(pools, dedicated_nodes: bool) -> int:
        return sum(
            (p.dedicated if dedicated_nodes else p.low_priority) * _vcpus(account, p.vm_size) for p in pools
        )

    found = _against(
        "pool.targetDedicatedNodes",
        dedicated,
        size,
        "dedicatedCoreQuota",
        account.dedicated_core_quota,
        used(others, True),
    )
    found += _against(
        "pool.targetLowPriorityNodes",
        spec.target_low_priority_nodes or 0,
        size,
        "lowPriorityCoreQuota",
        account.low_priority_core_quota,
        used(others, False),
    )
    if account.family_quotas_enforced and size.family:
        family = [p for p in others if getattr(account.vm_size(p.vm_size), "family", None) == size.family]
        found += _against(
            "pool.targetDedicatedNodes",
            dedicated,
            size,
            f"dedicatedCoreQuotaPerVMFamily for {size.family}",
            account.family_core_quota(size.family),  # a family it does not list: not checked
            used(family, True),
        )
    return found


def _vcpus(account: Account, vm_size: str) -> int:
    size = account.vm_size(vm_size)
    return size.vcpus if size else 0  # a size the region does not list: not counted


def _against(
    field: str, nodes: int, size: VmSize, quota_name: str, quota: int | None, others: int
) -> list[Check]:
    """One core quota against the cores `nodes` of `size` need and the other pools use."""
    need = nodes * size.vcpus
    if not need or quota is None:
        return []
    asks = f"{field} {nodes} x pool.vmSize {size.name} ({size.vcpus} vCPUs) needs {need} cores"
    if need > quota:
        return [
            Check(
                "error",
                f"{asks}, more than the account's {quota_name} of {quota}: lower {field} to at "
                f"most {quota // size.vcpus}, choose a smaller pool.vmSize, {_MORE_QUOTA}",
            )
        ]
    if need + others > quota:
        return [
            Check(
                "warning",
                f"{asks} and the account's other pools use {others}: together more than its "
                f"{quota_name} of {quota}, so the pool gets fewer nodes until they shrink; lower "
                f"{field}, or resize or delete another pool",
            )
        ]
    if need + others > NEAR_QUOTA * quota:
        return [
            Check(
                "warning",
                f"{asks}: with the {others} the account's other pools use, {need + others} of its "
                f"{quota_name} of {quota} are taken; another pool or resize may not fit",
            )
        ]
    return []


def task_slots(desired: DesiredState, live: LiveState, pool: Change | None) -> list[Check]:
    """A pool to be created may have at most 4 task slots per vCPU of its VM size (256 at most:
    the schema says so); known only where the account's VM sizes were read."""
    creating = pool is not None and pool.action in (Action.CREATE, Action.REPLACE)
    size = live.account.vm_size(desired.pool.vm_size) if creating and live.account else None
    if size is None:
        return []
    limit = min(SLOTS_PER_VCPU * size.vcpus, MAX_SLOTS)
    slots = desired.pool.task_slots_per_node
    if slots <= limit:
        return []
    return [
        Check(
            "error",
            f"pool.taskSlotsPerNode {slots} is more than the service allows for pool.vmSize "
            f"{size.name}: at most {SLOTS_PER_VCPU} per vCPU, {limit} for its {size.vcpus}; lower "
            f"pool.taskSlotsPerNode to {limit} or choose a larger pool.vmSize",
        )
    ]


def sas_lifetime(desired: DesiredState) -> list[Check]:
    """The tasks' SAS URLs live through the setup and the whole wait (timeouts.sas_wanted), but
    no longer than a user-delegation key can sign: a longer wait would see queued tasks fail to
    download their inputs or upload their outputs. A pool identity needs no SAS."""
    if desired.pool.identity or desired.wait_timeout is None:
        return []  # no timeout: the SAS covers a day of waiting (timeouts.UNTIMED)
    wait = durations.seconds(desired.wait_timeout)
    setup = durations.seconds(desired.setup_timeout) if desired.setup_timeout else timeouts.SETUP_TIMEOUT
    if timeouts.sas_wanted(wait, setup) <= timeouts.LONGEST_SAS:
        return []
    room = timeouts.LONGEST_SAS - timeouts.sas_wanted(0, setup)
    return [
        Check(
            "warning",
            f"wait.timeout {desired.wait_timeout} is longer than the tasks' SAS URLs can last: they "
            f"live at most {_days(timeouts.LONGEST_SAS)} (a user-delegation key signs for "
            f"{timeouts.MAX_DELEGATION.days} days at most) and must also cover the setup "
            f"(wait.setupTimeout, {_days(timedelta(seconds=setup))}) and an hour to spare, so a "
            f"task still queued after {_days(room)} of waiting could not download its inputs or "
            f"upload its outputs; lower wait.timeout to at most {_days(room)}, or give the pool an "
            "identity (pool.identityReference), which needs no SAS",
        )
    ]


def _days(span: timedelta) -> str:
    minutes = int(span.total_seconds() // 60)
    days, hours, minutes = minutes // 1440, minutes // 60 % 24, minutes % 60
    parts = [
        f"{days} days" if days else "",
        f"{hours} hours" if hours else "",
        f"{minutes} minutes" if minutes else "",
    ]
    return " ".join(p for p in parts if p) or "0 minutes"
