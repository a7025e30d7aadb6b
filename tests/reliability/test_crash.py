"""Crashes: applies killed with SIGKILL at seeded moments in every phase, then run again, converge;
the Batch emulator killed with SIGKILL and restarted mid-run loses no task."""

from __future__ import annotations

import os
import queue
import random
import signal
import subprocess
import threading
import time

import reliability_support as rs
from reliability_support import Stack, new_name

# The step line apply prints when it enters each phase, and how long after it the kill may land.
PHASES = [
    ("upload", "==> uploading", 0.05),
    ("pool wait", "==> waiting for the nodes", 0.15),
    ("submission", "==> submitting", 0.03),
    ("task wait", "==> waiting for tasks", 0.5),
    ("download", "==> downloading", 0.01),
]
TASK_SECONDS = 0.3


def _kill_in_phase(proc: subprocess.Popen, marker: str, delay: float) -> tuple[bool, str]:
    """SIGKILL `proc` `delay` s after it printed `marker`; (whether it was killed, its output)."""
    lines: queue.Queue[str | None] = queue.Queue()
    seen: list[str] = []

    def pump() -> None:
        for line in proc.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=1)
        except queue.Empty:
            continue
        if line is None:
            break
        seen.append(line)
        if line.startswith(marker):
            time.sleep(delay)
            proc.send_signal(signal.SIGKILL)
            break
    proc.wait(timeout=60)
    return proc.returncode == -signal.SIGKILL, "".join(seen)


def _task_ids(stack: Stack, ws: rs.Workspace) -> list[str]:
    return [t.id for t in stack.batch_client().list_tasks(f"{ws.name}-job")]


def pytest_generate_tests(metafunc):
    # One test per kill, so that the workers share them (each is ~12 s of applies).
    if "crash_iteration" in metafunc.fixturenames:
        metafunc.parametrize("crash_iteration", range(metafunc.config.getoption("--crash-iterations")))


def _delay(seed: int, iteration: int) -> float:
    """The kill's moment in its phase: the seeded generator's `iteration`-th draw, as when the
    iterations ran one after another in one test."""
    rng = random.Random(seed)
    for i in range(iteration + 1):
        delay = round(rng.uniform(0, PHASES[i % len(PHASES)][2]), 3)
    return delay


def test_applies_killed_at_seeded_moments_converge_on_the_next_apply(
    tmp_path, clean, request, figures, crash_iteration
):
    i = crash_iteration
    seed = request.config.getoption("--crash-seed")
    env = {**clean.env, "PYTHONUNBUFFERED": "1"}
    phase, marker, _ = PHASES[i % len(PHASES)]
    delay = _delay(seed, i)
    ws = rs.Workspace.tutorial(tmp_path / f"run{i}", new_name(), env, inputs=6)
    killed, before = _kill_in_phase(ws.popen_apply("--var", rs.slow(TASK_SECONDS)), marker, delay)
    assert killed, f"iteration {i}: apply ended before the kill in phase {phase}:\n{before}"
    parts = len(list((ws.root / "out").glob(".*.part"))) if (ws.root / "out").exists() else 0

    started = time.monotonic()
    if i == 0:  # the killed holder's lease lapses by itself
        rerun = ws.apply("--var", rs.slow(TASK_SECONDS), "--lock-timeout", "30s")
    else:
        unlock = ws.run("force-unlock", "spec.yaml")
        assert unlock.returncode == 0 and f"unlocked {ws.name}" in unlock.stdout, unlock.stderr
        rerun = ws.apply("--var", rs.slow(TASK_SECONDS))
    assert rerun.returncode == 0, f"iteration {i} ({phase}):\n{before}\n{rerun.stdout}{rerun.stderr}"
    rerun_seconds = time.monotonic() - started

    ws.check_outputs()  # every output correct, no temporary download file left behind
    ids = _task_ids(clean, ws)
    assert sorted(ids) == sorted(f"topn-taskdata{n}" for n in range(6)), ids
    assert len(ids) == len(set(ids))
    if phase in ("task wait", "download"):  # tasks submitted before the kill are not redone
        assert "submitting" not in rerun.stdout and "removing" not in rerun.stdout, rerun.stdout
    again = ws.apply("--var", rs.slow(TASK_SECONDS))
    assert again.returncode == 0 and "No changes." in again.stdout, again.stdout + again.stderr

    destroy = ws.run("destroy", "spec.yaml", "--auto-approve")
    assert destroy.returncode == 0, destroy.stdout + destroy.stderr
    rs.assert_nothing_owned(ws, clean)
    figures.setdefault("crashes", {"seed": seed, "iterations": 0})["iterations"] += 1
    figures.setdefault("crash_runs", []).append(
        {
            "iteration": i,
            "phase": phase,
            "delay_s": delay,
            "rerun_s": round(rerun_seconds, 1),
            "part_files_left_by_the_kill": parts,
            "rerun_plan": next((ln for ln in rerun.stdout.splitlines() if ln.startswith("Plan:")), ""),
        }
    )


