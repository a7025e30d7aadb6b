"""How a node reaches the spec's blobs: least-privilege SAS URLs, or the pool's managed identity.

A task's URLs are used within the apply that submits it, so they live the SAS issuer's lifetime.
The start task's are not: the pool keeps them and every node that joins, reboots or is reimaged
downloads them again, hours or days later. They get `START_TASK_SAS` (six days, within the
seven a user-delegation key may last), their expiry is stamped on the pool, and the plan
refreshes them when under half of it is left or before a resize or reboot. A pool identity
(`pool.identityReference`, assigned to the pool through Azure Resource Manager) needs no SAS:
the node asks for a token itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote

from batchspec.plan.stamps import START_TASK_SAS
from batchspec.services.sas import SasIssuer


@dataclass
class SasGrants:
    """SAS URLs; `expiry` None means the issuer's own lifetime, counted from each URL's minting."""

    sas: SasIssuer
    expiry: datetime | None = None

    def blob_read(self, container: str, name: str) -> dict[str, Any]:
        return {"httpUrl": self.sas.blob_read(container, name, expiry=self.expiry)}

    def container_read(self, container: str) -> dict[str, Any]:
        return {"storageContainerUrl": self.sas.container_read(container, expiry=self.expiry)}

    def container_write(self, container: str) -> dict[str, Any]:
        return {"containerUrl": self.sas.container_write(container, expiry=self.expiry)}


@dataclass
class IdentityGrants:
    """Plain URLs with the pool's user-assigned identity: no secret in any request."""

    service_url: str
    resource_id: str
    expiry: datetime | None = None  # nothing expires

    def _url(self, container: str, name: str | None = None) -> str:
        base = self.service_url.split("?")[0].rstrip("/")
        return f"{base}/{quote(container)}" + (f"/{quote(name)}" if name else "")

    def _identity(self) -> dict[str, Any]:
        return {"identityReference": {"resourceId": self.resource_id}}

    def blob_read(self, container: str, name: str) -> dict[str, Any]:
        return {"httpUrl": self._url(container, name), **self._identity()}

    def container_read(self, container: str) -> dict[str, Any]:
        return {"storageContainerUrl": self._url(container), **self._identity()}

    def container_write(self, container: str) -> dict[str, Any]:
        return {"containerUrl": self._url(container), **self._identity()}


Grants = SasGrants | IdentityGrants


def for_tasks(sas: SasIssuer, identity: str | None, service_url: str) -> Grants:
    return IdentityGrants(service_url, identity) if identity else SasGrants(sas)


def for_start_task(sas: SasIssuer, identity: str | None, service_url: str) -> Grants:
    if identity:
        return IdentityGrants(service_url, identity)
    return SasGrants(sas, datetime.now(timezone.utc).replace(microsecond=0) + START_TASK_SAS)
