"""Uploads and downloads through `batchspec.transfer` against Azurite: small blobs on the event
loop (a handful of them through the SDK), larger ones through the SDK in threads, both in one
call; local copies stamped with the blob's modification time, which the next plan's download
check relies on."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import uuid
from pathlib import Path

import pytest
from azure.core.exceptions import ResourceNotFoundError

from batchspec.apply import small_blobs, transfer
from batchspec.live import state as live_state
from batchspec.live import storage as live_storage
from batchspec.model import STORAGE_OWNER, STORAGE_SHA256, Blob
from batchspec.services import targets

# Both sides of the small-blob limit, and one past the SDK's parallel-block size.
SIZES = {
    "empty.txt": 0,
    "a.txt": 5,
    "dir/small.bin": 64 * 1024,
    "dir/at-limit.bin": small_blobs.LIMIT,
    "over-limit.bin": small_blobs.LIMIT + 1,
    "blocks.bin": 9 * 1024 * 1024,
    "we ird/$(touch x) é.txt": 7,
}


@pytest.fixture(params=["local", "azure-url-and-key"])
def target(request, services, local_target):
    """The local target, and the azure target given an account URL and key (not a connection
    string): the async client is built from each as the sync one is."""
    if request.param == "local":
        yield local_target
        return
    status = services[1]
    env = {
        "AZURE_BATCH_ENDPOINT": status["batch"]["endpoint"],
        "AZURE_BATCH_ACCOUNT_NAME": status["batch"]["account_name"],
        "AZURE_BATCH_ACCOUNT_KEY": status["batch"]["account_key"],
        "AZURE_STORAGE_ACCOUNT_URL": status["storage"]["blob_endpoint"],
        "AZURE_STORAGE_ACCOUNT_KEY": status["storage"]["account_key"],
    }
    t = targets.connect("azure", env=env, parallelism=4)
    yield t
    t.close()


@pytest.fixture(params=["event loop", "threads"])
def small_path(request, monkeypatch):
    """Many small blobs go on the event loop, a handful through the SDK on threads: both ways
    for these few (SIZES has fewer small files than `transfer._FEW`)."""
    monkeypatch.setattr(transfer, "_FEW", 0 if request.param == "event loop" else 100)
    return request.param


@pytest.fixture
def uploaded(target, tmp_path, small_path):
    """The SIZES files, uploaded by `transfer.upload` into a fresh container."""
    container = "x" + uuid.uuid4().hex[:12]
    target.blob.create_container(container)
    blobs = []
    for name, size in SIZES.items():
        source = tmp_path / "src" / name
        source.parent.mkdir(parents=True, exist_ok=True)
        source.write_bytes(os.urandom(size))
        digest = hashlib.sha256(source.read_bytes()).hexdigest()
        blobs.append(Blob(container, name, str(source), size, digest))
    done: list[Blob] = []
    failures = transfer.upload(target, blobs, "owner-x", parallelism=4, on_done=done.append)
    assert failures == []
    assert sorted(b.name for b in done) == sorted(SIZES)
    yield container, blobs
    target.blob.delete_container(container)


def test_upload_stores_bytes_and_metadata_on_both_paths(target, uploaded):
    container, blobs = uploaded
    client = target.blob.get_container_client(container)
    for blob in blobs:
        got = client.get_blob_client(blob.name)
        assert got.download_blob().readall() == Path(blob.source).read_bytes(), blob.name
        props = got.get_blob_properties()
        assert props.metadata == {STORAGE_SHA256: blob.sha256, STORAGE_OWNER: "owner-x"}, blob.name
        assert props.content_settings.content_type in ("text/plain", "application/octet-stream")


def test_download_is_byte_identical_and_stamped_with_the_blobs_time(target, uploaded, tmp_path):
    container, blobs = uploaded
    listed = live_storage.read_blobs(target.blob, container)
    root = tmp_path / "down"
    done: list[str] = []
    failures = transfer.download(
        target,
        container,
        list(listed),
        root,
        parallelism=4,
        sizes={n: b.size for n, b in listed.items()},
        on_done=done.append,
    )
    assert failures == []
    assert sorted(done) == sorted(SIZES)
    for blob in blobs:
        local = root / blob.name
        assert local.read_bytes() == Path(blob.source).read_bytes(), blob.name
        assert local.stat().st_mtime == listed[blob.name].modified, blob.name
    assert not list(root.rglob(".*.part"))


def test_download_without_sizes_takes_the_sdk_path(target, uploaded, tmp_path):
    container, blobs = uploaded
    root = tmp_path / "down"
    failures = transfer.download(target, container, [b.name for b in blobs], root, parallelism=2)
    assert failures == []
    assert all((root / b.name).read_bytes() == Path(b.source).read_bytes() for b in blobs)


def test_a_missing_blob_fails_alone_and_leaves_no_file(target, uploaded, tmp_path):
    container, _ = uploaded
    root = tmp_path / "down"
    failures = transfer.download(
        target, container, ["a.txt", "gone.txt"], root, parallelism=2, sizes={"a.txt": 5, "gone.txt": 5}
    )
    assert [(name, type(exc)) for name, exc in failures] == [("gone.txt", ResourceNotFoundError)]
    assert sorted(p.name for p in root.iterdir()) == ["a.txt"]


def test_a_name_that_would_leave_the_folder_fails_before_any_request(target, uploaded, tmp_path):
    container, _ = uploaded
    root = tmp_path / "down"
    failures = transfer.download(
        target, container, ["a.txt", "../a.txt", "/etc/a.txt"], root, parallelism=2, sizes={"a.txt": 5}
    )
    assert sorted(name for name, _ in failures) == ["../a.txt", "/etc/a.txt"]
    assert all(isinstance(exc, ValueError) and "outside" in str(exc) for _, exc in failures)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["down", "src"]
    assert sorted(p.name for p in root.iterdir()) == ["a.txt"]


def test_download_pending_trusts_size_and_time_then_checks_md5(target, uploaded, tmp_path, workspace):
    """What the next plan downloads again: nothing after a download; a copy changed in place
    (same size, new time) when its MD5 differs; not a copy whose size and time were kept."""
    container, _ = uploaded
    from batchspec.spec.build import build

    desired = build(str(workspace.spec), {})
    root = tmp_path / "down"
    download = dataclasses.replace(desired.download, container=container, to=str(root), prefix=None)
    desired = dataclasses.replace(desired, download=download)
    pending = live_state.download_pending(target, desired)
    assert set(pending) == set(SIZES)
    assert transfer.download(target, container, list(pending), root, parallelism=4, sizes=pending) == []
    assert live_state.download_pending(target, desired) == {}

    changed, kept = root / "a.txt", root / "dir/small.bin"
    changed.write_bytes(b"12345")  # same size, new content, new time: its MD5 tells
    stamp = kept.stat().st_mtime
    kept.write_bytes(os.urandom(64 * 1024))
    os.utime(kept, (stamp, stamp))  # same size and time: taken as unchanged, as rsync would
    assert live_state.download_pending(target, desired) == {"a.txt": 5}


def test_transfers_work_from_code_already_running_an_event_loop(target, tmp_path, monkeypatch):
    """As from a notebook: asyncio.run cannot nest, so the small blobs get a loop of their own."""
    import asyncio

    monkeypatch.setattr(transfer, "_FEW", 0)  # this one blob on the event loop
    container = "x" + uuid.uuid4().hex[:12]
    target.blob.create_container(container)
    source = tmp_path / "n.txt"
    source.write_bytes(b"from a loop")
    blob = Blob(container, "n.txt", str(source), 11, hashlib.sha256(b"from a loop").hexdigest())

    async def inside():
        assert transfer.upload(target, [blob], "o", parallelism=2) == []
        return transfer.download(
            target, container, ["n.txt"], tmp_path / "down", parallelism=2, sizes={"n.txt": 11}
        )

    assert asyncio.run(inside()) == []
    assert (tmp_path / "down" / "n.txt").read_bytes() == b"from a loop"
    target.blob.delete_container(container)


def test_an_async_storage_client_made_after_the_cli_s_import_without_aiohttp_signs_as_ever(
    services, tmp_path
):
    """The CLI imports azure-storage-blob without aiohttp (services/sdk.py); an asyncio client
    that code in the same process makes afterwards signs with its shared key as it always did,
    odd names included (aiohttp sends the path re-encoded, which the signature must follow);
    batchspec's own small transfers, after it, too."""
    import subprocess
    import sys

    env, _ = services
    names = [f"d ir/ü {i}+%20.txt" for i in range(12)]
    for i, name in enumerate(names):
        (tmp_path / f"f{i}").write_bytes(name.encode())
    code = (
        "import asyncio, hashlib, sys\n"
        "from batchspec.services import sdk\n"
        "sdk.import_storage_without_aiohttp()\n"
        "assert 'aiohttp' not in sys.modules\n"
        "from batchspec.apply import transfer\n"
        "from batchspec.model import Blob\n"
        "from batchspec.services import targets\n"
        "t = targets.connect('local')\n"
        "t.blob.create_container(sys.argv[1])\n"
        "key = {'account_name': t.blob.account_name, 'account_key': sdk.storage_account_key(t.blob)}\n"
        "async def put():\n"
        "    from azure.storage.blob.aio import BlobServiceClient\n"
        "    async with BlobServiceClient(t.blob.url, credential=key) as service:\n"
        "        for name in sys.argv[3:6]:\n"
        "            await service.get_blob_client(sys.argv[1], 'sdk/' + name).upload_blob(name.encode())\n"
        "asyncio.run(put())\n"
        "blobs = [Blob(sys.argv[1], n, f'{sys.argv[2]}/f{i}', len(n.encode()), hashlib.sha256(n.encode())"
        ".hexdigest()) for i, n in enumerate(sys.argv[3:])]\n"
        "assert transfer.upload(t, blobs, 'o', parallelism=4) == []\n"
        "c = t.blob.get_container_client(sys.argv[1])\n"
        "for name in sys.argv[3:]:\n"
        "    assert c.download_blob(name).readall() == name.encode(), name\n"
        "for name in sys.argv[3:6]:\n"
        "    assert c.download_blob('sdk/' + name).readall() == name.encode(), name\n"
    )
    container = "x" + uuid.uuid4().hex[:12]
    args = [sys.executable, "-c", code, container, str(tmp_path), *names]
    result = subprocess.run(args, env=env, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
