"""`batchspec logs`: a task's stdout and stderr from its node while it runs, and from the spec's
logs container once it completed, after its pool is gone, earlier attempts too; without a task,
failures by cause."""

from __future__ import annotations

import re
import time

from support.workspace import Workspace

FAILING = (
    'command=python3 -c \'import sys; print("out line"); '
    'sys.stderr.write("boom: bad input\\n"); sys.exit(7)\''
)


def test_logs_of_failed_tasks_outlive_their_pool(workspace: Workspace, batch_client):
    assert workspace.apply("--var", FAILING).returncode == 3
    listing = workspace.run("logs", "spec.yaml", "--var", FAILING)
    assert listing.returncode == 0, listing.stderr
    said = " ".join(listing.stdout.split())
    assert "exit code 7: 3 task(s)" in said
    assert "failed: topn-taskdata0, topn-taskdata1, topn-taskdata2" in said
    # The pool goes (as a replaced pool or a destroy takes it): the nodes' files go with it.
    batch_client.begin_delete_pool(f"{workspace.name}-pool", polling_interval=0.2).result()
    stderr = workspace.run("logs", "spec.yaml", "topn-taskdata1", "--stderr", "--var", FAILING)
    assert (stderr.returncode, stderr.stdout) == (0, "boom: bad input\n"), stderr.stderr
    stdout = workspace.run("logs", "spec.yaml", "topn-taskdata1", "--var", FAILING)
    assert stdout.stdout == "out line\n"
    followed = workspace.run("logs", "spec.yaml", "topn-taskdata2", "--stderr", "--follow", "--var", FAILING)
    assert followed.stdout == "boom: bad input\n"  # completed, node gone: the stored copy


def test_follow_prints_a_running_tasks_output_until_it_ends(workspace: Workspace, batch_client):
    ticks = "command=python3 -u -c 'import time; [(print(\"tick\", i), time.sleep(0.4)) for i in range(6)]'"
    apply = workspace.popen_apply("--var", ticks)
    try:
        job = f"{workspace.name}-job"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            tasks = (
                {t.id: t.state for t in batch_client.list_tasks(job)} if _exists(batch_client, job) else {}
            )
            if tasks.get("topn-taskdata0") == "running":
                break
            time.sleep(0.1)
        followed = workspace.run("logs", "spec.yaml", "topn-taskdata0", "--follow", "--var", ticks)
        assert followed.returncode == 0, followed.stderr
        assert followed.stdout.splitlines() == [f"tick {i}" for i in range(6)]
    finally:
        apply.communicate(timeout=120)
    assert apply.returncode == 0


def test_an_unknown_task_is_bad_input(workspace: Workspace):
    assert workspace.apply().returncode == 0
    result = workspace.run("logs", "spec.yaml", "no-such-task")
    assert result.returncode == 2 and "the spec has no task 'no-such-task'" in result.stderr
    assert "Traceback" not in result.stderr


def _exists(client, job_id: str) -> bool:
    from azure.core.exceptions import ResourceNotFoundError

    try:
        client.get_job(job_id)
    except ResourceNotFoundError:
        return False
    return True


