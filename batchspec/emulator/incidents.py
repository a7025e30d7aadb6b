"""What goes wrong on a real account, on demand and reproducibly: spot preemption, unusable
nodes, start tasks failing on some nodes, allocation errors, slow allocation, failed uploads.

Asked for per pool with a metadata item of the pool (the service keeps metadata as given, so
any client can set it, batchspec's specs included), or for every pool with the emulator's
`--incidents` option; the pool's item wins key by key. Its value is JSON:

    {"seed": 7,
     "preemptRate": 0.3,        each task start on a spot node preempts that node, with this chance
     "preemptions": 2,          ... or exactly the first N such starts
     "preemptAfter": 0.2,       seconds into that task
     "preemptBack": 0.5,        seconds the node stays preempted before it boots again
     "unusableNodes": 1,        the first N nodes to come up turn unusable
     "unusableAfter": 0.2,      seconds after they came up
     "startTaskFailure": 0.5,   this share of the nodes fail their start task (exit code 1)
     "startTaskFailures": 2,    ... or exactly the first N nodes to run it
     "allocationError": "AccountCoreQuotaReached",   resizing stops at maxNodes with this error
     "maxNodes": 1,
     "allocationDelay": 2.0,    seconds the pool is resizing (instead of the emulator's)
     "uploadFailure": 1.0}      this share of task attempts cannot upload their output files

Each is shown as the service shows it: nodes `preempted` (their running tasks requeued,
requeueCount counting), `unusable` with the node's `errors`, `starttaskfailed` with the start
task's failureInfo, the pool's `resizeErrors` with the codes of PoolResizeErrorCodes
(Microsoft.Azure.Batch.Common: AccountCoreQuotaReached, AllocationFailed, AllocationTimedOut,
...), and upload failures through the node agent's own upload path. Draws come from one
random generator per pool seeded with `seed` and the pool's id, so a failing test reruns alike.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, replace

from . import errors, model
from .common import json_settings

METADATA = "batchspec-emulator-incidents"

# PoolResizeErrorCodes (Microsoft.Azure.Batch.Common); AllocationFailed's message is the
# service's, as Azure's "Azure Batch pool resizing failure" troubleshooting guide shows it.
_SPOT_QUOTA = "The Batch account has reached its quota of Spot/low-priority cores."
_RESIZE_ERRORS = {
    "AccountCoreQuotaReached": "The Batch account has reached its quota of dedicated cores.",
    "AccountLowPriorityCoreQuotaReached": _SPOT_QUOTA,
    "AccountSpotCoreQuotaReached": _SPOT_QUOTA,
    "AccountVMSeriesCoreQuotaReached": "The Batch account has reached its quota of cores for the VM series.",
    "AllocationFailed": "Desired number of dedicated nodes could not be allocated",
    "AllocationTimedOut": "Desired number of nodes could not be allocated within the resize timeout.",
}
_NAMES = {
    "seed": "seed",
    "preemptRate": "preempt_rate",
    "preemptions": "preemptions",
    "preemptAfter": "preempt_after",
    "preemptBack": "preempt_back",
    "unusableNodes": "unusable_nodes",
    "unusableAfter": "unusable_after",
    "startTaskFailure": "start_task_failure",
    "startTaskFailures": "start_task_failures",
    "allocationError": "allocation_error",
    "maxNodes": "max_nodes",
    "allocationDelay": "allocation_delay",
    "uploadFailure": "upload_failure",
}


@dataclass(frozen=True)
class Incidents:
    seed: int = 0
    preempt_rate: float = 0.0
    preemptions: int = 0
    preempt_after: float = 0.2
    preempt_back: float = 0.5
    unusable_nodes: int = 0
    unusable_after: float = 0.2
    start_task_failure: float = 0.0
    start_task_failures: int = 0
    allocation_error: str | None = None
    max_nodes: int | None = None
    allocation_delay: float | None = None
    upload_failure: float = 0.0

    def resize_error(self, short: int) -> dict:
        """The pool's resizeErrors entry when it stopped `short` nodes short of its target."""
        code = self.allocation_error or "AllocationFailed"
        reason = f"{short} node(s) short of the target: the emulator was asked to stop at {self.max_nodes}"
        return {
            "code": code,
            "message": _RESIZE_ERRORS[code],
            "values": [{"name": "Reason", "value": reason}],
        }


def parse(text: str, *, where: str = METADATA) -> dict:
    """The settings a JSON text asks for (only the keys it names); BatchServiceError 400 if the
    text is not what this module takes."""

    def refuse(reason: str) -> errors.BatchServiceError:
        return errors.invalid_value(where, text, reason)

    try:
        given = json_settings(text, _NAMES, "incident")
    except ValueError as exc:
        raise refuse(str(exc)) from None
    settings = {}
    for name, value in given.items():
        attr = _NAMES[name]
        if attr == "allocation_error":
            if value not in _RESIZE_ERRORS:
                raise refuse(f"allocationError is one of {', '.join(_RESIZE_ERRORS)}")
        elif isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise refuse(f"{name} is a number, 0 or more")
        elif attr in ("preempt_rate", "start_task_failure", "upload_failure") and value > 1:
            raise refuse(f"{name} is a share, from 0 to 1")
        settings[attr] = value
    if "allocation_error" in settings and "max_nodes" not in settings:
        settings["max_nodes"] = 0
    return settings


def of(pool: dict, defaults: Incidents) -> Incidents:
    """What the pool is to go through: the emulator's defaults, then its own metadata item."""
    for item in pool.get("metadata") or []:
        if item.get("name") == METADATA:
            try:
                return replace(defaults, **parse(item.get("value") or "{}"))
            except errors.BatchServiceError:  # checked when the pool was created or changed
                return defaults
    return defaults


