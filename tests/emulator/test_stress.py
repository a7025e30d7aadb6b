"""Many clients doing conflicting things at once: the server never fails, and when the dust
settles every active task of an active job on a pool with free nodes is waiting on a parent."""

from __future__ import annotations

import random
import threading
import time

import pytest
from azure.batch import models as bm
from azure.batch.models import CreateTasksError
from azure.core.exceptions import HttpResponseError

from emulator_support import pool_options, start_server, wait_for

OPS = ["pool", "resize", "job", "tasks", "deljob", "delpool", "term", "reboot", "disable",
       "enable", "tterm", "list"]  # fmt: skip
WEIGHTS = [5, 4, 5, 8, 0.5, 0.3, 0.5, 2, 1, 3, 2, 4]
COMMANDS = ["/bin/true", "/bin/sleep 0.2", "/bin/sh -c 'exit 3'"]


def _step(c, rng: random.Random, name: str) -> None:
    op = rng.choices(OPS, weights=WEIGHTS)[0]
    pool, job = f"p{rng.randrange(2)}", f"j{rng.randrange(3)}"
    if op == "pool":
        c.create_pool(pool_options(pool, nodes=rng.randrange(3), slots=2))
    elif op == "resize":
        how = rng.choice(["requeue", "terminate", "taskcompletion"])
        c.begin_resize_pool(
            pool,
            bm.BatchPoolResizeOptions(target_dedicated_nodes=rng.randrange(4), node_deallocation_option=how),
        )
    elif op == "job":
        c.create_job(
            bm.BatchJobCreateOptions(
                id=job, pool_info=bm.BatchPoolInfo(pool_id=pool), uses_task_dependencies=True
            )
        )
    elif op == "tasks":
        tasks = []
        for i in range(rng.randrange(1, 25)):
            parent = f"{name}-{i - 1}" if i and rng.random() < 0.3 else None
            tasks.append(
                bm.BatchTaskCreateOptions(
                    id=f"{name}-{i}",
                    command_line=rng.choice(COMMANDS),
                    depends_on=bm.BatchTaskDependencies(task_ids=[parent]) if parent else None,
                )
            )
        c.create_tasks(job, tasks)
    elif op == "deljob":
        c.begin_delete_job(job)
    elif op == "delpool":
        c.begin_delete_pool(pool)
    elif op == "term":
        c.begin_terminate_job(job, {"terminateReason": "stress"})
    elif op == "reboot":
        nodes = list(c.list_nodes(pool))
        if nodes:
            c.begin_reboot_node(pool, nodes[0].id, {"nodeRebootOption": "requeue"})
    elif op == "disable":
        how = rng.choice(["requeue", "terminate", "wait"])
        c.begin_disable_job(job, bm.BatchJobDisableOptions(disable_tasks=how))
    elif op == "enable":
        c.begin_enable_job(job)
    elif op == "tterm":
        tasks = list(c.list_tasks(job, max_results=5))
        if tasks:
            c.terminate_task(job, tasks[0].id)
    else:
        list(c.list_tasks(job, filter="state eq 'running'"))
        c.get_job_task_counts(job)


@pytest.mark.slow
def test_concurrent_conflicting_operations_never_break_the_server(tmp_path):
    srv = start_server(tmp_path / "data")
    failures: list[str] = []
    try:

        def worker(w: int) -> None:
            c, rng = srv.client(), random.Random(w)
            for step in range(40):
                try:
                    _step(c, rng, f"t{w}-{step}")
                except HttpResponseError as exc:  # conflicts are expected; server faults not
                    if (exc.status_code or 0) >= 500:
                        failures.append(f"{exc.status_code}: {exc}")
                except CreateTasksError as exc:  # create_tasks wraps the 4xx of a chunk
                    for err in exc.errors:
                        if not isinstance(err, HttpResponseError) or err.status_code >= 500:
                            failures.append(repr(err))

        threads = [threading.Thread(target=worker, args=(w,)) for w in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not failures

        c = srv.client()

        def settled() -> bool:
            pools = {p.id: p for p in c.list_pools()}
            return all(p.allocation_state == "steady" for p in pools.values())

        wait_for(settled, 30, interval=0.2)
        time.sleep(1)  # the last short tasks finish
        for job in c.list_jobs():
            pool = next((p for p in c.list_pools() if p.id == job.pool_info.pool_id), None)
            if job.state != "active" or pool is None or pool.state != "active":
                continue
            if not any(n.state in ("idle", "running") for n in c.list_nodes(pool.id)):
                continue
            wait_for(lambda j=job.id: c.get_job_task_counts(j).task_counts.running == 0, 20)
            tasks = {t.id: t for t in c.list_tasks(job.id)}
            for t in tasks.values():
                if t.state != "active":
                    continue
                parents = [tasks.get(d) for d in (t.depends_on.task_ids if t.depends_on else [])]
                assert any(
                    p is None or p.state != "completed" or p.execution_info.result != "success"
                    for p in parents
                ), f"{job.id}/{t.id} is active with nothing to wait for"
    finally:
        srv.stop()
    assert "Traceback" not in srv.log.read_text()
