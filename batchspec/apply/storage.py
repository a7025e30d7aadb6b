"""Apply's storage steps: the spec's containers (waiting out a recent deletion), then its uploads."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError

from batchspec import waiting
from batchspec.apply import transfer
from batchspec.apply.common import short
from batchspec.errors import ApplyError
from batchspec.model import (
    STORAGE_FINGERPRINT,
    STORAGE_OWNER,
    STORAGE_UPLOADS,
    Blob,
    DesiredState,
    uploads_digest,
)
from batchspec.plan import Action, Change

if TYPE_CHECKING:
    from batchspec.apply.executor import Applier


def metadata(run: Applier, name: str) -> dict[str, str]:
    """The metadata apply gives a container of the spec: its own, the owner and fingerprint."""
    container = next(c for c in run.desired.containers if c.name == name)
    return {
        **dict(container.metadata),
        STORAGE_OWNER: run.desired.name,
        STORAGE_FINGERPRINT: container.fingerprint(),
    }


def containers(run: Applier) -> None:
    for change in run.plan.of("container"):
        if change.action == Action.DELETE:
            run.ui.step(f"deleting container {change.id}")
            try:
                run.t.blob.delete_container(change.id)
            except ResourceNotFoundError:
                pass
            continue
        meta = metadata(run, change.id)
        client = run.t.blob.get_container_client(change.id)
        if change.action == Action.CREATE:
            run.ui.step(f"creating container {change.id}")
            if create_container(run, client, meta):
                continue
        client.set_container_metadata(meta)


def create_container(run: Applier, client: Any, meta: dict[str, str]) -> bool:
    """Create a container; False if it exists and is this spec's (a retried create).

    A container deleted moments ago (by destroy) cannot be created again for 30 s or more:
    the service answers 409 ContainerBeingDeleted meanwhile, and 404 to everything else on
    it (Delete Container, Azure Storage docs). That is waited out within the setup limit.
    """
    name = client.container_name

    def created() -> str | None:
        try:
            client.create_container(metadata=meta)
            return "created"
        except ResourceExistsError as exc:
            if getattr(exc, "error_code", None) == "ContainerBeingDeleted":
                return None
            try:
                have = client.get_container_properties().metadata or {}
            except ResourceNotFoundError:
                return None  # deleted since: create it again
        if have.get(STORAGE_OWNER) != run.desired.name:
            raise ApplyError(
                f"container {name!r} appeared meanwhile and is not owned by this spec; not touching it"
            )
        return "ours"

    return (
        waiting.until(
            created,
            run.setup,
            run.poll,
            f"container {name} (being deleted) to be free to create",
            on_first_wait=lambda: run.ui.note(
                f"container {name} is still being deleted by the service; waiting to create it again"
            ),
        )
        == "created"
    )


def blobs(run: Applier) -> None:
    """Upload and remove the plan's blobs; then stamp each container the spec uploads to with
    the digest of its uploads (`model.uploads_digest`: every upload there is the spec's), which
    lets the next plans take them from it instead of listing them. The stamp comes off a
    container before its blobs change: an apply stopped halfway leaves none. A container's
    metadata is as the plan read it, or as the containers step just set it."""
    changes = run.plan.of("blob")
    meta = dict(run.plan.upload_metadata)
    for name in sorted({c.id.partition("/")[0] for c in changes}):
        if STORAGE_UPLOADS in meta.get(name, {}):
            meta[name] = stamp_uploads(run, name, meta[name], None)
    _change_blobs(run, changes)
    mine: dict[str, list[Blob]] = {}
    for blob in run.desired.blobs:
        mine.setdefault(blob.container, []).append(blob)
    for name, uploads in sorted(mine.items()):
        stamp_uploads(run, name, meta.get(name) or metadata(run, name), uploads_digest(uploads))


def stamp_uploads(run: Applier, container: str, meta: dict[str, str], digest: str | None) -> dict[str, str]:
    """Set or take off the container's uploads stamp (its metadata is written whole)."""
    if meta.get(STORAGE_UPLOADS) == digest:
        return meta
    meta = {k: v for k, v in meta.items() if k != STORAGE_UPLOADS} | (
        {STORAGE_UPLOADS: digest} if digest else {}
    )
    run.t.blob.get_container_client(container).set_container_metadata(meta)
    return meta


def uploads(desired: DesiredState, changes: Iterable[Change]) -> list[Blob]:
    """The files a plan's blob changes upload (those to create or update); none to look for in
    a converged plan, whatever the spec's size."""
    puts = {c.id for c in changes if c.action in (Action.CREATE, Action.UPDATE)}
    return [b for b in desired.blobs if b.ref in puts] if puts else []


def _change_blobs(run: Applier, changes: list[Change]) -> None:
    blobs = uploads(run.desired, changes)
    if blobs:
        total = sum(b.size for b in blobs)
        run.ui.step(f"uploading {len(blobs)} file(s), {total} bytes")
        with run.ui.progress("upload", len(blobs)) as advance:
            failures = transfer.upload(
                run.t,
                blobs,
                run.desired.name,
                parallelism=run.parallelism,
                on_done=lambda b: advance(1),
            )
        if failures:
            first = "; ".join(f"{b.ref}: {short(e)}" for b, e in failures[:3])
            raise ApplyError(f"{len(failures)} upload(s) failed: {first}")
        run.outcome.uploaded, run.outcome.uploaded_bytes = len(blobs), total
    for change in (c for c in changes if c.action == Action.DELETE):
        container, _, name = change.id.partition("/")
        try:
            run.t.blob.get_blob_client(container, name).delete_blob()
        except ResourceNotFoundError:
            pass