def test_start_task_logs_are_kept_and_outlive_their_node(workspace: Workspace, batch_client, blob_service):
    text = workspace.spec.read_text()
    failing = text.replace("commandLine: cp ", "commandLine: echo no disk space left >&2; exit 9; cp ")
    workspace.spec.write_text(failing)
    assert workspace.apply().returncode == 1
    pool_id = f"{workspace.name}-pool"
    # apply stops at the first failed start task it sees, keeping the logs of those ended so far
    kept = {b.name for b in blob_service.get_container_client(f"{workspace.name}-logs").list_blobs()}
    stored = sorted({name.split("/")[1] for name in kept if name.startswith(f"{pool_id}/")})
    assert stored
    for node in stored:
        assert {f"{pool_id}/{node}/startup/stderr.txt", f"{pool_id}/{node}/startup/stdout.txt"} <= kept
    failed = [n.id for n in batch_client.list_nodes(pool_id) if n.state == "starttaskfailed"]
    # The next apply replaces those nodes, keeping the logs of any that failed later first:
    # their start task's words stay readable.
    workspace.spec.write_text(text)
    assert workspace.apply().returncode == 0
    assert not set(failed) & {n.id for n in batch_client.list_nodes(pool_id)}
    for node in failed:
        stderr = workspace.run("logs", "spec.yaml", "--start-task", node, "--stderr")
        assert (stderr.returncode, stderr.stdout) == (0, "no disk space left\n"), stderr.stderr
    # A node that is there: its own file, which the kept copy matches.
    live = next(iter(batch_client.list_nodes(pool_id))).id
    assert f"{pool_id}/{live}/startup/stdout.txt" in {
        b.name for b in blob_service.get_container_client(f"{workspace.name}-logs").list_blobs()
    }
    assert workspace.run("logs", "spec.yaml", "--start-task", live).returncode == 0
    unknown = workspace.run("logs", "spec.yaml", "--start-task", "no-such-node")
    assert unknown.returncode == 1 and "no start task stdout.txt for node 'no-such-node'" in unknown.stderr


# Fails its first two attempts, each saying which it is; the counter lives in the task directory,
# which a retry on the same node keeps (the pool has one node). The other tasks succeed at once.
FLAKY = (
    "command=python3 -c 'import os, sys, time\n"
    'if "taskdata1.txt" not in sys.argv: sys.exit(0)\n'
    'p = os.path.join(os.environ["AZ_BATCH_TASK_DIR"], "n")\n'
    "n = int(open(p).read()) + 1 if os.path.exists(p) else 1\n"
    'open(p, "w").write(str(n)); print("attempt", n, file=sys.stderr); time.sleep(2.5)\n'
    "sys.exit(0 if n == 3 else 5)'"
)


def test_every_attempt_s_logs_are_kept_while_apply_waits_and_outlive_the_job(
    workspace: Workspace, batch_client
):
    workspace.write_spec(retries=2, nodes=1)
    assert workspace.apply("--var", FLAKY).returncode == 0, workspace.runs[-1].stderr

    def attempt(n: int):
        return workspace.run(
            "logs", "spec.yaml", "topn-taskdata1", "--stderr", "--attempt", str(n), "--var", FLAKY
        )

    assert [attempt(n).stdout for n in (1, 2, 3)] == ["attempt 1\n", "attempt 2\n", "attempt 3\n"]
    beyond = attempt(4)
    assert beyond.returncode == 2 and "has run 3 attempt(s), not 4" in beyond.stderr
    none = workspace.run("logs", "spec.yaml", "topn-taskdata0", "--attempt", "1", "--var", FLAKY)
    assert none.returncode == 0 and none.stdout == ""  # one attempt: the first is the last

    # The run report draws a bar per attempt: the earlier two from what apply saw of them.
    assert workspace.run("report", "spec.yaml", "--out", "r.html", "--var", FLAKY).returncode == 0
    page = (workspace.root / "r.html").read_text()
    bars = re.findall(r"<rect class='([^']*)' data-task='topn-taskdata1'[^>]*><title>([^<]*)", page)
    assert [c for c, _ in bars] == ["attempt failure earlier"] * 2 + ["attempt success moved"], bars
    node = next(n.id for n in batch_client.list_nodes(f"{workspace.name}-pool"))
    earlier = [tip for _, tip in bars[:2]]
    assert [tip.split(", ")[0].split(": ")[1] for tip in earlier] == ["attempt 1 of 3", "attempt 2 of 3"]
    assert all(tip.endswith(f"on {node}") for tip in earlier), earlier

    # The job goes (a replaced job or a destroy takes it): the kept attempts stay readable.
    batch_client.begin_delete_job(f"{workspace.name}-job", polling_interval=0.2).result()
    assert attempt(2).stdout == "attempt 2\n"
    gone = attempt(3)
    assert gone.returncode == 1 and "attempt 3 of task 'topn-taskdata1' was not kept" in gone.stderr
    assert "kept: 1, 2 and the last attempt" in " ".join(gone.stderr.split())
