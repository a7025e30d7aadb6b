"""Faults: the Batch emulator answers 10% of requests 503 and drops 5% of connections; Azurite
sits behind the project's fault proxy at the same rates (so the node agent's SAS transfers face
them too). Apply still converges, with outputs byte-identical to a run without faults."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import pytest

import reliability_support as rs
from reliability_support import FAULT_503, FAULT_DROP, new_name
from support import bodies

# Empty, tiny, odd and block-sized inputs; the last is above batchspec's 8 MiB parallel-block limit.
SIZES = [0, 1, 1000, 65_536, 300_001, 1_048_577, 3_000_000, 9 * 1024 * 1024 + 5]


def _outputs(ws: rs.Workspace) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((ws.root / "out").iterdir())}


def test_apply_under_injected_faults_converges_with_byte_identical_outputs(tmp_path, faulty, clean, figures):
    proxy_before = rs.proxy_stats(faulty.proxy)
    emulator_before = rs.emulator_statuses(faulty.batch)
    ws = rs.Workspace.reverse(tmp_path / "faulty", new_name(), faulty.env, SIZES, seed=11, retries=6)
    started = time.monotonic()
    first = ws.apply()
    apply_seconds = time.monotonic() - started
    assert first.returncode == 0, first.stdout + first.stderr
    assert f"Apply complete: tasks {len(SIZES)} succeeded, 0 failed" in first.stdout

    # Byte-identical: to an independent computation, and to the same spec on clean services.
    outputs = _outputs(ws)
    assert outputs == {
        f"{p.stem}.out": p.read_bytes()[::-1] for p in sorted((ws.root / "blobs").glob("*.bin"))
    }
    reference = rs.Workspace.reverse(tmp_path / "clean", new_name(), clean.env, SIZES, seed=11, retries=0)
    started = time.monotonic()
    assert reference.apply().returncode == 0
    clean_seconds = time.monotonic() - started
    assert _outputs(reference) == outputs

    # Converged despite the faults: a second apply finds nothing to do, no task was duplicated.
    again = ws.apply()
    assert again.returncode == 0, again.stdout + again.stderr
    assert "No changes." in again.stdout
    tasks = list(faulty.batch_client().list_tasks(f"{ws.name}-job"))
    assert sorted(t.id for t in tasks) == sorted(f"rev-b{i}" for i in range(len(SIZES)))
    assert {(t.state, t.execution_info.result) for t in tasks} == {("completed", "success")}

    # Destroy under faults leaves nothing this spec owns.
    destroy = ws.run("destroy", "spec.yaml", "--auto-approve")
    assert destroy.returncode == 0, destroy.stdout + destroy.stderr
    rs.assert_nothing_owned(ws, faulty)

    proxy = rs.proxy_stats(faulty.proxy) - proxy_before
    emulator = rs.emulator_statuses(faulty.batch) - emulator_before
    # The faults did happen, of every kind, on both services (see the `faulty` fixture's seeds).
    assert proxy["503"] > 0 and proxy["drop-before"] > 0 and proxy["drop-after"] > 0, proxy
    assert emulator["503"] >= 3, emulator
    figures["faults"] = {
        "rates": {"503": FAULT_503, "drop": FAULT_DROP},
        "storage_requests": proxy["requests"],
        "storage_503": proxy["503"],
        "storage_dropped_before": proxy["drop-before"],
        "storage_dropped_after": proxy["drop-after"],
        "batch_requests": sum(emulator.values()),
        "batch_503_or_dropped": emulator["503"],
        "task_retries": sum(t.execution_info.retry_count for t in tasks),
        "first_apply_seconds": round(apply_seconds, 1),
        "same_apply_on_clean_services_seconds": round(clean_seconds, 1),
        "input_bytes": sum(SIZES),
    }


def test_the_node_agent_retries_a_transient_storage_fault(tmp_path, clean):
    """The task's one resource file sits behind a proxy whose first answer is a 503 (seed 36 at
    rate 0.5 draws 503 once, then forwards the next five requests)."""
    from azure.storage.blob import BlobSasPermissions, generate_blob_sas

    proxy = rs.faultproxy(clean.azurite.url, tmp_path / "proxy.log", rate_503=0.5, drop=0, seed=36).start()
    try:
        name = new_name()
        blob = clean.blob_service().get_container_client(name)
        blob.create_container()
        blob.upload_blob("in.txt", b"hello through a flaky store\n")
        sas = generate_blob_sas(
            rs.AZURITE_ACCOUNT,
            name,
            "in.txt",
            account_key=rs.AZURITE_KEY,
            permission=BlobSasPermissions(read=True),
            expiry=datetime.now(timezone.utc) + timedelta(hours=1),
        )
        client = clean.batch_client()
        client.create_pool(bodies.pool(name, nodes=1))
        client.create_job({"id": name, "poolInfo": {"poolId": name}})
        client.create_task(
            name,
            {
                "id": "t",
                "commandLine": "/bin/cat in.txt",
                "resourceFiles": [
                    {"httpUrl": f"{proxy.url}/{rs.AZURITE_ACCOUNT}/{name}/in.txt?{sas}", "filePath": "in.txt"}
                ],
                "constraints": {"maxTaskRetryCount": 0},
            },
        )
        deadline = time.monotonic() + 60
        while (task := client.get_task(name, "t")).state != "completed" and time.monotonic() < deadline:
            time.sleep(0.2)
        assert rs.proxy_stats(proxy)["503"] == 1  # the fault did happen, exactly once
        failure = task.execution_info.failure_info
        assert task.execution_info.result == "success", (failure.code, failure.details)
    finally:
        proxy.stop()


def test_batch_creates_whose_connection_dropped_are_retried_without_duplicates(tmp_path, clean, figures):
    """A create (POST) whose connection drops may or may not have been done by the service.
    In front of the Batch emulator, the proxy drops POSTs only, with seed 190: create pool is
    dropped after the service made the pool, create job before it reached the service, the add
    collection after the tasks were added. Apply retries each and recognises its own pool and
    tasks in the 'exists' answers."""
    proxy = rs.faultproxy(
        clean.batch.url, tmp_path / "proxy.log", rate_503=0, drop=0.5, seed=190, methods="POST"
    ).start()
    try:
        env = rs.azure_env(proxy.url, clean.blob_url, clean.home)
        ws = rs.Workspace.tutorial(tmp_path / "ws", new_name(), env)
        result = ws.apply()
        assert result.returncode == 0, result.stdout + result.stderr
        ws.check_outputs()
        stats = rs.proxy_stats(proxy)
        assert stats["drop-after"] >= 2 and stats["drop-before"] >= 1, stats
        tasks = list(clean.batch_client().list_tasks(f"{ws.name}-job"))
        assert sorted(t.id for t in tasks) == ["topn-taskdata0", "topn-taskdata1", "topn-taskdata2"]
        assert all(t.execution_info.retry_count == 0 for t in tasks)
        again = ws.apply()
        assert again.returncode == 0 and "No changes." in again.stdout, again.stdout + again.stderr
        figures["dropped_creates"] = dict(stats)
    finally:
        proxy.stop()


def test_the_fault_proxy_without_faults_passes_requests_and_answers_through_untouched(tmp_path, clean):
    import os
    import subprocess
    import sys

    from azure.core.exceptions import ResourceNotFoundError
    from azure.storage.blob import BlobServiceClient

    bad = subprocess.run(
        [
            sys.executable,
            "-m",
            "batchspec.emulator.faultproxy",
            "--upstream",
            clean.azurite.url,
            "--503-rate",
            "1.5",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert bad.returncode == 2 and "a rate is between 0 and 1" in bad.stderr
    proxy = rs.faultproxy(clean.azurite.url, tmp_path / "proxy.log", rate_503=0, drop=0, seed=1).start()
    try:
        via = BlobServiceClient.from_connection_string(
            rs.connection_string(proxy.url), max_single_put_size=2**20
        )
        container = via.get_container_client(new_name())
        container.create_container(metadata={"k": "v"})
        data = os.urandom(5 * 2**20 + 3)  # put as blocks
        container.upload_blob("dir/ü $(x).bin", data, metadata={"sha": "1"})
        blob = container.get_blob_client("dir/ü $(x).bin")
        assert blob.download_blob(max_concurrency=3).readall() == data  # ranged GETs
        props = blob.get_blob_properties()  # HEAD
        assert props.size == len(data) and props.metadata == {"sha": "1"}
        direct = clean.blob_service().get_blob_client(container.container_name, "dir/ü $(x).bin")
        assert direct.get_blob_properties().etag == props.etag
        with pytest.raises(ResourceNotFoundError) as missing:
            container.get_blob_client("absent").download_blob()
        assert missing.value.error_code == "BlobNotFound"
        stats = rs.proxy_stats(proxy)
        assert stats["requests"] == stats["forward"] >= 6 and stats["503"] == 0
    finally:
        proxy.stop()


def test_small_transfers_ride_out_injected_storage_faults(tmp_path, faulty, figures, monkeypatch):
    """Many small files go up and come down as plain requests on one event loop
    (apply/small_blobs.py), not through the SDK's pipeline: behind the fault proxy (503s, and
    connections dropped before and after Azurite did the request) every one arrives whole, with
    its metadata, and what fails for good says so without the SAS it was sent with."""
    import hashlib
    import os

    from batchspec.apply import transfer
    from batchspec.live import storage as live_storage
    from batchspec.model import STORAGE_OWNER, STORAGE_SHA256, Blob
    from batchspec.services import targets

    for var, value in faulty.env.items():
        monkeypatch.setenv(var, value)
    container = new_name()
    faulty.blob_service().create_container(container)
    files: dict[str, bytes] = {f"d{i % 3}/f {i}.bin": os.urandom(i * 997) for i in range(60)}
    blobs = []
    for name, data in files.items():
        source = tmp_path / "up" / name
        source.parent.mkdir(parents=True, exist_ok=True)
        source.write_bytes(data)
        blobs.append(Blob(container, name, str(source), len(data), hashlib.sha256(data).hexdigest()))
    before = rs.proxy_stats(faulty.proxy)
    target = targets.connect("azure", parallelism=4)
    try:
        assert transfer.upload(target, blobs, "owner-f", parallelism=4) == []
        direct = faulty.blob_service().get_container_client(container)
        for blob in blobs:
            got = direct.get_blob_client(blob.name)
            assert got.download_blob().readall() == files[blob.name], blob.name
            metadata = got.get_blob_properties().metadata
            assert metadata == {STORAGE_SHA256: blob.sha256, STORAGE_OWNER: "owner-f"}, blob.name

        sizes = {n: b.size for n, b in live_storage.read_blobs(faulty.blob_service(), container).items()}
        root = tmp_path / "down"
        names = [*sizes, "gone.bin"]
        failures = transfer.download(
            target, container, names, root, parallelism=4, sizes=sizes | {"gone.bin": 5}
        )
    finally:
        target.close()
    assert [name for name, _ in failures] == ["gone.bin"]
    said = str(failures[0][1])
    assert said.startswith(f"GET {container}/gone.bin: 404") and "sig=" not in said, said
    assert {name: (root / name).read_bytes() for name in files} == files
    stats = rs.proxy_stats(faulty.proxy) - before
    # The seeded faults did happen to these requests, of every kind (the fixture's seeds).
    assert stats["503"] > 0 and stats["drop-before"] > 0 and stats["drop-after"] > 0, stats
    figures["small_transfer_faults"] = dict(stats)
