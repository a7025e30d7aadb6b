"""What would fail after resources are created, checked before: the pool's image against the
account's supported images and Batch's end of support for it.

ImageInformation.batchSupportEndOfLife: "The time when the Azure Batch service will stop
accepting create Pool requests for the Image." So a pool to be created (or replaced) on an image
past it is an error; a pool that exists is warned about, as is an image whose end is near.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from batchspec.model import DesiredState, LiveState
from batchspec.plan.records import Action, Change, Check

WARN_WITHIN = timedelta(days=180)


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
