"""Jobs and tasks end to end: scheduling, exit codes, retries, limits, dependencies, files,
listing, job completion rules, concurrency."""

from __future__ import annotations

import threading
import time

import pytest
from azure.batch import models as bm
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError

from emulator_support import (
    new_job,
    pool_options,
    ready_pool,
    unique,
    wait_for,
    wait_job_done,
    wait_pool_ready,
)


def sh(code: str) -> str:
    """A command line running `code` under /bin/sh (Batch itself runs no shell)."""
    return f"/bin/sh -c '{code}'"


def task(task_id: str, command: str, **kwargs) -> bm.BatchTaskCreateOptions:
    return bm.BatchTaskCreateOptions(id=task_id, command_line=command, **kwargs)


def _running(client, pool_id: str, name: str, task_id: str) -> str:
    """A new job on the pool whose task `task_id` is running (a 30 s sleep)."""
    job_id = unique(name)
    client.create_job(bm.BatchJobCreateOptions(id=job_id, pool_info=bm.BatchPoolInfo(pool_id=pool_id)))
    client.create_task(job_id, task(task_id, "/bin/sleep 30"))
    wait_for(lambda: client.get_task(job_id, task_id).state == "running", 10)
    return job_id


def test_200_tasks_over_3_nodes_x_2_slots_complete_with_their_exit_codes(client, job, shared_pool):
    codes = {f"t{i:03d}": (0 if i % 4 else i % 7 + 1) for i in range(200)}
    client.create_tasks(job, [task(tid, sh(f"exit {c}")) for tid, c in codes.items()])
    counts = wait_job_done(client, job, 200, timeout=90)
    failed = sum(1 for c in codes.values() if c)
    assert counts.task_counts.completed == 200
    assert counts.task_counts.failed == failed
    assert counts.task_counts.succeeded == 200 - failed
    assert counts.task_counts.active == counts.task_counts.running == 0
    assert counts.task_slot_counts.completed == 200
    tasks = list(client.list_tasks(job))
    assert len(tasks) == 200
    nodes_used = set()
    for t in tasks:
        assert t.state == "completed"
        assert t.execution_info.exit_code == codes[t.id], t.id
        assert t.execution_info.result == ("success" if codes[t.id] == 0 else "failure")
        if codes[t.id]:
            assert t.execution_info.failure_info.code == "FailureExitCode"
        assert t.node_info.pool_id == shared_pool
        nodes_used.add(t.node_info.node_id)
        assert t.execution_info.start_time <= t.execution_info.end_time
    assert len(nodes_used) == 3


def test_failed_task_is_retried_up_to_max_task_retry_count(client, job, tmp_path):
    # Fails twice, then succeeds. Every node is this host, so an absolute path counts the
    # attempts wherever the retries land.
    counter = tmp_path / "attempts"
    script = f"echo x >> {counter}; [ $(wc -l < {counter}) -ge 3 ]"
    constraints = bm.BatchTaskConstraints(max_task_retry_count=5)
    client.create_task(job, task("flaky", sh(script), constraints=constraints))
    client.create_task(
        job,
        task("hopeless", sh("exit 9"), constraints=bm.BatchTaskConstraints(max_task_retry_count=2)),
    )
    wait_job_done(client, job, 2)
    flaky = client.get_task(job, "flaky")
    hopeless = client.get_task(job, "hopeless")
    assert flaky.execution_info.result == "success"
    assert flaky.execution_info.retry_count == 2
    assert counter.read_text() == "x\n" * 3
    assert hopeless.execution_info.retry_count == 2
    assert hopeless.execution_info.exit_code == 9
    assert hopeless.execution_info.last_retry_time is not None


def test_job_max_task_retry_count_applies_to_tasks_without_their_own(client, shared_pool):
    job_id = new_job(
        client, shared_pool, "jretry", constraints=bm.BatchJobConstraints(max_task_retry_count=1)
    )
    client.create_task(job_id, task("once-more", sh("exit 1")))
    wait_job_done(client, job_id, 1)
    assert client.get_task(job_id, "once-more").execution_info.retry_count == 1


def test_task_exceeding_max_wall_clock_time_is_killed(client, job):
    constraints = bm.BatchTaskConstraints(max_wall_clock_time="PT1S")
    client.create_task(job, task("sleepy", "/bin/sleep 30", constraints=constraints))
    wait_job_done(client, job, 1, timeout=20)
    info = client.get_task(job, "sleepy").execution_info
    assert info.result == "failure"
    # The agent reports the service's TaskEnded with the exceeded limit in the details.
    assert info.failure_info.code == "TaskEnded"
    assert any(d.name == "MaxWallClockTime" for d in info.failure_info.details)
    assert (info.end_time - info.start_time).total_seconds() < 10


