"""diff(desired, live) -> Plan, pure; the stamps it compares; saved plan files."""

from batchspec.plan.diff import diff
from batchspec.plan.records import PLAN_FORMAT, Action, Change, Plan, PoolHow, Size
from batchspec.plan.stamps import job_stamps, pool_stamps, task_stamp
from batchspec.plan.teardown import destroy

__all__ = [
    "PLAN_FORMAT",
    "Action",
    "Change",
    "Plan",
    "PoolHow",
    "Size",
    "destroy",
    "diff",
    "job_stamps",
    "pool_stamps",
    "task_stamp",
]
