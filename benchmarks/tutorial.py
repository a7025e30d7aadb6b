"""The tutorial spec (specs/topn.yaml) on the local target, through the `batchspec` CLI.

- cold: a fresh BATCHSPEC_HOME with the local services down; `apply` starts them (target <= 10 s);
- warm: services up, the spec destroyed beforehand (not timed), `apply` from scratch (<= 3 s);
- converged re-apply: `apply` again right after (<= 1 s), checked to upload 0 bytes and run 0
  tasks by comparing the live blobs' etags and the tasks' start times before and after;
- naive baseline: the original tutorial client (containers, uploads, pool, job, one create_task
  per task, polling, downloads; the SDK called once per object, sequentially) against the same
  warm services, under its own resource names. It polls every 0.25 s, batchspec's local polling
  interval (batchspec polls at a fifth of it for the first second of each wait).

    python benchmarks/tutorial.py [--quick] [--check] [--repeat 3]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import _common as c

SPEC_FILES = ["specs/topn.yaml", "node/topn_task.py", *[f"data/taskdata{i}.txt" for i in range(3)]]


def workdir() -> Path:
    """A copy of the tutorial's files, so downloads never land in the repository."""
    root = Path(tempfile.mkdtemp(prefix="batchspec-bench-topn-"))
    for rel in SPEC_FILES:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(c.REPO / rel, root / rel)
    return root