def test_a_duration_is_read_by_one_grammar_at_add_and_at_run(client, job):
    """PT1.5H was accepted at task add and failed the task when it ran: one parser now refuses
    it at add (only seconds take a fraction), and what add accepts, the node agent runs."""
    with pytest.raises(HttpResponseError) as info:
        client.create_task(
            job, task("frac", "/bin/true", constraints=bm.BatchTaskConstraints(max_wall_clock_time="PT1.5H"))
        )
    assert info.value.status_code == 400
    client.create_task(
        job, task("weeks", "/bin/true", constraints=bm.BatchTaskConstraints(max_wall_clock_time="P1WT0.5S"))
    )
    done = wait_for(lambda: (t := client.get_task(job, "weeks")).state == "completed" and t)
    assert done.execution_info.result == "success"


def test_dependent_tasks_run_after_their_parents_and_block_on_failure(client, shared_pool):
    job_id = unique("deps")
    client.create_job(
        bm.BatchJobCreateOptions(
            id=job_id, pool_info=bm.BatchPoolInfo(pool_id=shared_pool), uses_task_dependencies=True
        )
    )
    out = "$AZ_BATCH_NODE_SHARED_DIR"
    client.create_tasks(
        job_id,
        [
            task("1", sh(f"sleep 0.3; date +%s%N > {out}/{job_id}-1")),
            task("2", sh(f"date +%s%N > {out}/{job_id}-2")),
            task(
                "after",
                "/bin/true",
                depends_on=bm.BatchTaskDependencies(task_id_ranges=[bm.BatchTaskIdRange(start=1, end=2)]),
            ),
            task("fails", sh("exit 1")),
            task("blocked", "/bin/true", depends_on=bm.BatchTaskDependencies(task_ids=["fails"])),
            task(
                "fails-but-satisfies",
                sh("exit 2"),
                exit_conditions=bm.ExitConditions(
                    exit_codes=[
                        bm.ExitCodeMapping(
                            code=2,
                            exit_options=bm.ExitOptions(dependency_action="satisfy"),
                        )
                    ]
                ),
            ),
            task(
                "unblocked",
                "/bin/true",
                depends_on=bm.BatchTaskDependencies(task_ids=["fails-but-satisfies"]),
            ),
        ],
    )
    wait_job_done(client, job_id, 6)
    after = client.get_task(job_id, "after")
    parents = [client.get_task(job_id, t) for t in ("1", "2")]
    assert after.execution_info.start_time >= max(p.execution_info.end_time for p in parents)
    assert client.get_task(job_id, "unblocked").execution_info.result == "success"
    assert client.get_task(job_id, "blocked").state == "active"


def test_a_parent_deleted_after_it_succeeded_holds_its_dependant_back_again(client, shared_pool, tmp_path):
    """The scheduler remembers which parents a waiting task has seen succeed; deleting one of
    them must make it look again (the parent is gone, so the dependant waits)."""
    job_id = unique("deps")
    client.create_job(
        bm.BatchJobCreateOptions(
            id=job_id, pool_info=bm.BatchPoolInfo(pool_id=shared_pool), uses_task_dependencies=True
        )
    )
    gate = tmp_path / "gate"  # on this host, which every emulated node shares
    client.create_tasks(
        job_id,
        [
            task("early", "/bin/true"),
            task("late", sh(f"while [ ! -f {gate} ]; do sleep 0.05; done")),
            task("child", "/bin/true", depends_on=bm.BatchTaskDependencies(task_ids=["early", "late"])),
        ],
    )
    wait_for(lambda: client.get_task(job_id, "early").state == "completed", 20)
    time.sleep(0.3)  # the child has been looked at with early done and late running
    client.delete_task(job_id, "early")
    client.create_task(job_id, task("opener", sh(f"touch {gate}")))
    wait_for(lambda: client.get_task(job_id, "late").state == "completed", 20)
    time.sleep(0.5)
    assert client.get_task(job_id, "child").state == "active"  # its parent "early" is gone
    client.create_task(job_id, task("early", "/bin/true"))
    wait_for(lambda: client.get_task(job_id, "child").state == "completed", 20)


def test_dependencies_need_uses_task_dependencies_on_the_job(client, job):
    with pytest.raises(HttpResponseError) as info:
        client.create_task(job, task("d", "/bin/true", depends_on=bm.BatchTaskDependencies(task_ids=["x"])))
    assert info.value.error.code == "TaskDependenciesNotSpecifiedOnJob"


