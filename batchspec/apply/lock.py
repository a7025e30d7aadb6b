"""A lease on a lock blob serialises applies and destroys of one spec (as Terraform's azurerm
backend does). Leases are short and renewed in the background, so a killed holder frees the
lock by itself within a lease period; `force-unlock` breaks it at once.

A lease that is not renewed in time lapses, and another apply may take the lock. So each
renewal has its own short timeout (no request can stall the renewer past the lease), the time of
the last renewal the service confirmed is kept, and `check()`, called before every write, stops
the holder once the lease may have lapsed or was taken: two applies never write at once.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from datetime import datetime, timezone

from azure.core.exceptions import AzureError, HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.storage.blob import BlobLeaseClient, BlobServiceClient

from batchspec import waiting
from batchspec.errors import LockError
from batchspec.model import STORAGE_OWNER

CONTAINER = "batchspec-locks"
_LEASE_SECONDS = 15  # the shortest lease the service grants
_RENEW_EVERY = 5.0
_RETRY_RENEWAL = 1.0  # after a failed renewal
_RENEW_TIMEOUT = 3.0  # connect and read timeout of one renewal, which is never retried in-request
_NAMED_WITHIN = 2.0  # seconds a lease's new holder has to write its name on the lock blob
# The lease runs from when the service took the renewal, which is after it was sent: a lease last
# renewed by a request sent at t is held until at least t + 15 s. `check` leaves a margin for a
# write that starts just before that.
_HELD_FOR = _LEASE_SECONDS - 3.0
# The service's answers to a renewal when the lease is no longer ours: broken, expired and taken
# by another, or the blob gone (a 409 or 404 carries one of them).
_LOST = (
    "LeaseIdMismatchWithLeaseOperation",
    "LeaseIsBrokenAndCannotBeRenewed",
    "LeaseLost",
    "LeaseNotPresentWithLeaseOperation",
    "BlobNotFound",
)


class Lock:
    def __init__(self, service: BlobServiceClient, name: str, *, command: str = "apply", wait: float = 0.0):
        self._service = service
        self._blob = service.get_blob_client(CONTAINER, f"{name}.lock")
        self._command = command
        self._wait = wait
        self._lease: BlobLeaseClient | None = None
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None
        self._renewed_at = 0.0  # monotonic time a confirmed renewal (or the acquire) was sent
        self._lost: str | None = None

    def __enter__(self) -> Lock:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def acquire(self) -> None:
        if waiting.poll(self._take, waiting.Deadline(self._wait, "--lock-timeout"), 1.0) is None:
            raise LockError(
                f"the spec is locked by {self._holder()}",
                hint="wait for it, pass --lock-timeout, or run `batchspec force-unlock` if that "
                "process is gone",
            )
        since = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        self._blob.set_blob_metadata(
            {"host": socket.gethostname(), "pid": str(os.getpid()), "since": since, "command": self._command},
            lease=self._lease,
        )
        self._renewer = threading.Thread(target=self._renew, name="batchspec-lock", daemon=True)
        self._renewer.start()

    def _take(self) -> bool:
        """True once the lease is ours, False while another holds it."""
        try:
            sent = time.monotonic()
            self._lease = self._blob.acquire_lease(lease_duration=_LEASE_SECONDS)
        except ResourceNotFoundError:
            # The lock blob (or its container) does not exist yet: make it, then lease it. Trying
            # the lease first saves two requests on every apply once the blob exists.
            self._ensure_blob()
            sent = time.monotonic()
            try:
                self._lease = self._blob.acquire_lease(lease_duration=_LEASE_SECONDS)
            except HttpResponseError as exc:
                return self._taken_by_another(exc)
        except HttpResponseError as exc:
            return self._taken_by_another(exc)
        self._renewed_at = sent
        return True

    @staticmethod
    def _taken_by_another(exc: HttpResponseError) -> bool:
        """False when `exc` says another holds the lease (worth waiting for); else raise it."""
        code = getattr(exc, "error_code", None)
        if code in ("LeaseAlreadyPresent", "LeaseIdMismatchWithLeaseOperation") or exc.status_code == 409:
            return False
        raise exc

    def release(self) -> None:
        self._stop.set()
        if self._renewer:
            self._renewer.join(timeout=5)
        if self._lease:
            try:
                # The name off first: the next holder writes its own just after its lease, and
                # one refused meanwhile would name this process otherwise.
                self._blob.set_blob_metadata({}, lease=self._lease)
                self._lease.release()
            except HttpResponseError:
                pass  # expired or broken meanwhile: nothing to release
            self._lease = None

    def check(self) -> None:
        """Raise LockError unless the lease is surely still held: call it before each write."""
        if self._lost:
            raise LockError(
                f"the lock of this spec was lost ({self._lost}): another apply or destroy may hold "
                "it now, so this one stops before changing anything more",
                hint="run the command again once the other one is done",
            )
        since = time.monotonic() - self._renewed_at
        if since > _HELD_FOR:
            raise LockError(
                f"the lock's lease was last renewed {since:.0f} s ago and lasts {_LEASE_SECONDS} s: "
                "it may have lapsed and another apply or destroy may hold it now, so this one stops "
                "before changing anything more",
                hint="the storage service did not answer the renewals; run the command again",
            )

    def _renew(self) -> None:
        wait = _RENEW_EVERY
        while not self._stop.wait(wait):
            sent = time.monotonic()
            try:
                self._lease.renew(
                    connection_timeout=_RENEW_TIMEOUT, read_timeout=_RENEW_TIMEOUT, retry_total=0
                )
            except HttpResponseError as exc:
                if getattr(exc, "error_code", None) in _LOST or exc.status_code in (404, 409):
                    self._lost = f"{exc.status_code} {getattr(exc, 'error_code', None) or ''}".strip()
                    return
                wait = _RETRY_RENEWAL  # transient: try again soon, before the lease runs out
                continue
            except AzureError:
                wait = _RETRY_RENEWAL  # no answer in time (a timeout, a dropped connection)
                continue
            self._renewed_at = sent
            wait = _RENEW_EVERY

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
        """Who holds the lock, as the lock blob's metadata names it. The holder names itself
        just after it takes the lease, so a lease taken a moment ago may have no name yet: it is
        read again for a little while before the holder is "another process"."""

        def named() -> str | None:
            try:
                meta = self._blob.get_blob_properties().metadata or {}
            except ResourceNotFoundError:
                return None
            if not meta.get("pid"):
                return None
            return (
                f"{meta.get('command', 'a command')} on host {meta.get('host')} "
                f"(pid {meta.get('pid')}) since {meta.get('since')}"
            )

        return waiting.poll(named, waiting.Deadline(_NAMED_WITHIN, "the lock holder's name"), 0.5) or (
            "another process"
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
