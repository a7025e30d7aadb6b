"""Storage as the service behaves, where Azurite does not: a container deleted by destroy cannot
be created again for a while (409 ContainerBeingDeleted, played by the fault proxy)."""

from __future__ import annotations

import reliability_support as rs
from reliability_support import Stack, new_name


def test_an_apply_right_after_a_destroy_waits_for_the_containers_to_be_free(tmp_path, clean, azurite):
    proxy = rs.faultproxy(
        azurite.url, tmp_path / "proxy.log", rate_503=0, drop=0, seed=1, container_delete_seconds=4
    ).start()
    try:
        stack = Stack(clean.home, clean.batch, proxy.url, azurite, proxy)
        ws = rs.Workspace.tutorial(tmp_path / "ws", new_name(), stack.env)
        assert ws.apply().returncode == 0
        destroyed = ws.run("destroy", "spec.yaml", "--auto-approve")
        assert destroyed.returncode == 0, destroyed.stdout + destroyed.stderr
        again = ws.apply()
        assert again.returncode == 0, again.stdout + again.stderr
        shown = " ".join(again.stdout.split())  # as read, not as wrapped to the terminal's width
        assert "is still being deleted by the service; waiting to create it again" in shown
        assert "Apply complete: tasks 3 succeeded, 0 failed" in shown
        assert rs.proxy_stats(proxy)["being-deleted"] >= 3  # each container met it at least once
        ws.check_outputs()
    finally:
        proxy.stop()