def test_a_dependency_list_over_64000_characters_is_refused(client, shared_pool):
    job_id = unique("deps")
    client.create_job(
        bm.BatchJobCreateOptions(
            id=job_id, pool_info=bm.BatchPoolInfo(pool_id=shared_pool), uses_task_dependencies=True
        )
    )
    ids = [f"{i:063d}" for i in range(1000)]  # 63,000 characters: accepted
    client.create_task(job_id, task("ok", "/bin/true", depends_on=bm.BatchTaskDependencies(task_ids=ids)))
    with pytest.raises(HttpResponseError) as info:
        over = [*ids, "x" * 1001]
        client.create_task(
            job_id, task("over", "/bin/true", depends_on=bm.BatchTaskDependencies(task_ids=over))
        )
    assert info.value.error.code == "TaskDependencyListTooLong"


def test_stdout_and_stderr_can_be_read_back_whole_and_by_byte_range(client, job):
    client.create_task(
        job,
        task(
            "io",
            "python3 -c \"import sys; print('0123456789abcdef'); print('oops', file=sys.stderr)\"",
        ),
    )
    wait_job_done(client, job, 1)
    stdout = b"".join(client.download_task_file(job, "io", "stdout.txt"))
    assert stdout == b"0123456789abcdef\n"
    assert b"".join(client.download_task_file(job, "io", "stderr.txt")) == b"oops\n"
    part = b"".join(client.download_task_file(job, "io", "stdout.txt", ocp_range="bytes=2-5"))
    assert part == b"2345"
    props = client.get_task_file_properties(job, "io", "stdout.txt")
    assert props.content_length == 17
    assert props.is_directory is False
    names = {f.name: f for f in client.list_task_files(job, "io", recursive=True)}
    assert names["stdout.txt"].properties.content_length == 17
    assert names["wd"].is_directory
    with pytest.raises(ResourceNotFoundError):
        b"".join(client.download_task_file(job, "io", "no-such-file.txt"))
    with pytest.raises(HttpResponseError):
        b"".join(client.download_task_file(job, "io", "../../../../../../etc/passwd"))


def test_working_dir_files_are_listed_and_readable(client, job):
    client.create_task(job, task("wd", sh("mkdir -p sub && echo deep > sub/f.txt")))
    wait_job_done(client, job, 1)
    names = {f.name for f in client.list_task_files(job, "wd", recursive=True)}
    assert "wd/sub/f.txt" in names
    assert b"".join(client.download_task_file(job, "wd", "wd/sub/f.txt")) == b"deep\n"
    info = client.get_task(job, "wd").node_info
    recent = client.get_node(info.pool_id, info.node_id).recent_tasks
    mine = [r for r in recent if r.job_id == job and r.task_id == "wd"]
    assert len(mine) == 1
    assert mine[0].task_state == "completed" and mine[0].execution_info.exit_code == 0


def test_add_collection_reports_task_exists_per_task(client, job):
    client.create_task(job, task("dup", "/bin/true"))
    result = client.create_task_collection(
        job,
        bm.BatchTaskGroup(
            task_values=[task("dup", "/bin/true"), task("fresh", "/bin/true"), task("bad id!", "x")]
        ),
    )
    by_id = {r.task_id: r for r in result.result_values}
    assert by_id["fresh"].status == "success"
    assert by_id["dup"].status == "clienterror"
    assert by_id["dup"].error.code == "TaskExists"
    assert by_id["bad id!"].error.code == "InvalidPropertyValue"


def test_add_collection_over_100_tasks_is_refused_and_sdk_splits_it(client, job):
    with pytest.raises(HttpResponseError) as info:
        client.create_task_collection(
            job, bm.BatchTaskGroup(task_values=[task(f"x{i}", "/bin/true") for i in range(101)])
        )
    assert info.value.error.code == "RequestBodyTooLarge"
    # The SDK's create_tasks chunks by 100 itself.
    result = client.create_tasks(job, [task(f"y{i}", "/bin/true") for i in range(150)])
    assert len(result.result_values) == 150


def test_create_task_twice_is_task_exists_and_unknown_job_is_job_not_found(client, job):
    client.create_task(job, task("once", "/bin/true"))
    with pytest.raises(ResourceExistsError) as info:
        client.create_task(job, task("ONCE", "/bin/true"))
    assert info.value.error.code == "TaskExists"
    with pytest.raises(ResourceNotFoundError) as info:
        client.create_task(unique("nojob"), task("t", "/bin/true"))
    assert info.value.error.code == "JobNotFound"
    with pytest.raises(ResourceNotFoundError) as info:
        client.get_task(job, "never-added")
    assert info.value.error.code == "TaskNotFound"


