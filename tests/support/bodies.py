"""Request bodies (REST JSON) the suites share."""

from __future__ import annotations

# The VM configuration of an Ubuntu 24.04 pool, the image the emulator's tests use.
UBUNTU_VM = {
    "imageReference": {"publisher": "canonical", "offer": "ubuntu-24_04-lts", "sku": "server"},
    "nodeAgentSKUId": "batch.node.ubuntu 24.04",
}


def pool(pool_id: str, nodes: int = 0, **more) -> dict:
    """A pool create body: Ubuntu 24.04, standard_d2s_v3, `nodes` dedicated nodes."""
    return {
        "id": pool_id,
        "vmSize": "standard_d2s_v3",
        "virtualMachineConfiguration": UBUNTU_VM,
        "targetDedicatedNodes": nodes,
        **more,
    }
