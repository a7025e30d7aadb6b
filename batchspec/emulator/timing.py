"""How long the emulated service takes over what takes minutes on Azure.

The default is fast: a pool is `resizing` for a moment and its nodes come up at once, so tests
and demos run in seconds. `--realistic` (and `batchspec local up --realistic`) makes each step
take about as long as it does for a small pool of Linux nodes, passing through the states the
service shows meanwhile (`resizing`, `creating`, `starting`, `waitingforstarttask`,
`rebooting`, `stopping`, `deleting`, `leavingpool`), so waits are exercised against what a real
account shows; `--time-scale` shrinks or stretches those times (0.01: a hundred times faster).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Timing:
    allocation: float = 0.2  # seconds a pool is `resizing` before its nodes exist
    node_create: float = 0.0  # a new node is `creating` (the VM is provisioned)
    node_start: float = 0.0  # then `starting` (the node agent comes up)
    reboot: float = 0.0  # a node is `rebooting`/`reimaging` before it starts again
    release: float = 0.0  # a node is `leavingpool` before it is gone
    job_delete: float = 0.2  # a job is `deleting` after its tasks have ended

    @classmethod
    def realistic(cls, scale: float = 1.0) -> Timing:
        """About what a small pool of Linux nodes takes; each time multiplied by `scale`."""
        return cls(
            allocation=30.0 * scale,
            node_create=120.0 * scale,
            node_start=45.0 * scale,
            reboot=90.0 * scale,
            release=30.0 * scale,
            job_delete=20.0 * scale,
        )
