"""`--realistic`: allocation, node start, reboot and release take time, and the pool and its
nodes pass through the states a real account shows meanwhile."""

from __future__ import annotations

import time

from azure.batch import models as bm

from emulator_support import new_job, pool_options, start_server, unique, wait_pool_ready


def _states_seen(read, until, seconds: float = 30) -> list:
    """Every distinct value `read()` returned, in order, until `until(value)`."""
    seen: list = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = read()
        if not seen or seen[-1] != value:
            seen.append(value)
        if until(value):
            return seen
        time.sleep(0.02)
    raise AssertionError(f"not reached in {seconds}s: {seen}")


def test_realistic_timing_passes_through_the_services_states(tmp_path):
    # 0.02: allocation 0.6 s, node creation 2.4 s, start 0.9 s, reboot 1.8 s, release 0.6 s,
    # job deletion 0.4 s.
    srv = start_server(tmp_path / "data", "--realistic", "--time-scale", "0.02")
    try:
        client = srv.client()
        pool_id = unique("real")
        start = bm.BatchStartTask(command_line="/bin/sleep 0.3", wait_for_success=True)
        began = time.monotonic()
        client.create_pool(pool_options(pool_id, nodes=1, start_task=start))
        pools = _states_seen(lambda: client.get_pool(pool_id).allocation_state, lambda s: s == "steady")
        assert pools == ["resizing", "steady"]

        def node_state():
            nodes = list(client.list_nodes(pool_id))
            return nodes[0].state if nodes else None

        nodes = _states_seen(node_state, lambda s: s == "idle")
        assert nodes[-4:] == ["creating", "starting", "waitingforstarttask", "idle"], nodes
        assert time.monotonic() - began > 3.5  # allocation + creation + start took their time
        node_id = next(iter(client.list_nodes(pool_id))).id
        client.begin_reboot_node(pool_id, node_id, {"nodeRebootOption": "requeue"})
        rebooted = _states_seen(lambda: client.get_node(pool_id, node_id).state, lambda s: s == "idle")
        assert rebooted[0] == "rebooting" and "starting" in rebooted, rebooted
        client.begin_resize_pool(pool_id, bm.BatchPoolResizeOptions(target_dedicated_nodes=0))
        released = _states_seen(node_state, lambda s: s is None)
        assert "leavingpool" in released, released
        wait_pool_ready(client, pool_id, 0)
        job_id = new_job(client, pool_id, "real")
        client.begin_delete_job(job_id, polling_interval=0.05)
        began = time.monotonic()

        def job_state():
            return next((j.state for j in client.list_jobs() if j.id == job_id), None)

        assert _states_seen(job_state, lambda s: s is None) == ["deleting", None]
        assert time.monotonic() - began > 0.3  # job deletion: 20 s x 0.02
    finally:
        srv.stop()
