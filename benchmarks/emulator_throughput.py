"""Throughput of the local Batch emulator, end to end through the azure-batch SDK.

Starts `python -m batchspec.emulator` on a free port with a throwaway data dir, creates a pool
of 4 nodes x 2 slots, then measures two ways of pushing N trivial tasks (`/bin/true`) through
it, from the first add request until every task is completed:

- add collection: the SDK's `create_tasks` (100 tasks a request, 4 threads);
- naive baseline: one `create_task` request per task.

Prints tasks/s for both and merges them into benchmarks/results.json (the shared format of
`benchmarks/_common.py`); target: >= 50 tasks/s with add collection. The emulator's data dir is a
temporary directory.

    python benchmarks/emulator_throughput.py [--quick] [--check] [--tasks 1000]
"""

from __future__ import annotations

import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from azure.batch import BatchClient
from azure.batch import models as bm
from azure.core.credentials import AzureNamedKeyCredential

import _common as c
from batchspec.emulator import DEV_ACCOUNT_KEY, DEV_ACCOUNT_NAME

REPO = Path(__file__).resolve().parents[1]
POOL = "bench"


def start(data_dir: Path) -> tuple[subprocess.Popen, str]:
    """Run the emulator; return the process and its URL."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "batchspec.emulator",
            "--port",
            "0",
            "--data-dir",
            str(data_dir),
            "--quiet",
            "--allocation-delay",
            "0",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        cwd=REPO,
    )
    line: list[bytes] = []
    reader = threading.Thread(target=lambda: line.append(proc.stdout.readline()), daemon=True)
    reader.start()
    reader.join(30)
    text = line[0].decode() if line else ""
    if "listening on " not in text:
        proc.kill()
        raise SystemExit(f"emulator did not start: {text!r}")
    return proc, text.rsplit(" ", 1)[-1].strip()


def wait_completed(client: BatchClient, job_id: str, total: int, timeout: float) -> None:
    """Poll the job's task counts until `total` tasks are completed."""
    deadline = time.monotonic() + timeout
    while client.get_job_task_counts(job_id).task_counts.completed < total:
        if time.monotonic() > deadline:
            raise SystemExit(f"{job_id}: tasks did not complete within {timeout}s")
        time.sleep(0.05)


def run(client: BatchClient, job_id: str, n: int, bulk: bool) -> float:
    """Push n tasks into a new job and return tasks/s until all completed."""
    client.create_job(bm.BatchJobCreateOptions(id=job_id, pool_info=bm.BatchPoolInfo(pool_id=POOL)))
    tasks = [bm.BatchTaskCreateOptions(id=f"t{i:06d}", command_line="/bin/true") for i in range(n)]
    started = time.perf_counter()
    if bulk:
        client.create_tasks(job_id, tasks, max_concurrency=4)
    else:
        for t in tasks:
            client.create_task(job_id, t)
    wait_completed(client, job_id, n, timeout=max(120.0, n / 2))
    elapsed = time.perf_counter() - started
    counts = client.get_job_task_counts(job_id).task_counts
    if counts.succeeded != n:
        raise SystemExit(f"{job_id}: only {counts.succeeded} of {n} tasks succeeded")
    return n / elapsed


def main() -> int:
    parser = c.parser(__doc__)
    parser.add_argument("--tasks", type=int, help="tasks per run (default 1000, --quick 200)")
    args = parser.parse_args()
    args.tasks = args.tasks or (200 if args.quick else 1000)
    with tempfile.TemporaryDirectory(prefix="batchspec-bench-") as tmp:
        proc, url = start(Path(tmp) / "data")
        try:
            client = BatchClient(url, AzureNamedKeyCredential(DEV_ACCOUNT_NAME, DEV_ACCOUNT_KEY))
            client.create_pool(
                bm.BatchPoolCreateOptions(
                    id=POOL,
                    vm_size="standard_d2s_v3",
                    virtual_machine_configuration=c.ubuntu_vm(),
                    target_dedicated_nodes=4,
                    task_slots_per_node=2,
                )
            )
            deadline = time.monotonic() + 30
            while sum(1 for n in client.list_nodes(POOL) if n.state == "idle") < 4:
                if time.monotonic() > deadline:
                    raise SystemExit("pool did not become ready")
                time.sleep(0.05)
            bulk = run(client, "bulk", args.tasks, bulk=True)
            naive = run(client, "naive", args.tasks, bulk=False)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
    print(f"emulator throughput, {args.tasks} tasks, pool 4 nodes x 2 slots:")
    print(f"  add collection (create_tasks): {bulk:8.1f} tasks/s")
    print(f"  one create_task per task:      {naive:8.1f} tasks/s")
    rows = [
        c.Row(
            f"{args.tasks} trivial tasks, 4 nodes x 2 slots",
            "tasks/s",
            round(bulk, 1),
            baseline=round(naive, 1),
            ratio=bulk / naive,
            target=">= 50 tasks/s",
            met=bulk >= 50,
            note="batchspec column: add collection (create_tasks); baseline: one create_task per task",
        )
    ]
    return c.report(
        "emulator_throughput", rows, quick=args.quick, check=args.check, params={"tasks": args.tasks}
    )


if __name__ == "__main__":
    sys.exit(main())
