"""Durability and faults: a kill -9 mid-run loses nothing; injected faults are retried."""

from __future__ import annotations

import subprocess

import pytest
from azure.batch import models as bm
from azure.core.exceptions import HttpResponseError

from emulator_support import pool_options, start_server, wait_for, wait_job_done, wait_pool_ready
from support import services


@pytest.mark.slow
def test_kill_9_mid_run_then_restart_loses_nothing_and_requeues_running_tasks(tmp_path):
    data = tmp_path / "data"
    first = start_server(data)
    try:
        client = first.client()
        # Tasks succeed only after their node's start task finished (it runs again on restart).
        ready = "$AZ_BATCH_NODE_SHARED_DIR/ready"
        start = bm.BatchStartTask(
            command_line=f"/bin/sh -c 'rm -f {ready}; sleep 0.5; touch {ready}'",
            wait_for_success=True,
        )
        client.create_pool(pool_options("durable", nodes=2, slots=2, start_task=start))
        wait_pool_ready(client, "durable", 2)
        client.create_job(
            bm.BatchJobCreateOptions(id="durable-job", pool_info=bm.BatchPoolInfo(pool_id="durable"))
        )
        # A long task that only sleeps on its first attempt: it is running when the emulator
        # dies, and the restart must kill that orphaned process.
        once = tmp_path / "once"
        forever = "exec sleep 60"
        client.create_task(
            "durable-job",
            bm.BatchTaskCreateOptions(
                id="sleeper",
                command_line=f"/bin/sh -c '[ -f {once} ] && exit 0; echo $$ > {once}; {forever}'",
            ),
        )
        client.create_tasks(
            "durable-job",
            [
                bm.BatchTaskCreateOptions(
                    id=f"t{i:02d}", command_line=f"/bin/sh -c 'test -f {ready} && sleep 0.4'"
                )
                for i in range(24)
            ],
        )
        wait_for(lambda: once.exists() and once.read_text().strip(), 10)
        orphan = int(once.read_text())
        wait_for(lambda: client.get_job_task_counts("durable-job").task_counts.running > 1, 10)
        nodes_before = sorted(n.id for n in client.list_nodes("durable"))
        # A developer's process sitting in a node directory is not a task: it must survive.
        bystander = subprocess.Popen(["sleep", "60"], cwd=data / "nodes" / "durable" / nodes_before[0])
    finally:
        first.kill()

    second = start_server(data)
    try:
        client = second.client()
        assert client.get_pool("durable").target_dedicated_nodes == 2
        assert client.get_job("durable-job").state == "active"
        assert len(list(client.list_tasks("durable-job"))) == 25
        wait_for(lambda: not _alive(orphan), 10)
        assert bystander.poll() is None
        counts = wait_job_done(client, "durable-job", 25, timeout=60)
        assert counts.task_counts.succeeded == 25
        assert client.get_task("durable-job", "sleeper").execution_info.requeue_count == 1
        tasks = list(client.list_tasks("durable-job"))
        assert any(t.execution_info.requeue_count >= 1 for t in tasks)
        nodes = {n.id: n for n in client.list_nodes("durable")}
        assert sorted(nodes) == nodes_before
        # No task overlapped its node's start task of the new boot (waitForSuccess holds even
        # for nodes that were idle in the database when the emulator came back).
        for t in tasks:
            boot = nodes[t.node_info.node_id].start_task_info
            info = t.execution_info
            assert info.start_time >= boot.end_time or info.end_time <= boot.start_time, t.id
    finally:
        second.stop()
        bystander.kill()
        bystander.wait()