def test_a_killed_and_restarted_emulator_loses_no_task(tmp_path, azurite, figures):
    """kill -9 of the Batch service while tasks run; restarted on the same data, apply finishes."""
    port = rs.free_port()
    data = tmp_path / "batch"
    emulator = rs.emulator(data, port=port).start()
    stack = Stack(tmp_path, emulator, azurite.url, azurite)
    ws = rs.Workspace.tutorial(tmp_path / "ws", new_name(), stack.env, inputs=6)
    proc = ws.popen_apply("--var", rs.slow(2))
    try:
        client = stack.batch_client()
        deadline = time.monotonic() + 60
        running: list[str] = []
        while not running and time.monotonic() < deadline:
            try:
                running = [t.id for t in client.list_tasks(f"{ws.name}-job") if t.state == "running"]
            except Exception:  # noqa: BLE001 - the job is not created yet
                pass
            time.sleep(0.1)
        assert running, "no task started"
        os.kill(emulator.proc.pid, signal.SIGKILL)  # the service alone, as a crash
        emulator.proc.wait(timeout=30)
        down_at = time.monotonic()
        # Down until the apply's wait has said so (past its client's connection retries: the
        # wait itself must ride it out), however slowly a loaded machine runs it.
        said: list[str] = []
        reader = threading.Thread(target=lambda: said.extend(proc.stdout), daemon=True)
        reader.start()
        deadline = time.monotonic() + 90
        while not any("cannot be reached; still waiting" in line for line in list(said)):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError("".join(said) + proc.stderr.read())
            time.sleep(0.1)
        emulator = rs.emulator(data, port=port).start()
        stack.batch = emulator
        proc.wait(timeout=180)
        reader.join(timeout=30)
        out = "".join(said)
        assert proc.returncode == 0, out + proc.stderr.read()
        assert "the Batch service cannot be reached; still waiting for it" in out
        ws.check_outputs()
        tasks = list(stack.batch_client().list_tasks(f"{ws.name}-job"))
        assert sorted(t.id for t in tasks) == sorted(f"topn-taskdata{n}" for n in range(6))
        assert {(t.state, t.execution_info.result) for t in tasks} == {("completed", "success")}
        requeued = {t.id for t in tasks if t.execution_info.requeue_count}
        assert set(running) <= requeued  # those running at the crash ran again, none was lost
        destroy = ws.run("destroy", "spec.yaml", "--auto-approve")
        assert destroy.returncode == 0, destroy.stdout + destroy.stderr
        rs.assert_nothing_owned(ws, stack)
        figures["emulator_restart"] = {
            "tasks": len(tasks),
            "running_at_kill": len(running),
            "requeued": len(requeued),
            "outputs_complete_s_after_kill": round(time.monotonic() - down_at, 1),
        }
    finally:
        if proc.poll() is None:
            proc.kill()
        emulator.stop()


def test_the_temporary_file_of_a_killed_download_is_gone_after_the_next_apply(tmp_path, clean):
    ws = rs.Workspace.tutorial(tmp_path / "ws", new_name(), clean.env)
    assert ws.apply().returncode == 0
    out = ws.root / "out"
    (out / "taskdata0_OUTPUT.txt").unlink()  # as if the apply was killed while downloading it
    (out / ".taskdata0_OUTPUT.txt.k1ll3d_0.part").write_text("Word\tCo")
    unrelated = out / ".notes.txt.k1ll3d_0.part"  # another file's: not this download's to remove
    unrelated.write_text("keep")
    again = ws.apply()
    assert again.returncode == 0, again.stdout + again.stderr
    unrelated.unlink()
    ws.check_outputs()
