"""Execute a plan: storage, pool, job and tasks, wait, download; destroy; the lock around both."""

# First: services/__init__.py imports azure-storage-blob without aiohttp before any module here
# imports it.
from batchspec import services  # noqa: F401
from batchspec.apply.executor import SETUP_TIMEOUT, Applier, Reporter
from batchspec.apply.results import Outcome, TaskRow

__all__ = ["SETUP_TIMEOUT", "Applier", "Outcome", "Reporter", "TaskRow"]
