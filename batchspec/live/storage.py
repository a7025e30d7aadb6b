"""Live blob storage state, read in bulk: one listing for containers, one per container for blobs."""

from __future__ import annotations

from dataclasses import dataclass, field

from azure.storage.blob import BlobServiceClient

from batchspec.ownership import STORAGE_FINGERPRINT, STORAGE_OWNER, STORAGE_SHA256


@dataclass(frozen=True)
class LiveContainer:
    name: str
    metadata: dict[str, str] = field(default_factory=dict, compare=False, hash=False)

    @property
    def owner(self) -> str | None:
        return self.metadata.get(STORAGE_OWNER)

    @property
    def fingerprint(self) -> str | None:
        return self.metadata.get(STORAGE_FINGERPRINT)


@dataclass(frozen=True)
class LiveBlob:
    container: str
    name: str
    size: int
    sha256: str | None  # set on the blobs batchspec uploaded
    content_md5: bytes | None
    etag: str


def read_containers(service: BlobServiceClient, names: set[str] | None = None) -> dict[str, LiveContainer]:
    """The account's containers (or those in `names`) with their metadata."""
    found = {}
    for c in service.list_containers(include_metadata=True):
        if names is None or c.name in names:
            found[c.name] = LiveContainer(c.name, dict(c.metadata or {}))
    return found


def read_blobs(service: BlobServiceClient, container: str, prefix: str | None = None) -> dict[str, LiveBlob]:
    """Every blob of a container (under `prefix`) with its size, md5 and batchspec sha256."""
    client = service.get_container_client(container)
    blobs = {}
    for b in client.list_blobs(name_starts_with=prefix or None, include=["metadata"]):
        settings = b.content_settings
        blobs[b.name] = LiveBlob(
            container=container,
            name=b.name,
            size=b.size,
            sha256=(b.metadata or {}).get(STORAGE_SHA256),
            content_md5=bytes(settings.content_md5) if settings and settings.content_md5 else None,
            etag=b.etag,
        )
    return blobs
