"""A lease on a lock blob serialises applies and destroys of one spec (as Terraform's azurerm
backend does). Leases are short and renewed in the background, so a killed holder frees the
lock by itself within a lease period; `force-unlock` breaks it at once.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from datetime import datetime, timezone

from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.storage.blob import BlobLeaseClient, BlobServiceClient

from batchspec.errors import LockError
from batchspec.ownership import STORAGE_OWNER

CONTAINER = "batchspec-locks"
_LEASE_SECONDS = 15  # the shortest lease the service grants
_RENEW_EVERY = 5.0


class Lock:
    def __init__(self, service: BlobServiceClient, name: str, *, command: str = "apply", wait: float = 0.0):
        self._service = service
        self._blob = service.get_blob_client(CONTAINER, f"{name}.lock")
        self._command = command
        self._wait = wait
        self._lease: BlobLeaseClient | None = None
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None

    def __enter__(self) -> Lock:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def acquire(self) -> None:
        deadline = time.monotonic() + self._wait
        ensured = False
        while True:
            try:
                self._lease = self._blob.acquire_lease(lease_duration=_LEASE_SECONDS)
                break
            except ResourceNotFoundError:
                # The lock blob (or its container) does not exist yet: make it, once. Trying the
                # lease first saves two requests on every apply once the blob exists.
                if ensured:
                    raise
                self._ensure_blob()
                ensured = True
                continue
            except HttpResponseError as exc:
                if (
                    getattr(exc, "error_code", None)
                    not in ("LeaseAlreadyPresent", "LeaseIdMismatchWithLeaseOperation")
                    and exc.status_code != 409
                ):
                    raise
                if time.monotonic() >= deadline:
                    raise LockError(
                        f"the spec is locked by {self._holder()}",
                        hint="wait for it, pass --lock-timeout, or run "
                        "`batchspec force-unlock` if that process is gone",
                    ) from None
                time.sleep(1.0)
        since = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        self._blob.set_blob_metadata(
            {"host": socket.gethostname(), "pid": str(os.getpid()), "since": since, "command": self._command},
            lease=self._lease,
        )
        self._renewer = threading.Thread(target=self._renew, name="batchspec-lock", daemon=True)
        self._renewer.start()

    def release(self) -> None:
        self._stop.set()
        if self._renewer:
            self._renewer.join(timeout=5)
        if self._lease:
            try:
                self._lease.release()
            except HttpResponseError:
                pass  # expired or broken meanwhile: nothing to release
            self._lease = None

    def _renew(self) -> None:
        while not self._stop.wait(_RENEW_EVERY):
            try:
                self._lease.renew()
            except HttpResponseError:
                pass  # a transient failure; the next renewal comes before the lease expires

    def _ensure_blob(self) -> None:
        container = self._service.get_container_client(CONTAINER)
        try:
            container.create_container(metadata={STORAGE_OWNER: "batchspec"})
        except ResourceExistsError:
            pass
        try:
            self._blob.upload_blob(b"", overwrite=False)
        except ResourceExistsError:
            pass
        except HttpResponseError as exc:
            if exc.status_code != 412:  # a leased blob refuses the write; it exists
                raise

    def _holder(self) -> str:
        try:
            meta = self._blob.get_blob_properties().metadata or {}
        except ResourceNotFoundError:
            return "another process"
        if not meta.get("pid"):
            return "another process"
        return (
            f"{meta.get('command', 'a command')} on host {meta.get('host')} "
            f"(pid {meta.get('pid')}) since {meta.get('since')}"
        )


def force_unlock(service: BlobServiceClient, name: str) -> bool:
    """Break the lock of spec `name`; True if it was held."""
    blob = service.get_blob_client(CONTAINER, f"{name}.lock")
    try:
        props = blob.get_blob_properties()
    except ResourceNotFoundError:
        return False
    if props.lease.state != "leased":
        return False
    BlobLeaseClient(blob).break_lease(lease_break_period=0)
    return True