def test_list_tasks_pages_filters_and_selects(client, job):
    client.create_tasks(job, [task(f"p{i:02d}", sh(f"exit {1 if i % 3 == 0 else 0}")) for i in range(25)])
    wait_job_done(client, job, 25)
    pages = list(client.list_tasks(job, max_results=10).by_page())
    assert [len(list(p)) for p in pages] == [10, 10, 5]
    failed = list(
        client.list_tasks(
            job,
            filter="state eq 'completed' and executionInfo/result eq 'failure'",
            select=["id", "state", "executionInfo"],
            max_results=3,
        )
    )
    assert sorted(t.id for t in failed) == [f"p{i:02d}" for i in range(0, 25, 3)]
    assert all(t.execution_info.exit_code == 1 for t in failed)
    assert all(t.command_line is None for t in failed)  # not selected
    either = list(client.list_tasks(job, filter="(id eq 'p01' or id eq 'p02') and state eq 'completed'"))
    assert sorted(t.id for t in either) == ["p01", "p02"]
    prefixed = list(client.list_tasks(job, filter="startswith(id, 'p1')"))
    assert len(prefixed) == 10
    one = client.get_task(job, "p03", select=["id", "executionInfo"])
    assert one.id == "p03" and one.execution_info.exit_code == 1
    assert one.command_line is None
    with pytest.raises(HttpResponseError) as info:
        list(client.list_tasks(job, filter="state eq"))
    assert info.value.error.code == "InvalidQueryParameterValue"


def test_list_tasks_by_id_ranges_covers_every_task_once_in_id_order(client, job):
    ids = [f"r{i:02d}" for i in range(12)] + ["R05x", "Q1", "s-1", "r_9"]
    client.create_tasks(job, [task(i, "/bin/true") for i in ids])
    seen = []
    for ranged in ("id lt 'r03'", "id ge 'r03' and id lt 'r08'", "id ge 'r08'"):
        pages = list(client.list_tasks(job, filter=ranged, select=["id"], max_results=2).by_page())
        got = [t.id for page in pages for t in page]
        assert got == sorted(got), ranged
        assert all(len(list(page)) <= 2 for page in pages)
        seen += got
    assert sorted(seen) == sorted(ids)
    # Ids compare without case where they differ only by it, as the service's filters do.
    assert [t.id for t in client.list_tasks(job, filter="id eq 'R03'")] == ["r03"]
    assert [t.id for t in client.list_tasks(job, filter="id ge 'r11' and state ne 'nope'")] == [
        "r11",
        "r_9",
        "s-1",
    ]


def test_terminate_running_task_ends_it_with_task_ended(client, job):
    client.create_task(job, task("long", "/bin/sleep 30"))
    wait_for(lambda: client.get_task(job, "long").state == "running", 10)
    client.terminate_task(job, "long")
    wait_job_done(client, job, 1, timeout=15)
    info = client.get_task(job, "long").execution_info
    assert info.result == "failure"
    assert info.failure_info.code == "TaskEnded"


def test_reactivate_failed_task_runs_it_again(client, job, tmp_path):
    runs = tmp_path / "runs"
    client.create_task(job, task("again", sh(f"echo x >> {runs}; [ $(wc -l < {runs}) -ge 2 ]")))
    wait_job_done(client, job, 1)
    assert client.get_task(job, "again").execution_info.result == "failure"
    client.reactivate_task(job, "again")
    wait_for(lambda: client.get_task(job, "again").state == "completed", 10)
    info = client.get_task(job, "again").execution_info
    assert info.result == "success"
    assert info.retry_count == 0
    assert runs.read_text() == "x\nx\n"
    with pytest.raises(HttpResponseError) as exc:  # a task that succeeded cannot be reactivated
        client.reactivate_task(job, "again")
    assert exc.value.status_code == 409


def test_job_with_terminatejob_completes_when_all_tasks_complete(client, shared_pool):
    job_id = unique("auto")
    client.create_job(bm.BatchJobCreateOptions(id=job_id, pool_info=bm.BatchPoolInfo(pool_id=shared_pool)))
    client.create_tasks(job_id, [task(f"a{i}", "/bin/true") for i in range(5)])
    client.update_job(job_id, bm.BatchJobUpdateOptions(all_tasks_complete_mode="terminatejob"))
    wait_for(lambda: client.get_job(job_id).state == "completed", 20)
    job = client.get_job(job_id)
    assert job.execution_info.termination_reason == "AllTasksComplete"
    with pytest.raises(HttpResponseError) as info:
        client.create_task(job_id, task("late", "/bin/true"))
    assert info.value.error.code == "JobCompleted"


