"""10,000 (or --tasks N, e.g. 100,000) tasks with tiny inputs and a trivial command (`/bin/true`)
on the local target.

- batchspec: a spec with one 2-8 byte input blob per task (`forEach: {container: ...}`), applied
  with the library calls `batchspec apply` makes (lock, plan, `Applier`) in a process of its own;
  task submission is timed from the "submitting" step to the next one (building the bodies with
  their SAS URLs included). Pool: 4 nodes x 2 slots; the apply waits for every task.
- converged plan: `batchspec plan --detailed-exitcode` (the CLI, exit code 0 = no changes) timed
  as a subprocess, building from the build cache the apply left as the CLI's would (spec/cache.py),
  and `diff(desired, live.state.read(...))` with a counting policy on both
  clients for the number of HTTP requests. Peak RSS of each batchspec process via os.wait4.
- naive baseline: one `create_task` per task in a loop, each with its blob's SAS URL (as the
  tutorial client does), into a second job on the same pool. Past 10,000 tasks the loop runs on
  a sample (--naive-sample, default 1,000) and its rate is scaled to N (the output says so).
- the emulator at that size, with the N tasks in its store: the job's list pages (first and
  last, one after another) and 2,000 more trivial tasks (no files) through the same pool.

    python benchmarks/tasks_10k.py [--quick] [--check] [--tasks 10000] [--naive-sample 1000] [--keep]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
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
wait: {timeout: PT4H}  # 100,000 tasks with their logs take over an hour here (Azurite-bound)
"""


_WAIT_S = 4 * 3600  # the spec's wait.timeout: the apply child's, and its own time limit's base


def name(i: int, n: int) -> str:
    """The i-th input file's stem (zero-padded to N's width, at least 5 digits)."""
    return f"in{i:0{max(5, len(str(n - 1)))}d}"


def workdir(n: int) -> Path:
    root = Path(tempfile.mkdtemp(prefix="batchspec-bench-tasks-"))
    (root / "data").mkdir()
    for i in range(n):
        (root / "data" / f"{name(i, n)}.txt").write_text(f"{i}\n")
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


def built(root: Path):
    """The spec built by the CLI's own steps, with the build cache in the services' data folder
    (spec/cache.py), and its TasksDigest as the CLI makes it: (desired, digest function)."""
    from batchspec import cli

    desired, cache = cli._build(str(root / "tasks.yaml"))
    return desired, cli._tasks(desired, cache)