def test_injected_503s_and_dropped_connections_are_retried_by_the_sdk(tmp_path):
    srv = start_server(tmp_path / "data", "--fault-503-rate", "0.3", "--fault-latency-ms", "2", "--seed", "7")
    try:
        client = srv.client()
        client.create_job(bm.BatchJobCreateOptions(id="busy", pool_info=bm.BatchPoolInfo(pool_id="nopool")))
        client.create_tasks(
            "busy",
            [bm.BatchTaskCreateOptions(id=f"t{i}", command_line="/bin/true") for i in range(250)],
        )
        assert len(list(client.list_tasks("busy", max_results=20))) == 250
        # With retries off, the faults are visible as the service's ServerBusy.
        strict = srv.client(retry_total=0)
        codes = set()
        for _ in range(20):
            try:
                strict.get_job("busy")
            except HttpResponseError as exc:
                codes.add((exc.status_code, exc.error.code))
        assert codes == {(503, "ServerBusy")}
    finally:
        srv.stop()

    dropping = start_server(tmp_path / "data2", "--fault-drop-rate", "0.3", "--seed", "3")
    try:
        client = dropping.client()
        for _ in range(10):  # GETs are retried after a dropped connection
            assert list(client.list_supported_images())
    finally:
        dropping.stop()


def test_sigterm_shuts_down_cleanly_and_kills_running_task_processes(tmp_path):
    srv = start_server(tmp_path / "data")
    pid_file = tmp_path / "task.pid"
    try:
        client = srv.client()
        client.create_pool(pool_options("p", nodes=1))
        wait_pool_ready(client, "p", 1)
        client.create_job(bm.BatchJobCreateOptions(id="j", pool_info=bm.BatchPoolInfo(pool_id="p")))
        # exec: the task's process is sleep itself, so its pid is the one to watch.
        client.create_task(
            "j",
            bm.BatchTaskCreateOptions(
                id="t", command_line=f"/bin/sh -c 'echo $$ > {pid_file}; exec sleep 60'"
            ),
        )
        wait_for(lambda: pid_file.exists() and pid_file.read_text().strip(), 10)
        pid = int(pid_file.read_text())
        assert _alive(pid)
    finally:
        srv.stop()
    assert srv.proc.returncode == 0
    wait_for(lambda: not _alive(pid), 10)
    assert "Traceback" not in srv.log.read_text()


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"  # a zombie is dead
    except FileNotFoundError:
        return False


def test_second_emulator_on_the_same_data_dir_is_refused(tmp_path):
    first = start_server(tmp_path / "data")
    try:
        argv = services.emulator(tmp_path / "data").argv
        second = subprocess.run(argv, capture_output=True, text=True, timeout=30)
        assert second.returncode == 1
        assert "in use by another emulator" in second.stderr
        assert "Traceback" not in second.stderr
        assert list(first.client().list_supported_images())  # the first one is unharmed
    finally:
        first.stop()


def test_job_schedules_survive_a_kill_9_and_serve_on_without_a_second_job(tmp_path):
    """After a crash each schedule is served again from its stored state: one due later gets its
    job after the restart, and an occurrence that already has its job gets no second one."""
    from datetime import datetime, timedelta, timezone

    data = tmp_path / "data"
    first = start_server(data)
    now = datetime.now(timezone.utc)
    spec = bm.BatchJobSpecification(pool_info=bm.BatchPoolInfo(pool_id="any"))
    schedules = {
        "nightly": bm.BatchJobScheduleConfiguration(
            do_not_run_until=now - timedelta(seconds=150), recurrence_interval=timedelta(minutes=1)
        ),
        "later": bm.BatchJobScheduleConfiguration(do_not_run_until=now + timedelta(seconds=3)),
    }
    try:
        client = first.client()
        for name, config in schedules.items():
            client.create_job_schedule(
                bm.BatchJobScheduleCreateOptions(id=name, schedule=config, job_specification=spec)
            )
        wait_for(lambda: list(client.list_jobs_from_schedule("nightly")), 10)
        assert list(client.list_jobs_from_schedule("later")) == []
    finally:
        first.kill()
    second = start_server(data)
    try:
        client = second.client()
        wait_for(lambda: list(client.list_jobs_from_schedule("later")), 15)  # served after the restart
        assert [j.id for j in client.list_jobs_from_schedule("nightly")] == ["nightly:job-1"]
        assert client.get_job_schedule("nightly").state == "active"
    finally:
        second.stop()
    assert "Traceback" not in second.log.read_text()
