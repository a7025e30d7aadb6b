"""Execute a plan: storage, pool, job and tasks, wait, download; destroy; the lock around both."""

from batchspec.apply.executor import SETUP_TIMEOUT, Applier, Reporter
from batchspec.apply.results import Outcome, TaskRow

__all__ = ["SETUP_TIMEOUT", "Applier", "Outcome", "Reporter", "TaskRow"]
