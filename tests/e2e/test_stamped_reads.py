"""What apply leaves stamped, plans need not read: a job that holds exactly the spec's tasks
carries their digest (TASKS_STAMP), so plans count its tasks and read only the failed ones, and a
container of the spec's uploads carries theirs (STORAGE_UPLOADS), so plans do not list it. Only
past one listing page (here lowered to 2), and read in full whenever a digest or the counts do
not add up, or with --refresh."""

from __future__ import annotations

import json

import pytest

from batchspec.live import batch as live_batch
from batchspec.live import state as live_state
from batchspec.live import storage as live_storage
from batchspec.model import STORAGE_UPLOADS, TASKS_STAMP, metadata, uploads_digest
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


def _applied(ws: Workspace, code: int = 0) -> None:
    result = ws.apply()
    assert result.returncode == code, result.stdout + result.stderr


def _read(ws: Workspace, target, monkeypatch, **options):
    monkeypatch.chdir(ws.root)
    desired = build("spec.yaml", {})
    return desired, live_state.read(
        target, desired, tasks_digest=lambda: stamps.tasks_digest(desired), **options
    )


def test_a_converged_job_is_counted_and_a_task_deleted_behind_its_back_is_read_again(
    workspace: Workspace, batch_client, local_target, listings, monkeypatch
):
    _applied(workspace)
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
    _applied(workspace)
    workspace.check_outputs()
    desired, live = _read(workspace, local_target, monkeypatch)
    assert live.tally is not None and live.tally.total == 3


def test_a_changed_spec_reads_every_task_and_apply_stamps_the_new_digest(
    workspace: Workspace, batch_client, local_target, listings, monkeypatch
):
    _applied(workspace)
    job_id = f"{workspace.name}-job"
    before = metadata(batch_client.get_job(job_id).as_dict())[TASKS_STAMP]
    workspace.spec.write_text(workspace.spec.read_text().replace("numwords: 3", "numwords: 4"))
    listings.clear()
    desired, live = _read(workspace, local_target, monkeypatch)
    # Not the spec's digest: read in full.
    assert live.tally is None and listings and live_state._FAILED not in listings
    assert {c.action for c in diff(desired, live).of("task")} == {Action.REPLACE}
    _applied(workspace)
    after = metadata(batch_client.get_job(job_id).as_dict())[TASKS_STAMP]
    assert after != before and after == stamps.tasks_digest(desired)


def test_a_failed_task_is_read_through_the_filter_and_runs_again(
    workspace: Workspace, local_target, listings, monkeypatch
):
    (workspace.root / "node" / "fail_one.py").write_text(FAIL_ONE)
    text = workspace.spec.read_text()
    workspace.spec.write_text(text.replace("/topn_task.py", "/fail_one.py"))
    _applied(workspace, 3)  # a task failed
    desired, live = _read(workspace, local_target, monkeypatch)
    assert live.tally is not None and (live.tally.total, live.tally.failed) == (3, 1)
    assert [t["id"] for t in live.tasks] == ["topn-taskdata1"] and listings == [live_state._FAILED]
    p = diff(desired, live)
    assert [(c.id, c.action, c.reasons) for c in p.changes if c.kind == "task"] == [
        ("topn-taskdata1", Action.RERUN, ("completed with failure (exit code 7)",))
    ]
    shown = json.loads(workspace.run("plan", "spec.yaml", "--json").stdout)
    assert [c["id"] for c in shown["changes"] if c["kind"] == "task"] == ["topn-taskdata1"]


def test_a_container_of_the_spec_s_uploads_is_not_listed_until_a_file_changes_or_refresh_asks(
    workspace: Workspace, blob_service, local_target, monkeypatch
):
    monkeypatch.setattr(live_storage, "_PAGE", 2)  # the app's scripts and the 3 inputs: 2 pages
    app, inputs = f"{workspace.name}-app", f"{workspace.name}-in"
    listed: list[str] = []  # the upload containers listed (the download's is, to compare)
    real = live_storage.read_blobs

    def spy(service, container, *args, **kwargs):
        listed.extend([container] if container in (app, inputs) else [])
        return real(service, container, *args, **kwargs)

    monkeypatch.setattr(live_storage, "read_blobs", spy)
    _applied(workspace)
    desired, live = _read(workspace, local_target, monkeypatch)
    for name in (app, inputs):
        uploads = [b for b in desired.blobs if b.container == name]
        stamp = blob_service.get_container_client(name).get_container_properties().metadata[STORAGE_UPLOADS]
        assert stamp == uploads_digest(uploads)
    assert live.uploads_stamped == (app, inputs) and listed == []
    p = diff(desired, live)
    assert p.changes == []
    note = "uploads to {}: taken as the last apply left them (its stamp); --refresh lists them"
    assert p.notes == [note.format(app), note.format(inputs)]

    # Behind batchspec's back: unseen until --refresh, which lists both and finds it.
    blob_service.get_blob_client(inputs, "taskdata0.txt").delete_blob()
    assert diff(*_read(workspace, local_target, monkeypatch)).changes == []
    desired, live = _read(workspace, local_target, monkeypatch, refresh=True)
    assert live.uploads_stamped == () and sorted(listed) == [app, inputs]
    missing = f"{inputs}/taskdata0.txt"
    assert [(c.id, c.action) for c in diff(desired, live).of("blob")] == [(missing, Action.CREATE)]
    shown = json.loads(workspace.run("plan", "spec.yaml", "--json", "--refresh").stdout)
    assert shown["notes"] == [] and [c["id"] for c in shown["changes"]] == [missing]

    # A file changed here: its container's digest is not the stamp, so it is listed.
    listed.clear()
    (workspace.root / "data" / "taskdata1.txt").write_text("new words new words\n")
    desired, live = _read(workspace, local_target, monkeypatch)
    assert live.uploads_stamped == (app,) and listed == [inputs]
    assert {(c.id, c.action) for c in diff(desired, live).of("blob")} == {
        (missing, Action.CREATE),
        (f"{inputs}/taskdata1.txt", Action.UPDATE),
    }
    _applied(workspace)
    desired, live = _read(workspace, local_target, monkeypatch)
    assert live.uploads_stamped == (app, inputs)
    assert blob_service.get_blob_client(inputs, "taskdata0.txt").exists()
