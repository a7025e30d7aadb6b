"""batchspec against an emulator that takes its time as Azure does (`--realistic`, scaled down):
apply waits through `resizing`, `creating`, `starting`, `waitingforstarttask`, a start-task
change reboots through `rebooting`, and destroy waits through `deleting` and `leavingpool`."""

from __future__ import annotations

import reliability_support as rs
from reliability_support import Stack, new_name
from support import services


def test_apply_a_start_task_change_and_destroy_ride_the_states_a_real_account_shows(tmp_path, azurite):
    # 0.02: allocation 0.6 s, node creation 2.4 s, start 0.9 s, reboot 1.8 s, release 0.6 s.
    emulator = services.emulator(tmp_path / "batch", "--realistic", "--time-scale", "0.02").start()
    try:
        stack = Stack(tmp_path, emulator, azurite.url, azurite)
        ws = rs.Workspace.tutorial(tmp_path / "ws", new_name(), stack.env)
        first = ws.apply()
        assert first.returncode == 0, first.stdout + first.stderr
        assert "waiting for the nodes of pool" in first.stdout
        ws.check_outputs()
        text = ws.spec.read_text()
        ws.spec.write_text(text.replace('commandLine: cp "', 'commandLine: cp -f "'))
        second = ws.apply()
        assert second.returncode == 0, second.stdout + second.stderr
        assert "rebooting 2 node(s)" in second.stdout
        gone = ws.run("destroy", "spec.yaml", "--auto-approve")
        assert gone.returncode == 0, gone.stdout + gone.stderr
        rs.assert_nothing_owned(ws, stack)
    finally:
        emulator.stop()
