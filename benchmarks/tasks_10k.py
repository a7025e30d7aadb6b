"""10,000 tasks with tiny inputs and a trivial command (`/bin/true`) on the local target.

- batchspec: a spec with one 2-8 byte input blob per task (`forEach: {container: ...}`), applied
  with the library calls `batchspec apply` makes (lock, plan, `Applier`) in a process of its own;
  task submission is timed from the "submitting" step to the next one (building the bodies with
  their SAS URLs included). Pool: 4 nodes x 2 slots; the apply waits for every task.
- converged plan: `batchspec plan --detailed-exitcode` (the CLI, exit code 0 = no changes) timed
  as a subprocess, and `diff(desired, live.state.read(...))` with a counting policy on both
  clients for the number of HTTP requests. Peak RSS of each batchspec process via os.wait4.
- naive baseline: one `create_task` per task in a loop, each with its blob's SAS URL (as the
  tutorial client does), into a second job on the same pool.

    python benchmarks/tasks_10k.py [--quick] [--check] [--tasks 10000]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import _common as c

SPEC = """\
name: bench10k
storage:
  containers:
    tiny: {upload: [data/*.txt]}
pool:
  id: bench10k-pool
  vmSize: standard_d2s_v3
  image: {publisher: canonical, offer: ubuntu-24_04-lts, sku: server}
  targetDedicatedNodes: 4
  taskSlotsPerNode: 2
job:
  id: bench10k-job
  tasks:
    forEach: {container: tiny}
    id: "t-{{ item.stem }}"
    commandLine: /bin/true
    resourceFiles: [{blob: "{{ item.ref }}"}]
wait: {timeout: PT30M}
"""


def workdir(n: int) -> Path:
    root = Path(tempfile.mkdtemp(prefix="batchspec-bench-10k-"))
    (root / "data").mkdir()
    for i in range(n):
        (root / "data" / f"in{i:05d}.txt").write_text(f"{i}\n")
    (root / "tasks.yaml").write_text(SPEC)
    return root


class StepClock:
    """A Reporter (batchspec.apply) that only notes when each step starts."""

    def __init__(self):
        self.steps: list[tuple[float, str]] = []

    def step(self, text: str) -> None:
        self.steps.append((time.perf_counter(), text))

    def note(self, text: str) -> None:
        pass

    def progress(self, label: str, total: int):
        import contextlib

        return contextlib.nullcontext(lambda n: None)

    def task_counts(self, counts: dict[str, int], elapsed: float) -> None:
        pass

    def span(self, prefix: str) -> float | None:
        """Seconds from the step starting with `prefix` to the next step."""
        for (t, text), (t2, _) in zip(self.steps, self.steps[1:], strict=False):
            if text.startswith(prefix):
                return t2 - t
        return None


def child_apply(root: Path) -> dict:
    """What `batchspec apply tasks.yaml --auto-approve` does, with a clock on its steps."""
    from batchspec.apply import Applier
    from batchspec.apply.lock import Lock
    from batchspec.live import state as live_state
    from batchspec.plan import diff
    from batchspec.spec.build import build

    started = time.perf_counter()
    desired = build(str(root / "tasks.yaml"), {})
    client, counter = c.connect(parallelism=16)
    clock = StepClock()
    try:
        with Lock(client.blob, desired.name, command="apply"):
            p = diff(desired, live_state.read(client, desired))
            outcome = Applier(client, desired, p, clock, parallelism=16, timeout=1800).run()
            clock.step("done")  # closes the last step's span
    finally:
        client.close()
    return {
        "seconds": time.perf_counter() - started,
        "submit_s": clock.span("submitting"),
        "upload_s": clock.span("uploading"),
        "wait_s": clock.span("waiting for tasks"),
        "submitted": outcome.submitted,
        "exit_code": outcome.exit_code,
        "requests": counter.count,
        "steps": [text for _, text in clock.steps],
    }


def child_plan(root: Path) -> dict:
    """`diff(desired, live.state.read(...))` (what `batchspec plan` calls) with every HTTP request counted."""
    from batchspec.live import state as live_state
    from batchspec.plan import diff
    from batchspec.spec.build import build

    with c.timer() as t_build:
        desired = build(str(root / "tasks.yaml"), {})
    client, counter = c.connect()
    try:
        with c.timer() as t_plan:
            p = diff(desired, live_state.read(client, desired))
    finally:
        client.close()
    return {
        "build_s": t_build["s"],
        "plan_s": t_plan["s"],
        "requests": counter.count,
        "changes": len(p.changes),
        "pending": p.pending_tasks,
    }


def child(mode: str, root: Path) -> dict:
    proc = c.run([sys.executable, __file__, "--child", mode, str(root)])
    if proc.returncode != 0:
        raise SystemExit(f"{mode} failed:\n{proc.stdout}\n{proc.stderr}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["peak_rss_mb"] = proc.peak_rss_mb
    result["wall_s"] = proc.seconds
    return result


def naive_submit(n_tasks: int) -> float:
    """One create_task per task, sequentially, each with its own blob SAS; returns seconds."""
    from azure.batch import BatchClient
    from azure.batch import models as bm
    from azure.core.credentials import AzureNamedKeyCredential
    from azure.storage.blob import BlobSasPermissions, generate_blob_sas

    from batchspec import local

    s = local.status()
    batch = BatchClient(
        s.batch["endpoint"], AzureNamedKeyCredential(s.batch["account_name"], s.batch["account_key"])
    )
    batch.create_job(
        bm.BatchJobCreateOptions(id="naive-job", pool_info=bm.BatchPoolInfo(pool_id="bench10k-pool"))
    )
    expiry = datetime.now(timezone.utc) + timedelta(hours=2)
    key, account, base = s.storage["account_key"], s.storage["account_name"], s.storage["blob_endpoint"]
    started = time.perf_counter()
    for i in range(n_tasks):
        name = f"in{i:05d}.txt"
        sas = generate_blob_sas(
            account, "tiny", name, account_key=key, permission=BlobSasPermissions(read=True), expiry=expiry
        )
        batch.create_task(
            "naive-job",
            bm.BatchTaskCreateOptions(
                id=f"t-in{i:05d}",
                command_line="/bin/true",
                resource_files=[bm.ResourceFile(http_url=f"{base}/tiny/{name}?{sas}", file_path=name)],
            ),
        )
    elapsed = time.perf_counter() - started
    batch.begin_delete_job("naive-job").result()  # not timed; its remaining tasks are dropped
    return elapsed


def main() -> int:
    p = c.parser(__doc__)
    p.add_argument("--tasks", type=int, help="number of tasks (default 10000, --quick 300)")
    p.add_argument("--repeat", type=int, default=3, help="converged plans to time (default 3)")
    p.add_argument("--child", nargs=2, metavar=("MODE", "DIR"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        mode, root = args.child
        print(json.dumps((child_apply if mode == "apply" else child_plan)(Path(root))))
        return 0
    n = args.tasks or (300 if args.quick else 10_000)
    c.compile_package()
    root = workdir(n)
    try:
        with c.LocalServices():
            applied = child("apply", root)
            if applied["exit_code"] != 0 or applied["submitted"] != n:
                raise SystemExit(f"apply did not run {n} tasks: {applied}")
            cli_plans = []
            for _ in range(args.repeat):
                proc = c.run([*c.batchspec_cli(), "plan", "tasks.yaml", "--detailed-exitcode"], cwd=root)
                if proc.returncode != 0:
                    raise SystemExit(
                        f"plan is not converged (exit {proc.returncode}):\n{proc.stdout[-2000:]}"
                    )
                cli_plans.append(proc)
            counted = child("plan", root)
            naive = naive_submit(n)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    plan_runs = [pr.seconds for pr in cli_plans]
    plan_rss = max(pr.peak_rss_mb for pr in cli_plans)
    submit = applied["submit_s"]
    peak = max(plan_rss, applied["peak_rss_mb"], counted["peak_rss_mb"])
    rows = [
        c.Row(
            f"submit {n} tasks",
            "s",
            submit,
            baseline=naive,
            ratio=naive / submit,
            target=">= 20x baseline",
            met=naive / submit >= 20,
            note=f"batchspec {n / submit:.0f} tasks/s, baseline {n / naive:.0f} tasks/s",
        ),
        c.Row(
            "converged plan (CLI)",
            "s",
            c.median(plan_runs),
            target="<= 5 s",
            met=c.median(plan_runs) <= 5,
            runs=plan_runs,
            note=f"in-process: build {counted['build_s']:.2f} s, read + diff {counted['plan_s']:.2f} s",
        ),
        c.Row(
            "converged plan: HTTP requests",
            "",
            counted["requests"],
            target="<= 20",
            met=counted["requests"] <= 20,
        ),
        c.Row(
            "peak RSS of batchspec",
            "MB",
            round(peak, 1),
            target="<= 300 MB",
            met=peak <= 300,
            note=f"apply {applied['peak_rss_mb']:.0f} MB, CLI plan {plan_rss:.0f} MB",
        ),
        c.Row(
            f"whole apply ({n} uploads, tasks run)",
            "s",
            applied["seconds"],
            note=f"upload {applied['upload_s']:.1f} s, wait for tasks {applied['wait_s']:.1f} s, "
            f"{applied['requests']} HTTP requests",
        ),
    ]
    return c.report(
        "tasks_10k",
        rows,
        quick=args.quick,
        check=args.check,
        params={"tasks": n, "apply": applied, "plan": counted},
    )


if __name__ == "__main__":
    sys.exit(main())