def test_task_failure_terminates_job_with_performexitoptionsjobaction(client, shared_pool):
    job_id = new_job(client, shared_pool, "onfail", task_failure_mode="performexitoptionsjobaction")
    client.create_task(job_id, task("boom", sh("exit 3")))
    wait_for(lambda: client.get_job(job_id).state == "completed", 20)
    assert client.get_job(job_id).execution_info.termination_reason == "TaskFailed"


def test_terminate_job_ends_running_tasks_and_keeps_active_ones(client, shared_pool):
    job_id = _running(client, shared_pool, "term", "running")
    # (the SDK needs an options body here: without one it fails to serialise the request)
    client.begin_terminate_job(job_id, {"terminateReason": "StopNow"}, polling_interval=0.1).result()
    wait_for(lambda: client.get_job(job_id).state == "completed", 20)
    assert client.get_task(job_id, "running").execution_info.failure_info.code == "TaskEnded"
    assert client.get_job(job_id).execution_info.termination_reason == "StopNow"


def test_job_delete_is_asynchronous_and_kills_its_tasks(client, shared_pool):
    job_id = _running(client, shared_pool, "jdel", "s")
    poller = client.begin_delete_job(job_id, polling_interval=0.05)
    assert client.get_job(job_id).state == "deleting"
    with pytest.raises(HttpResponseError) as info:
        client.create_task(job_id, task("late", "/bin/true"))
    assert info.value.error.code == "JobBeingDeleted"
    poller.result()
    with pytest.raises(ResourceNotFoundError):
        client.get_job(job_id)


def test_required_slots_are_counted_in_task_slot_counts(client, job):
    client.create_task(job, task("wide", "/bin/sleep 0.5", required_slots=2))
    wait_for(lambda: client.get_task(job, "wide").state == "running", 10)
    counts = client.get_job_task_counts(job)
    assert counts.task_counts.running == 1
    assert counts.task_slot_counts.running == 2
    wait_job_done(client, job, 1)


def test_concurrent_clients_adding_tasks_all_land(server, job):
    errors: list[BaseException] = []

    def add(worker: int) -> None:
        c = server.client()
        try:
            for batch in range(3):
                c.create_tasks(job, [task(f"w{worker}-{batch}-{i}", "/bin/true") for i in range(20)])
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=add, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    counts = wait_job_done(server.client(), job, 240, timeout=90)
    assert counts.task_counts.succeeded == 240


def test_job_max_wall_clock_time_terminates_the_job(client, shared_pool):
    job_id = new_job(
        client, shared_pool, "jwall", constraints=bm.BatchJobConstraints(max_wall_clock_time="PT1S")
    )
    client.create_task(job_id, task("forever", "/bin/sleep 60"))
    wait_for(lambda: client.get_job(job_id).state == "completed", 15)
    assert client.get_job(job_id).execution_info.termination_reason == "MaxWallClockTimeExpiry"
    assert client.get_task(job_id, "forever").execution_info.failure_info.code == "TaskEnded"


def test_higher_priority_job_runs_first_and_max_parallel_tasks_is_honoured(client):
    pool_id = ready_pool(client, "prio", slots=2)
    info = bm.BatchPoolInfo(pool_id=pool_id)
    low, high = unique("low"), unique("high")
    client.create_job(bm.BatchJobCreateOptions(id=low, pool_info=info, priority=0))
    client.create_job(bm.BatchJobCreateOptions(id=high, pool_info=info, priority=100, max_parallel_tasks=1))
    # Both slots busy, then queue low first and high second.
    client.create_tasks(low, [task(f"block{i}", "/bin/sleep 1") for i in range(2)])
    wait_for(lambda: client.get_job_task_counts(low).task_counts.running == 2, 10)
    client.create_tasks(low, [task(f"l{i}", "/bin/sleep 0.2") for i in range(4)])
    client.create_tasks(high, [task(f"h{i}", "/bin/sleep 0.2") for i in range(3)])
    wait_job_done(client, high, 3, timeout=30)
    wait_job_done(client, low, 6, timeout=30)
    highs = sorted((t.execution_info.start_time, t.execution_info.end_time) for t in client.list_tasks(high))
    lows = [t for t in client.list_tasks(low) if t.id.startswith("l")]
    # The high job's first task starts before any queued low task.
    assert highs[0][0] <= min(t.execution_info.start_time for t in lows)
    # maxParallelTasks=1: the high job's tasks never overlap.
    for (_, end), (start, _) in zip(highs, highs[1:], strict=False):
        assert start >= end
    client.begin_delete_pool(pool_id, polling_interval=0.1).result()


