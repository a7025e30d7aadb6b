"""What a pool request must be, checked as the service checks it, and the defaults the service
fills into a pool and its nodes (the API definition's property descriptions say which)."""

from __future__ import annotations

import re

from . import errors, model

MAX_NODES_PER_POOL = model.MAX_NODES_PER_POOL
MAX_SLOTS_PER_NODE = 256  # the service's own limit


def check_start_task(st: object, name: str = "startTask") -> None:
    if st is None:
        return
    if not isinstance(st, dict):
        raise errors.invalid_value(name, st)
    if not st.get("commandLine"):
        raise errors.missing_property(f"{name}.commandLine")
    model.check_container_settings(st, f"{name}.")
    if not isinstance(st["commandLine"], str):
        raise errors.invalid_value(f"{name}.commandLine", st["commandLine"])
    model.check_type(st, "resourceFiles", list, f"{name}.resourceFiles")
    for i, rf in enumerate(st.get("resourceFiles") or []):
        if not isinstance(rf, dict) or not any(
            isinstance(rf.get(s), str) and rf[s] for s in ("httpUrl", "storageContainerUrl")
        ):
            raise errors.invalid_value(f"{name}.resourceFiles[{i}]", rf)
    model.check_env(st, "environmentSettings", f"{name}.environmentSettings")
    model.check_type(st, "waitForSuccess", bool, f"{name}.waitForSuccess")
    if st.get("maxTaskRetryCount") is not None:
        model.check_int(st, "maxTaskRetryCount", -1)


def check_node_counts(body: dict) -> None:
    for name in ("targetDedicatedNodes", "targetLowPriorityNodes"):
        model.check_int(body, name, 0, MAX_NODES_PER_POOL)
    total = (body.get("targetDedicatedNodes") or 0) + (body.get("targetLowPriorityNodes") or 0)
    if total > MAX_NODES_PER_POOL:
        raise errors.invalid_value(
            "targetDedicatedNodes",
            total,
            f"the emulator allows at most {MAX_NODES_PER_POOL} nodes a pool",
        )


# BatchVmImageReference.virtualMachineImageId: "/subscriptions/{subscriptionId}/resourceGroups/
# {resourceGroup}/providers/Microsoft.Compute/galleries/{galleryName}/images/{imageDefinitionName}/
# versions/{VersionId}" or ".../images/{imageDefinitionName}" (the latest version); a managed image
# (".../Microsoft.Compute/images/{name}") is the older form the service still takes.
_IMAGE_ID = re.compile(
    r"^/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\.Compute/"
    r"(images/[^/]+|galleries/[^/]+/images/[^/]+(/versions/[^/]+)?)$",
    re.IGNORECASE,
)
_GALLERY_IDS = ("sharedGalleryImageId", "communityGalleryImageId")


def check_image(image: dict) -> None:
    """An image is a marketplace one (publisher, offer and sku) or one named by an id."""
    where = "virtualMachineConfiguration.imageReference"
    image_id = image.get("virtualMachineImageId")
    if image_id is not None:
        if not isinstance(image_id, str) or not _IMAGE_ID.match(image_id):
            raise errors.invalid_value(f"{where}.virtualMachineImageId", image_id)
        return
    if any(isinstance(image.get(name), str) and image[name] for name in _GALLERY_IDS):
        return
    for name in ("publisher", "offer", "sku"):
        if not isinstance(image.get(name), str) or not image[name]:
            raise errors.missing_property(f"{where}.{name}")


# NetworkConfiguration.subnetId: "of the form /subscriptions/{subscription}/resourceGroups/{group}/
# providers/{provider}/virtualNetworks/{network}/subnets/{subnet}".
_SUBNET_ID = re.compile(
    r"^/subscriptions/[^/]+/resourceGroups/[^/]+/providers/[^/]+/virtualNetworks/[^/]+/subnets/[^/]+$",
    re.IGNORECASE,
)


def check_network(network: object) -> None:
    if network is None:
        return
    if not isinstance(network, dict):
        raise errors.invalid_value("networkConfiguration", network)
    subnet = network.get("subnetId")
    if subnet is not None and (not isinstance(subnet, str) or not _SUBNET_ID.match(subnet)):
        raise errors.invalid_value("networkConfiguration.subnetId", subnet)


def communication(target: str | None) -> dict:
    """targetNodeCommunicationMode as asked (BatchNodeCommunicationMode: default, classic,
    simplified) and the mode the nodes use: for `default` the service's choice, which here is
    simplified (the mode that needs no inbound ports)."""
    if target is None:
        return {"currentNodeCommunicationMode": "simplified"}
    if target not in ("default", "classic", "simplified"):
        raise errors.invalid_value("targetNodeCommunicationMode", target)
    current = "simplified" if target == "default" else target
    return {"targetNodeCommunicationMode": target, "currentNodeCommunicationMode": current}


def fill_defaults(pool: dict) -> None:
    """What the service fills in and returns, by the definition's descriptions:
    NetworkConfiguration.dynamicVNetAssignmentScope ("none") and enableAcceleratedNetworking
    (false), NetworkSecurityGroupRule.sourcePortRanges ("The default value is '*'"),
    DataDisk.caching ("The default value for caching is readwrite") and storageAccountType
    ("If omitted, the default is standard_lrs")."""
    network = pool.get("networkConfiguration")
    if isinstance(network, dict):
        network.setdefault("dynamicVNetAssignmentScope", "none")
        network.setdefault("enableAcceleratedNetworking", False)
        for nat in _nat_pools(pool):
            for rule in nat.get("networkSecurityGroupRules") or []:
                if isinstance(rule, dict):
                    rule.setdefault("sourcePortRanges", ["*"])
    for disk in (pool.get("virtualMachineConfiguration") or {}).get("dataDisks") or []:
        if isinstance(disk, dict):
            disk.setdefault("caching", "readwrite")
            disk.setdefault("storageAccountType", "standard_lrs")


def _nat_pools(pool: dict) -> list[dict]:
    endpoints = (pool.get("networkConfiguration") or {}).get("endpointConfiguration") or {}
    return [n for n in endpoints.get("inboundNATPools") or [] if isinstance(n, dict)]


def inbound_endpoints(pool: dict, index: int) -> dict:
    """A node's endpointConfiguration for the pool's inbound NAT pools: the index-th frontend
    port of each range (this host stands for the public address)."""
    found = [
        {
            "name": f"{nat.get('name')}.{index}",
            "protocol": nat.get("protocol"),
            "publicIPAddress": "127.0.0.1",
            "publicFQDN": "localhost",
            "frontendPort": (nat.get("frontendPortRangeStart") or 0) + index,
            "backendPort": nat.get("backendPort"),
        }
        for nat in _nat_pools(pool)
    ]
    return {"endpointConfiguration": {"inboundEndpoints": found}} if found else {}
