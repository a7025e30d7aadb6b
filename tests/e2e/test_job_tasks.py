"""Job preparation and release tasks end to end: sent with the job, run once per node before the
job's tasks there, shown by status, replaced with the job when they change, and a preparation
task that fails everywhere stops the apply instead of waiting for the timeout."""

from __future__ import annotations

import json

from support.workspace import Workspace

# Reference data fetched once per node into the shared directory; every task checks it is there.
_PREPARATION = """\
  preparationTask:
    shell: bash
    commandLine: {command}
    resourceFiles: [{{blob: "{name}-app/topn_task.py", filePath: reference.py}}]
    environment: {{GREETING: hello}}
  releaseTask:
    shell: bash
    commandLine: rm -f "$AZ_BATCH_NODE_SHARED_DIR/reference.py"
"""
_FETCH = 'cp reference.py "$AZ_BATCH_NODE_SHARED_DIR/reference.py" && test "$GREETING" = hello'


def _with_preparation(ws: Workspace, command: str = _FETCH) -> None:
    text = ws.spec.read_text()
    job = f"  id: {ws.name}-job\n"
    assert job in text
    text = text.replace(job, job + _PREPARATION.format(command=command, name=ws.name))
    # The tasks run only where the preparation task left its file.
    script = 'python3 "$AZ_BATCH_NODE_SHARED_DIR/topn_task.py"'
    text = text.replace(script, f'test -f "$AZ_BATCH_NODE_SHARED_DIR/reference.py" && {script}')
    ws.spec.write_text(text)


def test_the_preparation_task_runs_on_each_node_before_the_tasks_and_a_change_replaces_the_job(
    workspace: Workspace, batch_client
):
    _with_preparation(workspace)
    result = workspace.apply()
    assert result.returncode == 0, result.stdout + result.stderr
    workspace.check_outputs()
    job = batch_client.get_job(f"{workspace.name}-job")
    assert job.job_preparation_task.wait_for_success is True
    assert job.job_release_task.command_line.startswith("/bin/bash -c ")
    assert "sig=" in job.job_preparation_task.resource_files[0].http_url  # a read SAS for one blob

    status = json.loads(workspace.run("status", "spec.yaml", "--json").stdout)
    ran = status["job"]["preparation"]
    assert ran and all(p["preparationTask"]["result"] == "success" for p in ran)
    text = workspace.run("status", "spec.yaml").stdout
    assert f"preparation task: {len(ran)} success" in " ".join(text.split())

    workspace.spec.write_text(workspace.spec.read_text().replace("GREETING: hello", "GREETING: hi"))
    plan = json.loads(workspace.run("plan", "spec.yaml", "--json").stdout)
    (job_change,) = [c for c in plan["changes"] if c["kind"] == "job"]
    assert job_change["action"] == "replace"
    assert job_change["reasons"] == ["preparationTask or releaseTask: changed (forces replacement)"]
    # The preparation command checks its greeting: the new job's runs only with the new one.
    workspace.spec.write_text(workspace.spec.read_text().replace("= hello", "= hi"))
    result = workspace.apply()
    assert result.returncode == 0, result.stdout + result.stderr
    assert workspace.run("plan", "spec.yaml", "--detailed-exitcode").returncode == 0


def test_a_preparation_task_failing_on_every_node_stops_the_apply_and_is_told(workspace: Workspace):
    _with_preparation(workspace, command="echo no reference data >&2; exit 5")
    result = workspace.apply("--timeout", "3m")
    said = " ".join((result.stdout + result.stderr).split())
    assert result.returncode == 1, said
    assert "the job preparation task failed on every node of pool" in said
    assert "exit code 5" in said and "no reference data" in said
    status = json.loads(workspace.run("status", "spec.yaml", "--json").stdout)
    (cause,) = [c for c in status["causes"] if c["key"] == "preparation task failed"]
    assert cause["kind"] == "node" and cause["count"] == 2
