"""Time limits that mean what they say: --timeout bounds the wait for tasks (not node
allocation), --setup-timeout bounds what comes before them, and no long-running operation of the
SDK outlives its limit."""

from __future__ import annotations

import threading
import time

import pytest
from azure.core.polling import LROPoller, PollingMethod

from batchspec import waiting
from batchspec.errors import ApplyTimeout
from support.workspace import Workspace


def _slow_start_task(workspace: Workspace, seconds: int) -> None:
    text = workspace.spec.read_text()
    spec = text.replace("commandLine: cp ", f"commandLine: sleep {seconds} && cp ")
    assert spec != text
    workspace.spec.write_text(spec)


def test_the_task_timeout_does_not_count_node_allocation(workspace: Workspace):
    # The start task keeps the nodes from being ready for 4 s; the tasks take well under 3 s.
    _slow_start_task(workspace, 4)
    result = workspace.apply("--timeout", "3s")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "waiting for the nodes of pool" in result.stdout
    assert "tasks 3 succeeded, 0 failed" in result.stdout


def test_the_setup_timeout_bounds_waiting_for_nodes_and_names_its_limit(workspace: Workspace):
    _slow_start_task(workspace, 30)
    started = time.monotonic()
    result = workspace.apply("--setup-timeout", "2s")
    assert result.returncode == 4, result.stdout + result.stderr
    assert time.monotonic() - started < 25
    assert f"timed out after 2 s waiting for the nodes of pool {workspace.name}-pool" in result.stderr
    assert "--setup-timeout (wait.setupTimeout)" in result.stderr
    assert "submitting" not in result.stdout


class _Forever(PollingMethod):
    """A long-running operation the service never finishes (a pool stuck deleting)."""

    def __init__(self):
        self.stop = threading.Event()

    def initialize(self, client, initial_response, deserialization_callback):
        pass

    def run(self):
        self.stop.wait(30)

    def status(self):
        return "InProgress"

    def finished(self):
        return self.stop.is_set()

    def resource(self):
        return None


def test_a_long_running_operation_is_not_awaited_past_its_deadline():
    method = _Forever()
    poller = LROPoller(None, None, lambda r: r, method)
    started = time.monotonic()
    with pytest.raises(ApplyTimeout) as info:
        waiting.finish(poller, waiting.Deadline(0.5, "the test's limit"), "pool p to be deleted")
    assert time.monotonic() - started < 5
    assert str(info.value) == (
        "timed out after 0.5 s waiting for pool p to be deleted "
        "(the limit is the test's limit; run the command again to resume)"
    )
    method.stop.set()