def test_replace_job_and_task_round_trip_what_get_returned(client, job):
    body = client.get_job(job)
    body.priority = 42
    body.metadata = [bm.BatchMetadataItem(name="owner", value="tests")]
    client.replace_job(job, body)
    fetched = client.get_job(job)
    assert fetched.priority == 42
    assert fetched.metadata[0].value == "tests"
    assert fetched.etag != body.etag

    client.create_task(job, task("slow", "/bin/sleep 30"))
    t = client.get_task(job, "slow")
    t.constraints = bm.BatchTaskConstraints(max_task_retry_count=3, max_wall_clock_time="PT1H")
    client.replace_task(job, "slow", t)
    assert client.get_task(job, "slow").constraints.max_task_retry_count == 3
    wait_for(lambda: client.get_task(job, "slow").state == "running", 10)


def test_delete_running_task_kills_it_and_it_is_gone(client, job, tmp_path):
    pid_file = tmp_path / "pid"
    client.create_task(job, task("doomed", sh(f"echo $$ > {pid_file}; exec sleep 60")))
    wait_for(lambda: pid_file.exists() and pid_file.read_text().strip(), 10)
    pid = int(pid_file.read_text())
    client.delete_task(job, "doomed")
    with pytest.raises(ResourceNotFoundError):
        client.get_task(job, "doomed")

    def gone() -> bool:
        try:
            with open(f"/proc/{pid}/stat") as fh:
                return fh.read().split(")")[-1].split()[0] == "Z"
        except FileNotFoundError:
            return True

    wait_for(gone, 10)


def test_delete_task_file_removes_it(client, job):
    client.create_task(job, task("files", sh("echo a > keep.txt; echo b > drop.txt")))
    wait_job_done(client, job, 1)
    client.delete_task_file(job, "files", "wd/drop.txt")
    names = {f.name for f in client.list_task_files(job, "files", recursive=True)}
    assert "wd/keep.txt" in names and "wd/drop.txt" not in names


def test_list_jobs_filters_by_state(client, shared_pool):
    prefix = unique("lj")
    for i in range(3):
        client.create_job(
            bm.BatchJobCreateOptions(id=f"{prefix}-{i}", pool_info=bm.BatchPoolInfo(pool_id=shared_pool))
        )
    client.begin_terminate_job(f"{prefix}-1", {"terminateReason": "x"}, polling_interval=0.1).result()
    active = {j.id for j in client.list_jobs(filter=f"state eq 'active' and startswith(id, '{prefix}')")}
    assert active == {f"{prefix}-0", f"{prefix}-2"}


def test_large_stdout_is_streamed_whole_and_by_range(client, job):
    # 3 MB of a repeating 16-byte pattern: bigger than the server's in-memory threshold.
    script = "import sys; sys.stdout.write('0123456789abcdef' * 196608)"
    client.create_task(job, task("big", f'python3 -c "{script}"'))
    wait_job_done(client, job, 1)
    data = b"".join(client.download_task_file(job, "big", "stdout.txt"))
    assert len(data) == 16 * 196608
    assert data[:16] == b"0123456789abcdef" and data[-16:] == b"0123456789abcdef"
    tail = b"".join(client.download_task_file(job, "big", "stdout.txt", ocp_range="bytes=1048570-3145727"))
    assert len(tail) == 3145727 - 1048570 + 1
    assert tail[:6] == b"abcdef"
    assert client.get_task_file_properties(job, "big", "stdout.txt").content_length == len(data)


def test_subtasks_of_an_ordinary_task_are_empty(client, job):
    client.create_task(job, task("plain", "/bin/true"))
    assert list(client.list_subtasks(job, "plain")) == []


def test_task_deleted_while_starting_releases_its_slot(client, job):
    # Add and delete at once, many times: whichever moment the delete lands in, the slot
    # must come back and the task must stay gone.
    for i in range(10):
        client.create_task(job, task(f"flash{i}", "/bin/sleep 5"))
        client.delete_task(job, f"flash{i}")
    client.create_tasks(job, [task(f"after{i}", "/bin/true") for i in range(6)])
    wait_job_done(client, job, 6, timeout=20)
    ids = {t.id for t in client.list_tasks(job)}
    assert ids == {f"after{i}" for i in range(6)}


