"""Autoscale pools: evaluate a pool's formula now and every autoScaleEvaluationInterval,
record the run as the pool's `autoScaleRun`, and resize the pool to the formula's targets.

Metrics come from the emulator's live state: task counts of the active jobs on the pool,
node counts and slots; see `autoscale.py` for the language and its sampling approximation.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from . import autoscale, model

if TYPE_CHECKING:
    from .scheduler import Scheduler

log = logging.getLogger("batchspec.emulator")

MIN_INTERVAL = 5 * 60  # seconds: the service's bounds for autoScaleEvaluationInterval
MAX_INTERVAL = 168 * 3600
DEFAULT_INTERVAL = "PT15M"
MAX_NODES = model.MAX_NODES_PER_POOL


def interval_seconds(value: str | None) -> float | None:
    """The evaluation interval in seconds, or None if it is not a valid one."""
    seconds = model.parse_duration(value or DEFAULT_INTERVAL)
    if seconds is None or not MIN_INTERVAL <= seconds <= MAX_INTERVAL:
        return None
    return seconds


class AutoScaler:
    """Formula runs and their timers, one per autoscale pool."""

    def __init__(self, sched: Scheduler):
        self.sched = sched
        self.store = sched.store
        self._timers: dict[str, asyncio.TimerHandle] = {}

    def metrics(self, pk: str) -> dict[str, float]:
        """The values the formula's service variables read, from the current state."""
        pool = self.store.pools[pk]
        counts = dict.fromkeys(("active", "running", "succeeded", "failed"), 0)
        for jk, job in self.store.jobs.items():
            pool_id = model.pool_of(job)
            if pool_id.lower() != pk or job["state"] not in ("active", "disabling", "disabled"):
                continue
            job_counts, _ = self.store.task_counts(jk)
            for name in counts:
                counts[name] += job_counts[name]
        nodes = list(self.store.nodes.get(pk, {}).values())
        return {
            "$ActiveTasks": counts["active"],
            "$RunningTasks": counts["running"],
            "$PendingTasks": counts["active"] + counts["running"],
            "$SucceededTasks": counts["succeeded"],
            "$FailedTasks": counts["failed"],
            "$TaskSlotsPerNode": pool.get("taskSlotsPerNode") or 1,
            "$CurrentDedicatedNodes": sum(1 for n in nodes if n.get("isDedicated", True)),
            "$CurrentLowPriorityNodes": sum(1 for n in nodes if not n.get("isDedicated", True)),
            "$UsableNodeCount": sum(1 for n in nodes if n["state"] in ("idle", "running")),
            "$SampleNodeCount": len(nodes),
            "$TargetDedicatedNodes": pool.get("targetDedicatedNodes") or 0,
            "$TargetLowPriorityNodes": pool.get("targetLowPriorityNodes") or 0,
        }

    def run(self, pk: str, formula: str) -> tuple[dict, dict | None]:
        """Evaluate `formula` for the pool: (AutoScaleRun document, outputs or None on error)."""
        doc: dict = {"timestamp": model.now_iso()}
        try:
            outputs, results = autoscale.evaluate(formula, self.metrics(pk))
        except autoscale.FormulaError as exc:
            doc["error"] = {
                "code": "AutoScalingFormulaEvaluationError",
                "message": "An error occurred when evaluating the autoscale formula.",
                "values": [{"name": "Message", "value": str(exc)}],
            }
            return doc, None
        doc["results"] = results
        return doc, outputs

    def apply(self, pk: str) -> None:
        """Run the pool's formula now and resize it to the result."""
        pool = self.store.pools.get(pk)
        if pool is None or not pool.get("enableAutoScale") or pool["state"] != "active":
            return
        doc, outputs = self.run(pk, pool.get("autoScaleFormula") or "")
        pool["autoScaleRun"] = doc
        if outputs is None:
            self.store.put_pool(pool)
            return
        changed = False
        for name in ("targetDedicatedNodes", "targetLowPriorityNodes"):
            value = outputs[name]
            if value is not None:
                value = min(value, MAX_NODES)
                changed |= value != (pool.get(name) or 0)
                pool[name] = value
        if (pool["targetDedicatedNodes"] or 0) + (pool["targetLowPriorityNodes"] or 0) > MAX_NODES:
            pool["targetLowPriorityNodes"] = max(0, MAX_NODES - pool["targetDedicatedNodes"])
        self.store.put_pool(pool)
        if changed:
            self.sched.nodes.resize(pk, outputs["nodeDeallocationOption"])

    def enable(self, pk: str) -> None:
        """Autoscale switched on (or its formula/interval changed): evaluate now, then on the
        pool's interval."""
        self.apply(pk)
        self._arm(pk)

    def disable(self, pk: str) -> None:
        """Autoscale switched off: the pool keeps its current targets."""
        timer = self._timers.pop(pk, None)
        if timer:
            timer.cancel()

    def recover(self) -> None:
        """After a restart, autoscale pools evaluate at once and resume their timers."""
        for pk, pool in self.store.pools.items():
            if pool.get("enableAutoScale") and pool["state"] == "active":
                self.enable(pk)

    def stop(self) -> None:
        """Cancel every timer (shutdown)."""
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()

    def _arm(self, pk: str) -> None:
        self.disable(pk)
        pool = self.store.pools.get(pk)
        if pool is None or not pool.get("enableAutoScale"):
            return
        seconds = interval_seconds(pool.get("autoScaleEvaluationInterval")) or MIN_INTERVAL
        self._timers[pk] = asyncio.get_running_loop().call_later(seconds, self._tick, pk)

    def _tick(self, pk: str) -> None:
        self._timers.pop(pk, None)
        try:
            self.apply(pk)
        except Exception:  # a bug here must not stop the pool's future evaluations
            log.exception("autoscale evaluation of %s failed", pk)
        self._arm(pk)
