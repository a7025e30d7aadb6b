"""The tutorial end to end through the CLI, against Azurite and the Batch emulator."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qs, urlsplit

from azure.batch import models as bm
from azure.storage.blob import BlobServiceClient

from helpers import ROOT, expected_output
from support.workspace import Workspace


def _no_secrets(ws: Workspace, *results: subprocess.CompletedProcess) -> None:
    for r in results:
        for secret in ws.secrets:
            assert secret not in r.stdout and secret not in r.stderr


def _plan(ws: Workspace) -> dict:
    r = ws.run("plan", "spec.yaml", "--json")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def _changes(plan: dict) -> set[tuple[str, str, str]]:
    return {(c["kind"], c["id"], c["action"]) for c in plan["changes"]}


def test_apply_produces_the_tutorial_outputs(workspace: Workspace):
    result = workspace.apply()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Apply complete: tasks 3 succeeded, 0 failed" in result.stdout
    for i in range(3):
        text = (workspace.root / "data" / f"taskdata{i}.txt").read_text()
        lines = (workspace.root / "out" / f"taskdata{i}_OUTPUT.txt").read_text().splitlines()
        assert lines[0] == "Word\tCount" and lines[1] == "-" * 30
        assert lines[2:5] == expected_output(text, 3)
        assert lines[6].startswith("Node: ") and len(lines[6]) > len("Node: ")
        assert lines[7:] == [
            f"Task: topn-taskdata{i}",
            f"Job:  {workspace.name}-job",
            f"Pool: {workspace.name}-pool",
        ]
    _no_secrets(workspace, result)


def test_a_second_apply_changes_nothing_on_the_services(
    workspace: Workspace, batch_client, blob_service: BlobServiceClient
):
    assert workspace.apply().returncode == 0
    inputs = blob_service.get_container_client(f"{workspace.name}-in")
    blobs = {b.name: b.etag for b in inputs.list_blobs()}
    tasks = {
        t.id: (t.creation_time, t.execution_info.start_time)
        for t in batch_client.list_tasks(f"{workspace.name}-job")
    }
    again = workspace.apply()
    assert again.returncode == 0, again.stderr
    assert "No changes." in again.stdout
    assert "submitting" not in again.stdout and "uploading" not in again.stdout
    assert {b.name: b.etag for b in inputs.list_blobs()} == blobs
    assert {
        t.id: (t.creation_time, t.execution_info.start_time)
        for t in batch_client.list_tasks(f"{workspace.name}-job")
    } == tasks
    plan = workspace.run("plan", "spec.yaml", "--detailed-exitcode")
    assert plan.returncode == 0, plan.stdout + plan.stderr


def test_editing_one_input_updates_one_blob_and_replaces_one_task(workspace: Workspace, batch_client):
    assert workspace.apply().returncode == 0
    before = {t.id: t.creation_time for t in batch_client.list_tasks(f"{workspace.name}-job")}
    path = workspace.root / "data" / "taskdata1.txt"
    path.write_text(
        path.read_text() + "\nzebra zebra zebra zebra zebra zebra zebra zebra zebra zebra "
        "zebra zebra zebra zebra zebra zebra zebra zebra zebra zebra zebra zebra zebra zebra "
        "zebra zebra zebra zebra zebra zebra zebra zebra zebra zebra zebra zebra\n"
    )
    plan = _plan(workspace)
    assert _changes(plan) == {
        ("blob", f"{workspace.name}-in/taskdata1.txt", "update"),
        ("task", "topn-taskdata1", "replace"),
        ("download", f"{workspace.name}-out", "create"),
    }
    assert plan["summary"] == {"add": 2, "change": 1, "destroy": 1}
    assert workspace.run("plan", "spec.yaml", "--detailed-exitcode").returncode == 2
    result = workspace.apply()
    assert result.returncode == 0, result.stdout + result.stderr
    after = {t.id: t.creation_time for t in batch_client.list_tasks(f"{workspace.name}-job")}
    assert after["topn-taskdata0"] == before["topn-taskdata0"]
    assert after["topn-taskdata2"] == before["topn-taskdata2"]
    assert after["topn-taskdata1"] != before["topn-taskdata1"]
    assert "zebra:\t36" in (workspace.root / "out" / "taskdata1_OUTPUT.txt").read_text()


def test_removing_an_input_deletes_its_blob_and_task(workspace: Workspace, batch_client):
    assert workspace.apply().returncode == 0
    (workspace.root / "data" / "taskdata2.txt").unlink()
    assert _changes(_plan(workspace)) == {
        ("blob", f"{workspace.name}-in/taskdata2.txt", "delete"),
        ("task", "topn-taskdata2", "delete"),
    }
    assert workspace.apply().returncode == 0
    assert sorted(t.id for t in batch_client.list_tasks(f"{workspace.name}-job")) == [
        "topn-taskdata0",
        "topn-taskdata1",
    ]


def test_vm_size_change_is_a_replace_and_node_count_change_an_update(workspace: Workspace, batch_client):
    assert workspace.apply().returncode == 0
    workspace.write_spec(vm_size="standard_d4s_v3")
    plan = _plan(workspace)
    pool = [c for c in plan["changes"] if c["kind"] == "pool"]
    assert pool[0]["action"] == "replace"
    assert "vmSize: 'standard_d2s_v3' -> 'standard_d4s_v3' (forces replacement)" in pool[0]["reasons"]
    workspace.write_spec(nodes=3)
    plan = _plan(workspace)
    assert [(c["kind"], c["action"], c["reasons"]) for c in plan["changes"]] == [
        (
            "pool",
            "update",
            [
                "targetDedicatedNodes: 2 -> 3 (resize)",
                "startTask: resource file SAS issued again for the nodes the resize adds",
            ],
        )
    ]
    result = workspace.apply()
    assert result.returncode == 0, result.stdout + result.stderr
    assert batch_client.get_pool(f"{workspace.name}-pool").target_dedicated_nodes == 3
    assert "No changes." in workspace.apply().stdout


def test_a_failing_task_exits_3_with_its_stderr_and_is_rerun_next_time(workspace: Workspace):
    failing = "python3 -c 'import sys; sys.stderr.write(\"boom: the input was bad\\n\"); sys.exit(7)'"
    result = workspace.apply("--var", f"command={failing}")
    assert result.returncode == 3, result.stdout + result.stderr
    assert "boom: the input was bad" in result.stdout
    assert "tasks 0 succeeded, 3 failed" in result.stdout
    # Triage by cause: the three failures are one cause, with examples, a hint and the stderr.
    assert "Failures by cause:" in result.stdout
    assert "exit code 7: 3 task(s): topn-taskdata0, topn-taskdata1, topn-taskdata2" in result.stdout
    status = json.loads(workspace.run("status", "spec.yaml", "--json").stdout)
    (cause,) = status["causes"]
    assert (cause["key"], cause["count"], cause["failure"]) == ("exit code 7", 3, True)
    plan = json.loads(workspace.run("plan", "spec.yaml", "--json", "--var", f"command={failing}").stdout)
    assert {c["action"] for c in plan["changes"] if c["kind"] == "task"} == {"rerun"}
    assert any("exit code 7" in r for c in plan["changes"] for r in c["reasons"])
    fixed = workspace.apply()
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr


def test_a_task_past_its_wall_clock_limit_is_told_as_such(workspace: Workspace):
    workspace.write_spec(retries=0)
    spec = workspace.spec.read_text()
    limited = "    maxTaskRetryCount: 0\n    constraints: {maxWallClockTime: PT1S}\nwait:"
    workspace.spec.write_text(spec.replace("    maxTaskRetryCount: 0\nwait:", limited))
    assert "maxWallClockTime: PT1S" in workspace.spec.read_text()
    result = workspace.apply("--var", "command=python3 -c 'import time; time.sleep(30)'")
    assert result.returncode == 3, result.stdout + result.stderr
    said = " ".join(result.stdout.split())
    assert "wall clock exceeded: 3 task(s)" in said
    assert "raise the limit or split the work" in said


def test_an_image_past_batchs_end_of_support_stops_apply_before_anything_is_made(
    workspace: Workspace, blob_service: BlobServiceClient
):
    spec = workspace.spec.read_text()
    old_image = "{publisher: canonical, offer: 0001-com-ubuntu-server-focal, sku: 20_04-lts}"
    workspace.spec.write_text(
        spec.replace("{publisher: canonical, offer: ubuntu-24_04-lts, sku: server}", old_image)
    )
    plan = json.loads(workspace.run("plan", "spec.yaml", "--json").stdout)
    (check,) = plan["checks"]
    assert check["level"] == "error" and "ended on 2025-04-23" in check["message"]
    result = workspace.apply()
    assert result.returncode == 2, result.stdout + result.stderr
    assert "nothing was created" in result.stderr
    assert not [c for c in blob_service.list_containers() if c.name.startswith(workspace.name)]


def test_a_timeout_exits_4(workspace: Workspace):
    result = workspace.apply("--timeout", "2s", "--var", "command=python3 -c 'import time; time.sleep(60)'")
    assert result.returncode == 4, result.stdout + result.stderr
    assert "Timed out" in result.stdout
    assert workspace.run("destroy", "spec.yaml", "--auto-approve").returncode == 0


def test_the_tasks_sas_urls_outlive_a_long_wait_for_them(workspace: Workspace, batch_client):
    """A task that queues for hours still reads its inputs: its SAS lives through the wait."""
    before = datetime.now(timezone.utc)
    assert workspace.apply("--timeout", "6h").returncode == 0
    for task in batch_client.list_tasks(f"{workspace.name}-job"):
        (resource,) = task.resource_files
        expiry = datetime.fromisoformat(
            parse_qs(urlsplit(resource.http_url).query)["se"][0].replace("Z", "+00:00")
        )
        assert expiry - before >= timedelta(hours=6, minutes=30), expiry


def test_two_concurrent_applies_are_serialised(workspace: Workspace, blob_service: BlobServiceClient):
    slow = "command=python3 -c 'import time; time.sleep(3)'"
    first = workspace.popen_apply("--var", slow)
    lock = blob_service.get_blob_client("batchspec-locks", f"{workspace.name}.lock")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if lock.get_blob_properties().lease.state == "leased":
                break
        except Exception:  # noqa: BLE001 - not created yet
            pass
        time.sleep(0.1)
    second = workspace.apply("--var", slow)
    assert second.returncode == 1
    assert "the spec is locked by apply on host" in second.stderr
    assert "pid" in second.stderr
    waiting = workspace.apply("--var", slow, "--lock-timeout", "60s")
    out, err = first.communicate(timeout=120)
    assert first.returncode == 0, out + err
    assert waiting.returncode == 0, waiting.stdout + waiting.stderr
    assert "No changes." in waiting.stdout


def test_a_stale_saved_plan_is_refused(workspace: Workspace):
    saved = workspace.run("plan", "spec.yaml", "--out", "first.plan")
    assert saved.returncode == 0 and (workspace.root / "first.plan").exists()
    assert workspace.run("apply", "first.plan").returncode == 0  # applies exactly that plan
    again = workspace.run("plan", "spec.yaml", "--out", "second.plan")
    assert again.returncode == 0
    (workspace.root / "data" / "taskdata0.txt").write_text("fresh words\n")
    assert workspace.apply().returncode == 0
    stale = workspace.run("apply", "second.plan")
    assert stale.returncode == 1
    assert "changed since the plan was saved" in stale.stderr
    (workspace.root / "broken.plan").write_text("{not json")
    corrupt = workspace.run("apply", "broken.plan")
    assert corrupt.returncode == 2
    assert "broken.plan: not a readable batchspec plan" in corrupt.stderr
    for secret in workspace.secrets:
        assert secret not in (workspace.root / "first.plan").read_text()


def test_a_clash_with_an_unowned_container_fails_the_plan_and_destroy_leaves_it(
    workspace: Workspace, blob_service: BlobServiceClient
):
    assert workspace.apply().returncode == 0
    foreign = f"{workspace.name}-keep"
    blob_service.create_container(foreign)
    spec = workspace.spec.read_text().replace(
        f"    {workspace.name}-out: {{}}\n", f"    {workspace.name}-out: {{}}\n    {foreign}: {{}}\n"
    )
    workspace.spec.write_text(spec)
    clash = workspace.run("plan", "spec.yaml")
    assert clash.returncode == 1
    assert f"container '{foreign}' already exists and is not created by batchspec" in clash.stderr
    destroy = workspace.run("destroy", "spec.yaml", "--auto-approve")
    assert destroy.returncode == 0, destroy.stdout + destroy.stderr
    assert f"container '{foreign}' is not owned by this spec: left alone" in destroy.stdout
    names = {c.name for c in blob_service.list_containers()}
    assert foreign in names
    assert not {f"{workspace.name}-app", f"{workspace.name}-in", f"{workspace.name}-out"} & names
    assert workspace.run("status", "spec.yaml", "--json").returncode == 0
    _no_secrets(workspace, clash, destroy)


def test_apply_without_a_terminal_or_approval_refuses(workspace: Workspace, blob_service):
    result = workspace.run("apply", "spec.yaml")
    assert result.returncode == 2
    assert "--auto-approve" in result.stderr
    assert f"{workspace.name}-in" not in {c.name for c in blob_service.list_containers()}


def test_the_azure_target_names_the_missing_variables(workspace: Workspace):
    env = {k: v for k, v in workspace.env.items() if not k.startswith("AZURE_")}
    result = subprocess.run(
        [sys.executable, "-m", "batchspec", "plan", "spec.yaml", "--target", "azure"],
        cwd=workspace.root,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "AZURE_BATCH_ENDPOINT" in result.stderr and "AZURE_STORAGE_ACCOUNT_URL" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_failed_start_task_stops_the_apply_with_its_stderr(workspace: Workspace):
    text = workspace.spec.read_text()
    spec = text.replace("commandLine: cp ", "commandLine: echo no disk space left >&2; exit 9; cp ")
    assert spec != text
    workspace.spec.write_text(spec)
    result = workspace.apply()
    assert result.returncode == 1, result.stdout + result.stderr
    assert "the start task failed" in result.stderr
    assert "exit code 9" in result.stderr
    assert "no disk space left" in result.stderr
    assert "submitting" not in result.stdout
    # Fixed: nodes whose start task failed cannot be rebooted (the service reboots only idle or
    # running nodes), so apply replaces them and the tutorial runs.
    workspace.spec.write_text(text)
    fixed = workspace.apply()
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert "replacing 2 node(s) whose start task failed" in fixed.stdout
    workspace.check_outputs()


def test_blobs_named_to_escape_the_download_folder_are_refused(
    workspace: Workspace, blob_service: BlobServiceClient
):
    assert workspace.apply().returncode == 0
    out = blob_service.get_container_client(f"{workspace.name}-out")
    # Azurite stores a backslash as '/', so the first name arrives as '../evil.txt'.
    for name in ("..\\evil.txt", "/abs.txt", "x//y.txt", "ok/fine.txt"):
        out.upload_blob(name, b"payload", overwrite=True)
    names = {b.name for b in out.list_blobs()}
    assert {"../evil.txt", "/abs.txt", "x//y.txt"} <= names
    result = workspace.apply()
    assert result.returncode == 1, result.stdout + result.stderr
    for name in ("../evil.txt", "/abs.txt", "x//y.txt"):
        assert f"refused to download blob {name!r}" in result.stdout
    assert (workspace.root / "out" / "ok" / "fine.txt").read_bytes() == b"payload"
    assert not (workspace.root / "evil.txt").exists()
    assert not (workspace.root / "out" / "abs.txt").exists()
    assert not (workspace.root / "out" / "x").exists()


def test_force_unlock_frees_a_held_lock(workspace: Workspace, blob_service: BlobServiceClient):
    from batchspec.apply.lock import Lock

    held = Lock(blob_service, workspace.name, command="apply")
    held.acquire()
    try:
        blocked = workspace.run("plan", "spec.yaml")  # plans take no lock
        assert blocked.returncode == 0
        assert workspace.apply().returncode == 1
        unlock = workspace.run("force-unlock", "spec.yaml")
        assert unlock.returncode == 0 and f"unlocked {workspace.name}" in unlock.stdout
        assert workspace.apply().returncode == 0
    finally:
        held._stop.set()


def test_changed_application_code_updates_the_start_task_and_reruns_every_task(
    workspace: Workspace, batch_client
):
    assert workspace.apply().returncode == 0
    script = workspace.root / "node" / "topn_task.py"
    script.write_text(script.read_text().replace('"Word\\tCount"', '"WORD\\tCOUNT"'))
    plan = _plan(workspace)
    pool = [c for c in plan["changes"] if c["kind"] == "pool"][0]
    assert pool["action"] == "update"
    assert pool["reasons"] == [
        "startTask: changed (nodes reboot, or are replaced where it failed, to run it)"
    ]
    assert {(c["id"], c["action"]) for c in plan["changes"] if c["kind"] == "task"} == {
        ("topn-taskdata0", "replace"),
        ("topn-taskdata1", "replace"),
        ("topn-taskdata2", "replace"),
    }
    result = workspace.apply()
    assert result.returncode == 0, result.stdout + result.stderr
    for i in range(3):
        assert (workspace.root / "out" / f"taskdata{i}_OUTPUT.txt").read_text().startswith("WORD\tCOUNT\n")
    assert "No changes." in workspace.apply().stdout


def test_the_sweep_example_runs_a_matrix_then_its_merge_task(workspace: Workspace):
    spec = (ROOT / "specs" / "sweep.yaml").read_text().replace("sweep", workspace.name)
    (workspace.root / "sweep.yaml").write_text(spec)
    result = workspace.run("apply", "sweep.yaml", "--auto-approve")
    assert result.returncode == 0, result.stdout + result.stderr
    out = workspace.root / "out" / workspace.name
    draws = sorted(p.name for p in (out / "draws").iterdir())
    assert draws == ["100-1.txt", "100-2.txt", "1000-1.txt", "1000-2.txt", "10000-1.txt", "10000-2.txt"]
    values = [float((out / "draws" / d).read_text()) for d in draws]
    summary = (out / "summary.txt").read_text().split()
    assert summary[:3] == ["6", "results,", "mean"]
    assert float(summary[3]) == round(sum(values) / len(values), 4)
    again = workspace.run("apply", "sweep.yaml", "--auto-approve")
    assert "No changes." in again.stdout


def test_local_status_and_logs_show_the_running_services(workspace: Workspace):
    status = json.loads(workspace.run("local", "status", "--json").stdout)
    assert status["running"] is True
    assert status["batch"]["endpoint"].startswith("http://127.0.0.1:")
    assert status["storage"]["blob_endpoint"].startswith("http://127.0.0.1:")
    assert set(status) == {"running", "batch", "storage"}
    assert set(status["storage"]) == {"blob_endpoint", "account_name", "account_key", "connection_string"}
    logs = workspace.run("local", "logs", "emulator", "-n", "5")
    assert logs.returncode == 0
    assert logs.stdout.startswith("==> ") and "emulator" in logs.stdout.splitlines()[0]
    assert len(logs.stdout.splitlines()) >= 2


def test_plan_warns_of_a_command_line_that_needs_a_shell_and_says_so_in_json(workspace: Workspace):
    text = workspace.spec.read_text()
    spec = text.replace("    shell: bash\n    commandLine: >-", "    commandLine: >-")
    assert spec != text
    workspace.spec.write_text(spec)
    line = spec.splitlines().index("    commandLine: >-") + 1
    plan = workspace.run("plan", "spec.yaml")
    assert plan.returncode == 0, plan.stderr
    assert (
        f"spec.yaml:{line}:18: warning: job.tasks.commandLine: uses the variable $AZ_BATCH_NODE_SHARED_DIR"
        in (plan.stdout)
    )
    as_json = json.loads(workspace.run("plan", "spec.yaml", "--json").stdout)
    [warning] = as_json["warnings"]
    assert (warning["line"], warning["field"]) == (line, "job.tasks.commandLine")
    assert "shell: bash" in warning["hint"]


def test_the_start_task_sas_lives_six_days_is_stamped_on_the_pool_and_issued_again_once_half_gone(
    workspace: Workspace, batch_client
):
    from urllib.parse import parse_qs, urlsplit

    def start_task_expiry():
        pool = batch_client.get_pool(f"{workspace.name}-pool")
        url = pool.start_task.resource_files[0].storage_container_url
        se = datetime.fromisoformat(parse_qs(urlsplit(url).query)["se"][0].replace("Z", "+00:00"))
        stamped = {m.name: m.value for m in pool.metadata}["batchspec-sas-expiry"]
        assert datetime.fromisoformat(stamped.replace("Z", "+00:00")) == se
        return pool, se

    assert workspace.apply().returncode == 0
    pool, se = start_task_expiry()
    now = datetime.now(timezone.utc)
    assert timedelta(days=6) - timedelta(minutes=5) < se - now <= timedelta(days=6)
    assert "No changes." in workspace.run("plan", "spec.yaml").stdout

    # Four days later (the stamp says so): under half of the six days is left.
    soon = (now + timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    meta = [
        bm.BatchMetadataItem(name=m.name, value=soon if m.name == "batchspec-sas-expiry" else m.value)
        for m in pool.metadata
    ]
    batch_client.update_pool(pool.id, bm.BatchPoolUpdateOptions(metadata=meta))
    [change] = _plan(workspace)["changes"]
    assert (change["kind"], change["action"]) == ("pool", "update")
    assert change["reasons"] == [
        f"startTask: resource file SAS expire {soon[:10]} {soon[11:16]} UTC; issued again "
        "(nodes that join or reboot use them)"
    ]
    result = workspace.apply()
    assert result.returncode == 0, result.stdout + result.stderr
    assert start_task_expiry()[1] - datetime.now(timezone.utc) > timedelta(days=5, hours=23)
    assert "No changes." in workspace.run("plan", "spec.yaml").stdout


def test_status_shows_the_live_resources_and_each_task(workspace: Workspace):
    assert workspace.apply().returncode == 0
    result = workspace.run("status", "spec.yaml")
    assert result.returncode == 0, result.stderr
    lines = [" ".join(line.split()) for line in result.stdout.splitlines()]
    assert f"container {workspace.name}-in exists owned" in lines
    assert any(
        line.startswith(f"pool {workspace.name}-pool active/steady owned; standard_d2s_v3;") for line in lines
    )
    assert f"job {workspace.name}-job active owned" in lines
    assert sum(line.startswith("topn-taskdata") and "completed success 0" in line for line in lines) == 3