def test_disabled_job_runs_nothing_can_move_pool_and_resumes_when_enabled(client, shared_pool):
    other = unique("other")
    client.create_pool(pool_options(other, nodes=1))
    job_id = _running(client, shared_pool, "dis", "running")
    client.begin_disable_job(
        job_id, bm.BatchJobDisableOptions(disable_tasks="requeue"), polling_interval=0.05
    ).result()
    assert client.get_job(job_id).state == "disabled"
    requeued = client.get_task(job_id, "running")
    assert requeued.state == "active" and requeued.execution_info.requeue_count == 1
    client.create_task(job_id, task("waiting", "/bin/true"))
    wait_pool_ready(client, other, 1)
    body = client.get_job(job_id)
    body.pool_info = bm.BatchPoolInfo(pool_id=other)
    client.replace_job(job_id, body)  # allowed only while disabled
    assert client.get_task(job_id, "waiting").state == "active"
    client.terminate_task(job_id, "running")  # not running now: it completes at once
    ended = client.get_task(job_id, "running")
    assert ended.state == "completed" and ended.execution_info.failure_info.code == "TaskEnded"
    client.begin_enable_job(job_id, polling_interval=0.05).result()
    wait_for(lambda: client.get_task(job_id, "waiting").state == "completed", 10)
    assert client.get_task(job_id, "waiting").node_info.pool_id == other
    client.begin_terminate_job(job_id, {"terminateReason": "done"}, polling_interval=0.05).result()
    client.begin_delete_pool(other, polling_interval=0.05).result()


def test_unlimited_retries_run_until_success(client, job, tmp_path):
    counter = tmp_path / "attempts"
    script = f"echo x >> {counter}; [ $(wc -l < {counter}) -ge 4 ]"
    client.create_task(
        job,
        task("stubborn", sh(script), constraints=bm.BatchTaskConstraints(max_task_retry_count=-1)),
    )
    wait_job_done(client, job, 1)
    info = client.get_task(job, "stubborn").execution_info
    assert info.result == "success" and info.retry_count == 3


def test_plain_range_header_works_like_ocp_range(client, job):
    from azure.core.rest import HttpRequest

    client.create_task(job, task("r", "python3 -c \"print('abcdefghij')\""))
    wait_job_done(client, job, 1)
    response = client.send_request(
        HttpRequest(
            "GET",
            f"/jobs/{job}/tasks/r/files/stdout.txt?api-version=2025-06-01",
            headers={"Range": "bytes=3-5"},
        ),
        stream=True,
    )
    assert response.status_code == 200
    assert response.read() == b"def"
    assert response.headers["ocp-batch-file-isdirectory"] == "false"


def _upload_to_nowhere(azurite: str) -> list[bm.OutputFile]:
    """An output file whose upload fails: its container does not exist."""
    container = bm.OutputFileBlobContainerDestination(container_url=f"{azurite}/no-such-container")
    return [
        bm.OutputFile(
            file_pattern="out.txt",
            destination=bm.OutputFileDestination(container=container),
            upload_options=bm.OutputFileUploadConfiguration(upload_condition="taskcompletion"),
        )
    ]


def test_only_a_nonzero_exit_code_is_retried(client, job, azurite):
    """BatchTaskExecutionInfo.retryCount: "Task application failures (non-zero exit code) are
    retried, pre-processing errors (the Task could not be run) and file upload errors are not"."""
    retry = bm.BatchTaskConstraints(max_task_retry_count=2)
    missing = bm.ResourceFile(http_url=f"{azurite}/no-such-container/x", file_path="x")
    client.create_tasks(
        job,
        [
            task("exits-nonzero", sh("exit 4"), constraints=retry),
            task("no-program", "/no/such/program", constraints=retry),
            task("no-resource", "/bin/true", constraints=retry, resource_files=[missing]),
            task(
                "upload-fails",
                sh("echo hi > out.txt"),
                constraints=retry,
                output_files=_upload_to_nowhere(azurite),
            ),
        ],
    )
    wait_job_done(client, job, 4)
    got = {
        t.id: (t.execution_info.retry_count, t.execution_info.failure_info.code)
        for t in client.list_tasks(job)
    }
    assert got["exits-nonzero"] == (2, "FailureExitCode")
    assert got["no-program"] == (0, "CommandProgramNotFound")
    assert got["no-resource"][0] == 0 and got["no-resource"][1].startswith("Blob"), got
    assert got["upload-fails"][0] == 0 and got["upload-fails"][1].startswith("FileUpload"), got


