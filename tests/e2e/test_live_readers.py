"""The live readers parse raw pages for speed; they must agree with the SDKs' own listings.

They reach into the clients' pipelines, so an SDK upgrade that changes those internals fails
here rather than in a user's plan. Page sizes are lowered so that paging is exercised too.
"""

from __future__ import annotations

import dataclasses
import uuid

from azure.batch import models as bm
from azure.storage.blob import BlobServiceClient, ContentSettings

from batchspec.live import batch as live_batch
from batchspec.live import quotas as live_quotas
from batchspec.live import storage as live_storage
from batchspec.model import STORAGE_SHA256, VmSize
from batchspec.spec.build import build
from helpers import ROOT


def test_blob_listing_matches_the_sdk_across_pages(blob_service: BlobServiceClient, monkeypatch):
    name = "r" + uuid.uuid4().hex[:12]
    container = blob_service.create_container(name)
    names = ["a.txt", "dir/b c.txt", "ünï/çødé.txt", "x&y=z?.txt", "plain"]
    for i, blob in enumerate(names):
        container.upload_blob(
            blob,
            f"content {i}".encode(),
            # A metadata name that is also the listing's own element: not its next marker.
            metadata={STORAGE_SHA256: f"{i:064d}", "NextMarker": "x"} if i % 2 else None,
            content_settings=ContentSettings(content_type="text/plain"),
        )
    monkeypatch.setattr(live_storage, "_PAGE", 2)
    fast = live_storage.read_blobs(blob_service, name)
    sdk = {b.name: b for b in container.list_blobs(include=["metadata"])}
    assert set(fast) == set(sdk) == set(names)
    for blob_name, b in sdk.items():
        live = fast[blob_name]
        assert live.size == b.size
        assert live.etag == b.etag
        assert live.sha256 == (b.metadata or {}).get(STORAGE_SHA256)
        assert live.content_md5 == bytes(b.content_settings.content_md5)
        assert live.modified == b.last_modified.timestamp()
    assert set(live_storage.read_blobs(blob_service, name, prefix="dir/")) == {"dir/b c.txt"}
    compared = live_storage.read_blobs(blob_service, name, compared=True)  # what a plan keeps
    assert {n: (b.size, b.sha256) for n, b in compared.items()} == {
        n: (b.size, b.sha256) for n, b in fast.items()
    }
    assert all(b.etag is None and b.content_md5 is None for b in compared.values())
    blob_service.delete_container(name)


def test_task_listing_matches_the_sdk_across_pages(batch_client, idle_job, monkeypatch):
    job_id = idle_job
    ids = [f"t-{i}" for i in range(7)]
    batch_client.create_tasks(
        job_id,
        [
            bm.BatchTaskCreateOptions(
                id=i, command_line="true", environment_settings=[bm.EnvironmentSetting(name="X", value=i)]
            )
            for i in ids
        ],
    )
    monkeypatch.setattr(live_batch, "_PAGE", 3)
    fast = live_batch.read_tasks(batch_client, job_id)
    sdk = [t.as_dict() for t in batch_client.list_tasks(job_id, select=live_batch._TASK_FIELDS)]
    assert sorted(t["id"] for t in fast) == sorted(ids)
    by_id = {t["id"]: t for t in sdk}
    for task in fast:
        expected = by_id[task["id"]]
        for key in ("state", "commandLine", "environmentSettings"):
            assert task.get(key) == expected.get(key)
    assert live_batch.read_tasks(batch_client, "no-such-job") == []


def test_the_account_reader_takes_the_quotas_from_the_stand_in_and_counts_what_is_in_use(
    local_target, batch_client, idle_job
):
    desired = build(ROOT / "specs" / "topn.yaml")
    account, unread = live_quotas.read(local_target, desired)
    assert unread is None and account.pool_quota >= 1000 and account.location == "local"
    assert account.vm_size("standard_d2s_v3") == VmSize("Standard_D2s_v3", 2, "standardDSv3Family")
    assert batch_client.get_job(idle_job).pool_info.pool_id in {p.id for p in account.pools}
    # The spec's own job is replaced, not added: it is left out of the count.
    own = dataclasses.replace(desired, job=dataclasses.replace(desired.job, id=idle_job.upper()))
    assert live_quotas.read(local_target, own)[0].active_jobs == account.active_jobs - 1
    # A completed job no longer counts against activeJobAndJobScheduleQuota.
    batch_client.begin_terminate_job(idle_job, {"terminateReason": "done"}, polling_interval=0.05).result()
    assert live_quotas.read(local_target, desired)[0].active_jobs == account.active_jobs - 1


def test_task_listing_in_id_ranges_reads_each_task_once(batch_client, idle_job, monkeypatch):
    """A large job is read in id ranges of whole pages of the expected ids, in parallel; the
    ranges cover every id, so a task the caller did not expect is read too."""
    job_id = idle_job
    expected = [f"t-{i:02d}" for i in range(14)]
    batch_client.create_tasks(
        job_id, [bm.BatchTaskCreateOptions(id=i, command_line="true") for i in [*expected, "zz-extra", "A-1"]]
    )
    monkeypatch.setattr(live_batch, "_PAGE", 3)
    monkeypatch.setattr(live_batch, "_RANGES", 3)
    assert len(live_batch.id_ranges(expected, 3, 3)) == 3
    fast = live_batch.read_tasks(batch_client, job_id, ids=expected, keep=lambda t: {"id": t["id"]})
    assert sorted(t["id"] for t in fast) == sorted([*expected, "zz-extra", "A-1"])
    assert all(t == {"id": t["id"]} for t in fast)


def test_id_ranges_split_the_expected_ids_into_whole_pages():
    ids = [f"t{i:05d}" for i in range(10_000)]
    ranges = live_batch.id_ranges(ids, 1000, 8)
    assert ranges[0] == "id lt 't02000'" and ranges[-1] == "id ge 't08000'"
    assert ranges[1] == "id ge 't02000' and id lt 't04000'"
    assert len(ranges) == 5  # 10 pages: 2 a range
    assert live_batch.id_ranges(ids[:1000], 1000, 8) == [None]  # one page: one listing
    assert len(live_batch.id_ranges([f"t{i:06d}" for i in range(100_000)], 1000, 8)) == 8


def test_early_listings_are_taken_as_listed_and_a_missing_container_as_none(local_target, blob_service):
    from batchspec.live import state as live_state

    name = "e" + uuid.uuid4().hex[:12]
    blob_service.create_container(name).upload_blob("a.txt", b"a")
    connected = []
    early = live_state.EarlyListings(lambda: connected.append(1) or local_target)
    early.start([name, "missing-" + name])
    assert connected == [1]
    assert set(early.take(name).result()) == {"a.txt"}
    assert early.take("missing-" + name).result() is None  # read() lists it again if it exists by then
    assert early.take(name) is None  # taken once
    blob_service.delete_container(name)
