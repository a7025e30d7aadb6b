"""A job that holds exactly the spec's tasks carries their digest (TASKS_STAMP): plans count its
tasks and read only the failed ones, instead of every task (100 pages at 100,000 tasks), and read
them all again whenever the digest or the counts do not add up."""

from __future__ import annotations

import json

import pytest

from batchspec.live import batch as live_batch
from batchspec.live import state as live_state
from batchspec.model import TASKS_STAMP, metadata
from batchspec.plan import Action, diff, stamps
from batchspec.spec.build import build
from support.workspace import Workspace

# `fail_one.py ARGS...` exits 7 for taskdata1.txt, else runs topn_task.py ARGS.
FAIL_ONE = """\
import os, runpy, sys

if "taskdata1.txt" in sys.argv:
    sys.exit(7)
sys.argv = [os.path.join(os.path.dirname(os.path.abspath(__file__)), "topn_task.py"), *sys.argv[1:]]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


@pytest.fixture
def listings(monkeypatch) -> list[str | None]:
    """The `$filter` of every task listing the plan makes (None or an id range: the whole job),
    with pages of 2 tasks: a job of one page is read whole, which is as quick as counting it."""
    monkeypatch.setattr(live_batch, "_PAGE", 2)
    made: list[str | None] = []
    real = live_batch._read_range

    def spy(client, job_id, params, keep):
        made.append(params.get("$filter"))
        return real(client, job_id, params, keep)

    monkeypatch.setattr(live_batch, "_read_range", spy)
    return made


def _read(ws: Workspace, target, monkeypatch):
    monkeypatch.chdir(ws.root)
    desired = build("spec.yaml", {})
    return desired, live_state.read(target, desired, tasks_digest=lambda: stamps.tasks_digest(desired))


def test_a_converged_job_is_counted_and_a_task_deleted_behind_its_back_is_read_again(
    workspace: Workspace, batch_client, local_target, listings, monkeypatch
):
    assert workspace.apply().returncode == 0, workspace.runs[-1].stdout + workspace.runs[-1].stderr
    job_id = f"{workspace.name}-job"
    desired, live = _read(workspace, local_target, monkeypatch)
    assert metadata(live.job)[TASKS_STAMP] == stamps.tasks_digest(desired)
    assert live.tally is not None and (live.tally.total, live.tally.failed) == (3, 0)
    assert live.tasks == [] and listings == [live_state._FAILED]  # no task read but the failed
    p = diff(desired, live)
    assert p.changes == [] and p.pending_tasks == 0
    assert p.tasks_stamp == p.tasks_digest

    # Somebody deletes a task: the counts no longer add up, so every task is read.
    batch_client.delete_task(job_id, "topn-taskdata2")
    listings.clear()
    desired, live = _read(workspace, local_target, monkeypatch)
    assert live.tally is None and listings and live_state._FAILED not in listings
    assert [(c.id, c.action) for c in diff(desired, live).changes if c.kind == "task"] == [
        ("topn-taskdata2", Action.CREATE)
    ]
    assert workspace.apply().returncode == 0
    workspace.check_outputs()
    desired, live = _read(workspace, local_target, monkeypatch)
    assert live.tally is not None and live.tally.total == 3


def test_a_changed_spec_reads_every_task_and_apply_stamps_the_new_digest(
    workspace: Workspace, batch_client, local_target, listings, monkeypatch
):
    assert workspace.apply().returncode == 0
    job_id = f"{workspace.name}-job"
    before = metadata(batch_client.get_job(job_id).as_dict())[TASKS_STAMP]
    workspace.spec.write_text(workspace.spec.read_text().replace("numwords: 3", "numwords: 4"))
    listings.clear()
    desired, live = _read(workspace, local_target, monkeypatch)
    # Not the spec's digest: read in full.
    assert live.tally is None and listings and live_state._FAILED not in listings
    assert {c.action for c in diff(desired, live).of("task")} == {Action.REPLACE}
    assert workspace.apply().returncode == 0
    after = metadata(batch_client.get_job(job_id).as_dict())[TASKS_STAMP]
    assert after != before and after == stamps.tasks_digest(desired)


def test_a_failed_task_is_read_through_the_filter_and_runs_again(
    workspace: Workspace, local_target, listings, monkeypatch
):
    (workspace.root / "node" / "fail_one.py").write_text(FAIL_ONE)
    text = workspace.spec.read_text()
    workspace.spec.write_text(text.replace("/topn_task.py", "/fail_one.py"))
    assert workspace.apply().returncode == 3  # a task failed
    desired, live = _read(workspace, local_target, monkeypatch)
    assert live.tally is not None and (live.tally.total, live.tally.failed) == (3, 1)
    assert [t["id"] for t in live.tasks] == ["topn-taskdata1"] and listings == [live_state._FAILED]
    p = diff(desired, live)
    assert [(c.id, c.action, c.reasons) for c in p.changes if c.kind == "task"] == [
        ("topn-taskdata1", Action.RERUN, ("completed with failure (exit code 7)",))
    ]
    shown = json.loads(workspace.run("plan", "spec.yaml", "--json").stdout)
    assert [c["id"] for c in shown["changes"] if c["kind"] == "task"] == ["topn-taskdata1"]
