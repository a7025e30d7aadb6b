"""Concurrency: two applies of one spec started at the same moment; one fails on the lock (or
waits for it), and the end state is correct either way."""

from __future__ import annotations

import signal
import time

import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.storage.blob import BlobLeaseClient, BlobServiceClient

import reliability_support as rs
from batchspec.apply.lock import Lock
from batchspec.errors import LockError
from reliability_support import new_name


def _both(ws: rs.Workspace, *args: str) -> list[tuple[int, str, str]]:
    procs = [ws.popen_apply("--var", rs.slow(0.3), *args) for _ in range(2)]
    outputs = [p.communicate(timeout=180) for p in procs]
    return [(p.returncode, out, err) for p, (out, err) in zip(procs, outputs, strict=True)]


def _converged(ws: rs.Workspace, stack: rs.Stack) -> list:
    ws.check_outputs()
    tasks = list(stack.batch_client().list_tasks(f"{ws.name}-job"))
    assert sorted(t.id for t in tasks) == sorted(f"topn-taskdata{n}" for n in range(3))
    plan = ws.run("plan", "spec.yaml", "--detailed-exitcode", "--var", rs.slow(0.3))
    assert plan.returncode == 0, plan.stdout + plan.stderr
    return tasks


def test_of_two_simultaneous_applies_one_fails_on_the_lock_and_the_other_converges(tmp_path, clean):
    ws = rs.Workspace.tutorial(tmp_path / "ws", new_name(), clean.env)
    results = sorted(_both(ws), key=lambda r: r[0])
    assert [code for code, _, _ in results] == [0, 1], results
    (_, won, _), (_, _, lost) = results
    assert "Apply complete: tasks 3 succeeded, 0 failed" in won
    assert "the spec is locked by apply on host" in lost and "pid" in lost
    assert "Traceback" not in lost
    _converged(ws, clean)


@pytest.mark.parametrize("services", ["clean", "faulty"])
def test_two_simultaneous_applies_waiting_on_the_lock_both_succeed_and_run_each_task_once(
    tmp_path, services, request
):
    stack: rs.Stack = request.getfixturevalue(services)
    ws = rs.Workspace.tutorial(tmp_path / "ws", new_name(), stack.env, retries=6)
    results = _both(ws, "--lock-timeout", "90s")
    assert [code for code, _, _ in results] == [0, 0], results
    outputs = [out for _, out, _ in results]
    # The one that waited found the work done (or still running, and waited for it): it
    # submitted nothing.
    assert sum("submitting 3 task(s)" in out for out in outputs) == 1, outputs
    tasks = _converged(ws, stack)
    assert all(t.execution_info.result == "success" for t in tasks)


def test_a_lease_broken_mid_apply_stops_it_before_its_next_write(tmp_path, clean):
    """Someone breaks the lock (force-unlock) while an apply waits for its tasks: the apply
    notices at its next renewal and stops before downloading, instead of going on unlocked."""
    ws = rs.Workspace.tutorial(tmp_path / "ws", new_name(), clean.env)
    proc = ws.popen_apply("--var", rs.slow(8))
    lock = clean.blob_service().get_blob_client("batchspec-locks", f"{ws.name}.lock")
    deadline = time.monotonic() + 60
    while not _leased(lock):
        assert time.monotonic() < deadline and proc.poll() is None, "the apply never took the lock"
        time.sleep(0.2)
    BlobLeaseClient(lock).break_lease(lease_break_period=0)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, out + err
    assert "the lock of this spec was lost (409" in err
    assert "downloading" not in out
    assert "Traceback" not in err


def test_a_lock_taken_a_moment_ago_is_named_once_its_holder_wrote_its_name(azurite):
    """The holder writes its name on the lock blob just after it takes the lease (and takes it
    off before it lets go): an apply refused in between names the holder all the same (it read
    "another process" once, in a run of three pytest workers), never the one before."""
    import threading

    service = BlobServiceClient.from_connection_string(rs.connection_string(azurite.url))
    name = new_name()
    first = Lock(service, name)
    first.acquire()  # makes the lock blob
    first.release()
    blob = service.get_blob_client("batchspec-locks", f"{name}.lock")
    assert blob.get_blob_properties().metadata == {}  # a released lock names nobody
    lease = BlobLeaseClient(blob)
    lease.acquire(lease_duration=15)  # a holder that has not named itself yet
    holder = {"host": "elsewhere", "pid": "4242", "since": "2026-12-07T10:00:00Z", "command": "apply"}
    later = threading.Timer(0.6, lambda: blob.set_blob_metadata(holder, lease=lease))
    later.start()
    try:
        with pytest.raises(LockError) as refused:
            Lock(service, name).acquire()
        assert "the spec is locked by apply on host elsewhere (pid 4242)" in str(refused.value)
    finally:
        later.join()
        lease.release()


def _leased(blob) -> bool:
    try:
        return blob.get_blob_properties().lease.state == "leased"
    except ResourceNotFoundError:
        return False


def test_renewals_that_stall_are_noticed_before_the_lease_can_lapse(tmp_path, azurite):
    """The storage service stops answering (a stalled proxy): renewals time out on their own,
    and `check` refuses to go on once the lease may have lapsed, before another client could
    take the lock."""
    proxy = rs.faultproxy(azurite.url, tmp_path / "proxy.log", rate_503=0, drop=0, seed=1).start()
    service = BlobServiceClient.from_connection_string(rs.connection_string(proxy.url))
    lock = Lock(service, new_name())
    lock.acquire()
    try:
        lock.check()
        proxy.proc.send_signal(signal.SIGSTOP)
        stopped = time.monotonic()
        while True:
            try:
                lock.check()
            except LockError as exc:
                message = str(exc)
                break
            assert time.monotonic() - stopped < 20, "check never noticed the stalled renewals"
            time.sleep(0.2)
        # The last renewal that got through was at most 5 s before the stall, and `check`
        # gives up 3 s before a lease of 15 s could run out.
        assert 6 < time.monotonic() - stopped < 13
        assert "may have lapsed" in message
    finally:
        proxy.proc.send_signal(signal.SIGCONT)
        lock.release()
        proxy.stop()