def child_apply(root: Path) -> dict:
    """What `batchspec apply tasks.yaml --auto-approve` does, with a clock on its steps."""
    from batchspec.apply import Applier
    from batchspec.apply.lock import Lock
    from batchspec.live import state as live_state
    from batchspec.plan import diff

    started = time.perf_counter()
    desired, tasks_digest = built(root)
    client, counter = c.connect(parallelism=16)
    clock = StepClock()
    try:
        with Lock(client.blob, desired.name, command="apply"):
            live = live_state.read(client, desired, tasks_digest=tasks_digest)
            p = diff(desired, live)
            outcome = Applier(client, desired, p, clock, parallelism=16, timeout=_WAIT_S).run()
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
    """`diff(desired, live.state.read(...))` as `batchspec plan` calls them, with every HTTP request
    counted."""
    from batchspec.live import state as live_state
    from batchspec.plan import diff

    with c.timer() as t_build:
        desired, tasks_digest = built(root)
    client, counter = c.connect()
    try:
        with c.timer() as t_plan:
            live = live_state.read(client, desired, tasks_digest=tasks_digest)
            p = diff(desired, live)
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
    proc = c.run([sys.executable, __file__, "--child", mode, str(root)], timeout=_WAIT_S + 600)
    if proc.returncode != 0:
        killed = " (killed at its time limit)" if proc.returncode < 0 else ""
        raise SystemExit(f"{mode} failed{killed}:\n{proc.stdout}\n{proc.stderr}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["peak_rss_mb"] = proc.peak_rss_mb
    result["wall_s"] = proc.seconds
    return result


def naive_submit(n: int, sample: int) -> float:
    """One create_task per task, sequentially, each with its own blob SAS, for the first `sample`
    of the N inputs; returns seconds."""
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
    for i in range(sample):
        blob = f"{name(i, n)}.txt"
        sas = generate_blob_sas(
            account, "tiny", blob, account_key=key, permission=BlobSasPermissions(read=True), expiry=expiry
        )
        batch.create_task(
            "naive-job",
            bm.BatchTaskCreateOptions(
                id=f"t-{name(i, n)}",
                command_line="/bin/true",
                resource_files=[bm.ResourceFile(http_url=f"{base}/tiny/{blob}?{sas}", file_path=blob)],
            ),
        )
    elapsed = time.perf_counter() - started
    batch.begin_delete_job("naive-job").result()  # not timed; its remaining tasks are dropped
    return elapsed


def emulator_at_size(trivial: int) -> dict:
    """The emulator with the benchmark's tasks in its store: the seconds of the job's first and
    last list page (1,000 tasks each, read one after another as a naive client reads them), and
    the rate of `trivial` more `/bin/true` tasks (no files) through the same pool, from the first
    add until all completed."""
    from batchspec.apply import submit

    client, _ = c.connect()
    try:
        pages = []
        listed = client.batch.list_tasks("bench10k-job", select=["id", "state"], max_results=1000)
        listing = iter(listed.by_page())
        while True:
            with c.timer() as t:
                page = list(next(listing, ()))
            if not page:
                break
            pages.append(t["s"])
        client.batch.create_job({"id": "trivial-job", "poolInfo": {"poolId": "bench10k-pool"}})
        started = time.perf_counter()
        bodies = [{"id": f"x{i:06d}", "commandLine": "/bin/true"} for i in range(trivial)]
        if submit.add_tasks(client.batch, "trivial-job", bodies, threads=8):
            raise SystemExit("trivial tasks refused")
        while client.batch.get_job_task_counts("trivial-job").task_counts.completed < trivial:
            time.sleep(0.05)
        rate = trivial / (time.perf_counter() - started)
        client.batch.begin_delete_job("trivial-job").result()
    finally:
        client.close()
    return {"pages": len(pages), "first_page_s": pages[0], "last_page_s": pages[-1], "trivial_rate": rate}


def request_budget(n: int) -> int:
    """The converged plan's HTTP requests allowed: 20 at 10,000 tasks, 120 at 100,000 (issue 13)."""
    return 20 if n <= 10_000 else 120


def main() -> int:
    p = c.parser(__doc__)
    p.add_argument("--tasks", type=int, help="number of tasks (default 10000, --quick 300)")
    p.add_argument("--repeat", type=int, default=3, help="converged plans to time (default 3)")
    p.add_argument(
        "--naive-sample", type=int, help="tasks the naive loop adds (default: all up to 10000, else 1000)"
    )
    p.add_argument(
        "--keep",
        action="store_true",
        help="leave the services and the spec's folder as they are at the end (to plan against them "
        "again); prints the environment that reaches them",
    )
    p.add_argument("--child", nargs=2, metavar=("MODE", "DIR"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        mode, root = args.child
        print(json.dumps((child_apply if mode == "apply" else child_plan)(Path(root))))
        return 0
    n = args.tasks or (300 if args.quick else 10_000)
    sample = min(n, args.naive_sample or (n if n <= 10_000 else 1000))
    trivial = 200 if args.quick else 2000
    c.compile_package()
    root = workdir(n)
    services = c.LocalServices()
    try:
        with contextlib.nullcontext() if args.keep else services:
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
            emulator = emulator_at_size(trivial)
            naive = naive_submit(n, sample) * n / sample
    finally:
        if args.keep:
            env = " ".join(f"{k}={os.environ[k]}" for k in services.vars())
            print(f"kept: cd {root} && {env} batchspec plan tasks.yaml", file=sys.stderr)
        else:
            shutil.rmtree(root, ignore_errors=True)
    plan_runs = [pr.seconds for pr in cli_plans]
    plan_rss = max(pr.peak_rss_mb for pr in cli_plans)
    submit = applied["submit_s"]
    peak = max(plan_rss, applied["peak_rss_mb"], counted["peak_rss_mb"])
    budget = request_budget(n)
    scaled = f" (the loop timed on {sample} tasks, its rate scaled to {n})" if sample < n else ""
    rows = [
        c.Row(
            f"submit {n} tasks",
            "s",
            submit,
            baseline=naive,
            ratio=naive / submit,
            target=">= 20x baseline",
            met=naive / submit >= 20,
            note=f"batchspec {n / submit:.0f} tasks/s, baseline {n / naive:.0f} tasks/s{scaled}",
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
            target=f"<= {budget}",
            met=counted["requests"] <= budget,
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
            f"emulator with {n} tasks: {trivial} more trivial tasks",
            "tasks/s",
            round(emulator["trivial_rate"], 1),
            target=">= 400 tasks/s",
            met=emulator["trivial_rate"] >= 400,
            note=f"its {emulator['pages']} list pages of 1,000 tasks, read in a row: the first "
            f"{emulator['first_page_s'] * 1000:.0f} ms, the last {emulator['last_page_s'] * 1000:.0f} ms",
        ),
        c.Row(
            f"whole apply ({n} uploads, tasks run)",
            "s",
            applied["seconds"],
            note=f"upload {applied['upload_s']:.1f} s, wait for tasks {applied['wait_s']:.1f} s "
            f"({n / applied['wait_s']:.0f} tasks/s), {applied['requests']} HTTP requests",
        ),
    ]
    return c.report(
        "tasks_10k" if n == 10_000 else f"tasks_{n // 1000}k" if n % 1000 == 0 else f"tasks_{n}",
        rows,
        quick=args.quick,
        check=args.check,
        params={"tasks": n, "naive_sample": sample, "apply": applied, "plan": counted, "emulator": emulator},
    )


if __name__ == "__main__":
    sys.exit(main())