def apply(root: Path) -> c.Proc:
    proc = c.run([*c.batchspec_cli(), "apply", "specs/topn.yaml", "--auto-approve"], cwd=root)
    if proc.returncode != 0:
        raise SystemExit(f"apply failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def live_snapshot() -> tuple[dict, dict]:
    """Blob etags of the spec's containers and task start times: what an upload or a run changes."""
    client, _ = c.connect()
    try:
        blobs = {
            (name, b.name): (b.etag, b.size)
            for name in ("application", "input", "output")
            for b in client.blob.get_container_client(name).list_blobs()
        }
        tasks = {
            t.id: (t.execution_info.start_time, t.execution_info.retry_count)
            for t in client.batch.list_tasks("topn-job")
        }
    finally:
        client.close()
    return blobs, tasks


def cold(repeat: int) -> list[float]:
    runs = []
    for _ in range(repeat):
        root = workdir()
        with c.LocalServices(start=False) as services:
            assert not services.status().running
            runs.append(apply(root).seconds)
        shutil.rmtree(root, ignore_errors=True)
    return runs


def naive_tutorial(root: Path) -> None:
    """The Azure Batch Python quickstart's flow, one SDK call per object, sequentially."""
    from azure.batch import BatchClient
    from azure.batch import models as bm
    from azure.core.credentials import AzureNamedKeyCredential
    from azure.storage.blob import (
        BlobSasPermissions,
        BlobServiceClient,
        ContainerSasPermissions,
        generate_blob_sas,
        generate_container_sas,
    )

    from batchspec import local

    s = local.status()
    blob = BlobServiceClient.from_connection_string(s.storage["connection_string"])
    batch = BatchClient(
        s.batch["endpoint"], AzureNamedKeyCredential(s.batch["account_name"], s.batch["account_key"])
    )
    key, account = s.storage["account_key"], s.storage["account_name"]
    expiry = datetime.now(timezone.utc) + timedelta(hours=2)
    base = s.storage["blob_endpoint"]
    for name in ("naive-application", "naive-input", "naive-output"):
        blob.create_container(name)
    blob.get_blob_client("naive-application", "topn_task.py").upload_blob(
        (root / "node/topn_task.py").read_bytes(), overwrite=True
    )
    inputs = []
    for path in sorted((root / "data").glob("*.txt")):
        blob.get_blob_client("naive-input", path.name).upload_blob(path.read_bytes(), overwrite=True)
        sas = generate_blob_sas(
            account, "naive-input", path.name, account_key=key,
            permission=BlobSasPermissions(read=True), expiry=expiry,
        )  # fmt: skip
        inputs.append((path.name, f"{base}/naive-input/{path.name}?{sas}"))
    app_sas = generate_blob_sas(
        account, "naive-application", "topn_task.py", account_key=key,
        permission=BlobSasPermissions(read=True), expiry=expiry,
    )  # fmt: skip
    out_sas = generate_container_sas(
        account, "naive-output", account_key=key,
        permission=ContainerSasPermissions(write=True, create=True), expiry=expiry,
    )  # fmt: skip
    batch.create_pool(
        bm.BatchPoolCreateOptions(
            id="naive-pool",
            vm_size="standard_d2s_v3",
            virtual_machine_configuration=c.ubuntu_vm(),
            target_dedicated_nodes=2,
            start_task=bm.BatchStartTask(
                command_line='/bin/bash -c \'cp "$AZ_BATCH_TASK_WORKING_DIR/topn_task.py" '
                '"$AZ_BATCH_NODE_SHARED_DIR/"\'',
                resource_files=[
                    bm.ResourceFile(
                        http_url=f"{base}/naive-application/topn_task.py?{app_sas}", file_path="topn_task.py"
                    )
                ],
                wait_for_success=True,
            ),
        )
    )
    batch.create_job(
        bm.BatchJobCreateOptions(id="naive-job", pool_info=bm.BatchPoolInfo(pool_id="naive-pool"))
    )
    for name, url in inputs:
        batch.create_task(
            "naive-job",
            bm.BatchTaskCreateOptions(
                id=f"naive-{Path(name).stem}",
                command_line='/bin/bash -c \'python3 "$AZ_BATCH_NODE_SHARED_DIR/topn_task.py" '
                f"--filepath {name} --numwords 3'",
                resource_files=[bm.ResourceFile(http_url=url, file_path=name)],
                output_files=[
                    bm.OutputFile(
                        file_pattern="*_OUTPUT.txt",
                        destination=bm.OutputFileDestination(
                            container=bm.OutputFileBlobContainerDestination(
                                container_url=f"{base}/naive-output?{out_sas}"
                            )
                        ),
                        upload_options=bm.OutputFileUploadConfiguration(
                            upload_condition=bm.OutputFileUploadCondition.TASK_SUCCESS
                        ),
                    )
                ],
            ),
        )
    while any(t.state != "completed" for t in batch.list_tasks("naive-job")):
        time.sleep(0.25)
    out = root / "naive-out"
    out.mkdir(exist_ok=True)
    for b in blob.get_container_client("naive-output").list_blobs():
        (out / b.name).write_bytes(blob.get_blob_client("naive-output", b.name).download_blob().readall())
    if len(list(out.glob("*_OUTPUT.txt"))) != 3:
        raise SystemExit("naive tutorial: expected 3 outputs")


def naive_cleanup(root: Path) -> None:
    """Remove what the naive client made (not timed), so that a repeat starts from scratch."""
    from azure.batch import BatchClient
    from azure.core.credentials import AzureNamedKeyCredential
    from azure.storage.blob import BlobServiceClient

    from batchspec import local

    s = local.status()
    blob = BlobServiceClient.from_connection_string(s.storage["connection_string"])
    batch = BatchClient(
        s.batch["endpoint"], AzureNamedKeyCredential(s.batch["account_name"], s.batch["account_key"])
    )
    batch.begin_delete_job("naive-job").result()
    batch.begin_delete_pool("naive-pool").result()
    while "naive-job" in {j.id for j in batch.list_jobs()}:
        time.sleep(0.1)
    while "naive-pool" in {p.id for p in batch.list_pools()}:
        time.sleep(0.1)
    for name in ("naive-application", "naive-input", "naive-output"):
        blob.delete_container(name)
    shutil.rmtree(root / "naive-out")


def warm_and_converged(repeat: int) -> tuple[list[float], list[float], list[float], list[tuple[int, int]]]:
    warm, again, naive, changed = [], [], [], []
    root = workdir()
    with c.LocalServices():
        for _ in range(repeat):
            # From scratch on running services: destroy (not timed), drop the downloads.
            c.run([*c.batchspec_cli(), "destroy", "specs/topn.yaml", "--auto-approve"], cwd=root)
            shutil.rmtree(root / "specs/out", ignore_errors=True)
            warm.append(apply(root).seconds)
            before = live_snapshot()
            proc = apply(root)
            again.append(proc.seconds)
            after = live_snapshot()
            if "No changes" not in proc.stdout:
                raise SystemExit(f"the re-apply was not converged:\n{proc.stdout}")
            uploads = sum(v[1] for k, v in after[0].items() if before[0].get(k) != v)
            runs = sum(1 for k, v in after[1].items() if before[1].get(k) != v)
            changed.append((uploads, runs))
            # A process of its own, like the CLI: interpreter start and imports count on both sides.
            proc = c.run([sys.executable, __file__, "--naive", str(root)])
            if proc.returncode != 0:
                raise SystemExit(f"naive tutorial failed:\n{proc.stderr}")
            naive.append(proc.seconds)
            naive_cleanup(root)
    shutil.rmtree(root, ignore_errors=True)
    return warm, again, naive, changed


def main() -> int:
    p = c.parser(__doc__)
    p.add_argument("--repeat", type=int, default=None, help="runs of each figure (default 3, --quick 1)")
    p.add_argument("--naive", metavar="DIR", help=argparse.SUPPRESS)  # the baseline's own process
    args = p.parse_args()
    if args.naive:
        naive_tutorial(Path(args.naive))
        return 0
    repeat = args.repeat or (1 if args.quick else 3)
    cold_runs = cold(repeat)
    warm, again, naive, changed = warm_and_converged(repeat)
    uploads = max(u for u, _ in changed)
    runs = max(r for _, r in changed)
    rows = [
        c.Row("apply, cold (services down)", "s", c.median(cold_runs), target="<= 10 s", runs=cold_runs),
        c.Row(
            "apply, warm (services up)",
            "s",
            c.median(warm),
            baseline=c.median(naive),
            ratio=c.median(naive) / c.median(warm),
            target="<= 3 s",
            runs=warm,
            note=f"baseline runs: {', '.join(f'{x:.2f}' for x in naive)} s",
        ),
        c.Row("re-apply, converged", "s", c.median(again), target="<= 1 s", runs=again),
        c.Row("re-apply: bytes uploaded", "B", uploads, target="0", met=uploads == 0),
        c.Row("re-apply: tasks run", "", runs, target="0", met=runs == 0),
    ]
    for row, limit in zip(rows[:3], (10, 3, 1), strict=True):
        row.met = row.batchspec <= limit
    return c.report("tutorial", rows, quick=args.quick, check=args.check, params={"repeat": repeat})


if __name__ == "__main__":
    sys.exit(main())
