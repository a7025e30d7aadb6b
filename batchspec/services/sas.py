"""Least-privilege SAS URLs for the nodes: signed with the account key, or with user-delegation
keys (Microsoft Entra ID) that always cover the SAS they sign."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from urllib.parse import quote

from azure.storage.blob import (
    BlobSasPermissions,
    BlobServiceClient,
    ContainerSasPermissions,
    UserDelegationKey,
    generate_blob_sas,
    generate_container_sas,
)

from batchspec.errors import TargetError
from batchspec.timeouts import MAX_DELEGATION


class SasIssuer:
    """Least-privilege SAS URLs: read one blob, read+list a container, or create+write only.

    Each URL expires after the issuer's lifetime, or at an explicit `expiry` (the start task's
    URLs live longer: nodes use them whenever they join or reboot).
    """

    def __init__(
        self, blob_service: BlobServiceClient, account_name: str, account_key: str | None, lifetime: timedelta
    ):
        self._service = blob_service
        self._account = account_name
        self._key = account_key
        self.lifetime = lifetime
        self._delegation: tuple[datetime, UserDelegationKey] | None = None  # (its expiry, the key)
        # Every task of a job writes its outputs with the same scope: one container SAS serves
        # the tasks submitted together (minted again once a twentieth of its lifetime has gone,
        # so that no token handed out has much less than the lifetime left).
        self._containers: dict[tuple[str, str, datetime | None], tuple[datetime, str]] = {}

    def _window(self, expiry: datetime | None) -> tuple[datetime, datetime]:
        now = datetime.now(timezone.utc)
        return now - timedelta(minutes=5), expiry or now + self.lifetime  # 5 min for clock skew

    def _signing(self, start: datetime, expiry: datetime) -> dict:
        if self._key:
            return {"account_key": self._key}
        # A user-delegation SAS is valid only while the key that signed it is: a key must cover
        # the whole window of every SAS it signs, so a later, longer SAS gets a new key.
        if self._delegation is None or self._delegation[0] < expiry:
            # A lifetime to spare: the SAS minted in the next `lifetime` reuse the key.
            key_expiry = min(max(expiry, start + self.lifetime) + self.lifetime, start + MAX_DELEGATION)
            if key_expiry < expiry:
                raise TargetError(
                    f"a SAS signed with a user-delegation key cannot outlive {MAX_DELEGATION.days} days"
                )
            self._delegation = (key_expiry, self._service.get_user_delegation_key(start, key_expiry))
        return {"user_delegation_key": self._delegation[1]}

    def _url(self, container: str, blob: str | None, token: str) -> str:
        base = self._service.url.rstrip("/")
        path = f"{base}/{quote(container)}" + (f"/{quote(blob)}" if blob else "")
        return f"{path}?{token}"

    def blob_read(self, container: str, blob: str, *, expiry: datetime | None = None) -> str:
        start, expiry = self._window(expiry)
        token = generate_blob_sas(
            self._account,
            container,
            blob,
            start=start,
            expiry=expiry,
            permission=BlobSasPermissions(read=True),
            **self._signing(start, expiry),
        )
        return self._url(container, blob, token)

    def container_read(self, container: str, *, expiry: datetime | None = None, listing: bool = True) -> str:
        return self._container(container, ContainerSasPermissions(read=True, list=listing), expiry)

    def container_write(self, container: str, *, expiry: datetime | None = None) -> str:
        return self._container(container, ContainerSasPermissions(create=True, write=True), expiry)

    def _container(self, container: str, permission: ContainerSasPermissions, expiry: datetime | None) -> str:
        key = (container, str(permission), expiry)
        now = datetime.now(timezone.utc)
        minted, url = self._containers.get(key, (None, ""))
        if minted is None or (expiry is None and now - minted > self.lifetime / 20):
            minted, url = now, self._mint_container(container, permission, expiry)
            self._containers[key] = (minted, url)
        return url

    def _mint_container(
        self, container: str, permission: ContainerSasPermissions, expiry: datetime | None
    ) -> str:
        start, expiry = self._window(expiry)
        token = generate_container_sas(
            self._account,
            container,
            start=start,
            expiry=expiry,
            permission=permission,
            **self._signing(start, expiry),
        )
        return self._url(container, None, token)