def test_file_upload_error_exit_options_apply_after_exit_code_0_unless_the_code_is_listed(
    client, shared_pool, azurite
):
    """ExitConditions.fileUploadError: "If the Task exited with an exit code that was specified
    via exitCodes or exitCodeRanges, and then encountered a file upload error, then the action
    specified by the exit code takes precedence"."""
    keep_going = bm.ExitOptions(job_action="none")
    listed = bm.ExitCodeMapping(code=0, exit_options=bm.ExitOptions(job_action="disable"))
    expected = {
        "upload-error-options": (bm.ExitConditions(file_upload_error=keep_going), "active"),
        "exit-code-listed": (
            bm.ExitConditions(exit_codes=[listed], file_upload_error=keep_going),
            "disabled",
        ),
        "no-options": (bm.ExitConditions(), "completed"),  # default: terminate the job
    }
    jobs = {}
    for name, (conditions, _) in expected.items():
        jobs[name] = unique(name)
        info = bm.BatchPoolInfo(pool_id=shared_pool)
        client.create_job(
            bm.BatchJobCreateOptions(
                id=jobs[name], pool_info=info, task_failure_mode="performexitoptionsjobaction"
            )
        )
        client.create_task(
            jobs[name],
            task(
                "t",
                sh("echo hi > out.txt"),
                exit_conditions=conditions,
                output_files=_upload_to_nowhere(azurite),
            ),
        )
    for name, job_id in jobs.items():
        wait_for(lambda j=job_id: client.get_task(j, "t").state == "completed", 20)
        info = client.get_task(job_id, "t").execution_info
        assert (info.exit_code, info.result) == (0, "failure"), name
        wait_for(lambda j=job_id, n=name: client.get_job(j).state == expected[n][1], 10)
        client.begin_delete_job(job_id, polling_interval=0.05).result()


def test_a_job_action_on_a_job_whose_on_task_failure_is_noaction_is_refused(client, job):
    """ExitOptions.jobAction: with the job's onTaskFailure noaction, specifying it "returns an
    error and the add Task request fails with an invalid property value error" (400)."""
    stop = bm.ExitOptions(job_action="terminate")
    for conditions in (
        bm.ExitConditions(default=stop),
        bm.ExitConditions(exit_codes=[bm.ExitCodeMapping(code=3, exit_options=stop)]),
    ):
        with pytest.raises(HttpResponseError) as info:
            client.create_task(job, task("t", "/bin/true", exit_conditions=conditions))
        assert (info.value.status_code, info.value.error.code) == (400, "InvalidPropertyValue")
    satisfy = bm.ExitOptions(dependency_action="satisfy")  # other exit options are fine
    client.create_task(job, task("t", "/bin/true", exit_conditions=bm.ExitConditions(default=satisfy)))


def test_deleting_a_task_or_a_job_removes_their_directories_from_the_nodes(client, shared_pool, tmp_path):
    """Tasks_DeleteTask: "all of the files in its directory on the Compute Node where it ran
    are also deleted"; Jobs_DeleteJob deletes its tasks' working directories too."""
    from pathlib import Path

    job_id = unique("dirs")
    client.create_job(bm.BatchJobCreateOptions(id=job_id, pool_info=bm.BatchPoolInfo(pool_id=shared_pool)))
    for name in ("one", "two"):
        client.create_task(job_id, task(name, sh(f'echo "$AZ_BATCH_TASK_DIR" > {tmp_path / name}')))
    wait_job_done(client, job_id, 2)
    one, two = (Path((tmp_path / n).read_text().strip()) for n in ("one", "two"))
    assert one.is_dir() and two.is_dir()
    client.delete_task(job_id, "one")
    wait_for(lambda: not one.exists(), 10)
    assert two.is_dir()
    client.begin_delete_job(job_id, polling_interval=0.05).result()
    assert not two.exists() and not two.parent.parent.exists()  # workitems/<job>/ is gone


@pytest.mark.parametrize(
    ("order", "expected"),
    [(None, ["a", "b", "a", "b", "a", "b"]), ("creationTime", ["a", "a", "a", "b", "b", "b"])],
)
def test_equal_priority_jobs_share_the_pool_unless_job_default_order_is_creation_time(
    client, order, expected
):
    """BatchJobDefaultOrder: none (the default) schedules "uniformly from all equal-priority jobs";
    creationTime serves the jobs created earlier first."""
    pool_id = unique("order")
    policy = bm.BatchTaskSchedulingPolicy(node_fill_type="spread", job_default_order=order)
    client.create_pool(pool_options(pool_id, nodes=0, slots=1, task_scheduling_policy=policy))
    wait_pool_ready(client, pool_id, 0)
    jobs = {name: unique(name) for name in ("a", "b")}
    for name, job_id in jobs.items():
        client.create_job(bm.BatchJobCreateOptions(id=job_id, pool_info=bm.BatchPoolInfo(pool_id=pool_id)))
        client.create_tasks(job_id, [task(f"{name}{i}", "/bin/sleep 0.05") for i in range(3)])
    client.begin_resize_pool(pool_id, bm.BatchPoolResizeOptions(target_dedicated_nodes=1))
    for job_id in jobs.values():
        wait_job_done(client, job_id, 3)
    started = sorted(
        (t.execution_info.start_time, name)
        for name, job_id in jobs.items()
        for t in client.list_tasks(job_id)
    )
    assert [name for _, name in started] == expected
    client.begin_delete_pool(pool_id, polling_interval=0.05).result()