def check_metadata(metadata: object) -> None:
    """A pool's metadata item asking for incidents must say what this module takes."""
    for item in metadata if isinstance(metadata, list) else []:
        if isinstance(item, dict) and item.get("name") == METADATA:
            parse(str(item.get("value") or ""))


def defaults(text: str | None) -> Incidents:
    """The emulator's `--incidents` (ValueError with the reason if it is not right)."""
    if not text:
        return Incidents()
    try:
        return Incidents(**parse(text, where="--incidents"))
    except errors.BatchServiceError as exc:
        raise ValueError(dict(exc.values).get("Reason", exc.message)) from None


def spoiled(output_file: dict) -> dict:
    """An output file whose container URL carries a signature the store will refuse."""
    destination = dict(output_file.get("destination") or {})
    container = dict(destination.get("container") or {})
    url = str(container.get("containerUrl") or "")
    spoiled_url = url.replace("sig=", "sig=spoiled", 1) if "sig=" in url else f"{url}?sig=spoiled"
    container["containerUrl"] = spoiled_url
    return {**output_file, "destination": {**destination, "container": container}}


class Trouble:
    """The incidents of every pool, and what each has gone through so far (its draws, the
    preemptions and unusable nodes it has had). A pool made again under the same id starts over."""

    def __init__(self, store, defaults: Incidents):
        self.store = store
        self.defaults = defaults
        self._pools: dict[tuple[str, str], dict] = {}

    def of(self, pk: str) -> Incidents:
        return of(self.store.pools[pk], self.defaults)

    def _state(self, pk: str) -> dict:
        pool = self.store.pools[pk]
        state = self._pools.get((pk, pool["creationTime"]))
        if state is None:
            incidents = self.of(pk)
            draws = random.Random(f"{incidents.seed}:{pool['id'].lower()}")
            state = self._pools[(pk, pool["creationTime"])] = {
                "draws": draws,
                "preempted": 0,
                "unusable": 0,
                "start_failed": 0,
            }
        return state

    def _chance(self, pk: str, share: float) -> bool:
        return share > 0 and self._state(pk)["draws"].random() < share

    def allocation_delay(self, pk: str, default: float) -> float:
        delay = self.of(pk).allocation_delay
        return default if delay is None else delay

    def room(self, pk: str, nodes: int) -> int | None:
        """How many more nodes the pool may get now that it has `nodes` (None: no limit)."""
        incidents = self.of(pk)
        return None if incidents.allocation_error is None else max(0, (incidents.max_nodes or 0) - nodes)

    def fails_start_task(self, pk: str) -> bool:
        incidents, state = self.of(pk), self._state(pk)
        counted = state["start_failed"] < incidents.start_task_failures
        if counted or self._chance(pk, incidents.start_task_failure):
            state["start_failed"] += 1
            return True
        return False

    def preempts(self, pk: str) -> bool:
        """A task starts on a spot node of the pool: is that node to be preempted?"""
        incidents, state = self.of(pk), self._state(pk)
        if state["preempted"] < incidents.preemptions or self._chance(pk, incidents.preempt_rate):
            state["preempted"] += 1
            return True
        return False

    def turns_unusable(self, pk: str) -> bool:
        """A node of the pool came up: is it to turn unusable?"""
        state = self._state(pk)
        if state["unusable"] < self.of(pk).unusable_nodes:
            state["unusable"] += 1
            return True
        return False

    def spoils_upload(self, pk: str) -> bool:
        return self._chance(pk, self.of(pk).upload_failure)


class NodeIncidents:
    """What happens to the nodes, mixed into the NodeManager (its store, sched, trouble,
    `_end_runs` and `_boot`)."""

    def task_began(self, pk: str, nk: str) -> None:
        """A task attempt started on the node: a spot node may be preempted during it."""
        node = self.store.nodes[pk][nk]
        if not node.get("isDedicated", True) and self.trouble.preempts(pk):
            self.sched.spawn(self._preempt(pk, nk, self.trouble.of(pk)))

    def came_up(self, pk: str, nk: str) -> None:
        """The node finished booting: it may turn unusable."""
        if self.trouble.turns_unusable(pk):
            self.sched.spawn(self._turn_unusable(pk, nk, self.trouble.of(pk).unusable_after))

    async def _preempt(self, pk: str, nk: str, incidents: Incidents) -> None:
        """Preempted: its running tasks go back to the queue (requeueCount counts them), and the
        node boots again once the capacity is back, as a spot pool refills toward its target."""
        await asyncio.sleep(incidents.preempt_after)
        node = self.store.nodes.get(pk, {}).get(nk)
        if node is None or node["state"] not in ("idle", "running"):
            return
        model.set_state_only(node, "preempted")
        self.store.put_node(pk, node)
        await self._end_runs(pk, nk, "requeue")
        await asyncio.sleep(incidents.preempt_back)
        node = self.store.nodes.get(pk, {}).get(nk)
        if node is not None and node["state"] == "preempted":
            self._boot(pk, nk)

    async def _turn_unusable(self, pk: str, nk: str, after: float) -> None:
        await asyncio.sleep(after)
        node = self.store.nodes.get(pk, {}).get(nk)
        if node is None or node["state"] not in ("idle", "running"):
            return
        model.set_state_only(node, "unusable")
        # The code is the emulator's own: the definition names no BatchNodeError codes.
        node["errors"] = [
            {
                "code": "EmulatedNodeFailure",
                "message": "The node became unusable (an incident the emulator was asked for).",
                "errorDetails": [{"name": "Incident", "value": "unusableNodes"}],
            }
        ]
        self.store.put_node(pk, node)
        await self._end_runs(pk, nk, "requeue")
        self.sched.kick()
