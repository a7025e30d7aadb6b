"""Stages end to end: specs/pipeline.yaml (count per file, merge, report) through the CLI against
Azurite and the emulator, then a changed input, which reruns its count and what is downstream."""

from __future__ import annotations

import json
import string
from collections import Counter

from helpers import ROOT
from support.workspace import Workspace


def _report(inputs) -> str:
    """The pipeline's one line, computed independently of the node script."""
    total: Counter = Counter()
    first: dict[str, int] = {}
    for path in inputs:
        for word in (w.strip(string.punctuation) for w in path.read_text().split()):
            if word:
                total[word] += 1
    # Ties: the node script adds up the files in name order, words in order of their count.
    for path in inputs:
        counts = Counter(w for w in (w.strip(string.punctuation) for w in path.read_text().split()) if w)
        for word, _ in counts.most_common():
            first.setdefault(word, len(first))
    top = sorted(total, key=lambda w: (-total[w], first[w]))[:3]
    return f"{len(inputs)} files; most common words: " + ", ".join(f"{w} ({total[w]})" for w in top) + "\n"


def _pipeline(workspace: Workspace) -> str:
    (workspace.root / "specs").mkdir()
    spec = (ROOT / "specs" / "pipeline.yaml").read_text().replace("pipeline", workspace.name)
    # The node scripts keep their names: only the spec's own names change.
    spec = spec.replace(f"{workspace.name}_task.py", "pipeline_task.py")
    (workspace.root / "specs" / "pipeline.yaml").write_text(spec)
    return "specs/pipeline.yaml"


def _task_changes(workspace: Workspace, spec: str) -> dict[str, tuple[str, list[str]]]:
    result = workspace.run("plan", spec, "--json")
    assert result.returncode == 0, result.stderr
    return {
        c["id"]: (c["action"], c["reasons"])
        for c in json.loads(result.stdout)["changes"]
        if c["kind"] == "task"
    }


def test_the_pipeline_example_runs_its_stages_in_order_and_reruns_only_downstream_of_a_change(
    workspace: Workspace, batch_client
):
    spec = _pipeline(workspace)
    result = workspace.run("apply", spec, "--auto-approve")
    assert result.returncode == 0, result.stdout + result.stderr
    report = workspace.root / "specs" / "out" / workspace.name / "report.txt"
    assert report.read_text() == _report(workspace.inputs())

    # Each stage started after every task of the stage before it had ended.
    tasks = {t.id: t for t in batch_client.list_tasks(f"{workspace.name}-job")}
    counts = [t for t in tasks.values() if t.id.startswith("count-")]
    merge, last = tasks["merge"], tasks["report"]
    assert len(counts) == 3
    assert merge.execution_info.start_time >= max(t.execution_info.end_time for t in counts)
    assert last.execution_info.start_time >= merge.execution_info.end_time
    assert merge.depends_on.task_ids == sorted(t.id for t in counts)

    workspace.inputs()[1].write_text("zebra " * 100)
    assert _task_changes(workspace, spec) == {
        "count-taskdata1": ("replace", ["resourceFiles: inputs or their content changed"]),
        "merge": ("replace", ["depends on count-taskdata1, which is replaced"]),
        "report": ("replace", ["depends on merge, which is replaced"]),
    }
    before = {t.id: t.creation_time for t in batch_client.list_tasks(f"{workspace.name}-job")}
    result = workspace.run("apply", spec, "--auto-approve")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "most common words: zebra (100), the (" in report.read_text()
    assert report.read_text() == _report(workspace.inputs())
    after = {t.id: t.creation_time for t in batch_client.list_tasks(f"{workspace.name}-job")}
    assert {t for t in after if after[t] != before[t]} == {"count-taskdata1", "merge", "report"}
    assert workspace.run("plan", spec, "--detailed-exitcode").returncode == 0


def test_a_stage_without_ids_is_depended_on_as_one_id_range(workspace: Workspace, batch_client):
    (workspace.root / "ranges.yaml").write_text(
        f"""\
name: {workspace.name}
storage:
  containers:
    {workspace.name}-out: {{}}
pool:
  id: {workspace.name}-pool
  vmSize: standard_d2s_v3
  image: {{publisher: canonical, offer: ubuntu-24_04-lts, sku: server}}
  targetDedicatedNodes: 2
  taskSlotsPerNode: 2
job:
  id: {workspace.name}-job
  tasks:
    - name: draw
      forEach: {{range: 12}}
      commandLine: /bin/sh -c 'echo {{{{ item * item }}}} > square.txt'
      outputFiles:
        - {{pattern: square.txt, container: {workspace.name}-out, path: "squares/{{{{ index }}}}.txt"}}
    - name: total
      dependsOn: [draw]
      id: total
      shell: sh
      commandLine: awk '{{s += $1}} END {{print s}}' squares/*.txt > total.txt
      resourceFiles: [{{container: {workspace.name}-out, blobPrefix: squares/}}]
      outputFiles: [{{pattern: total.txt, container: {workspace.name}-out, path: total.txt}}]
download: {{container: {workspace.name}-out, to: out/}}
"""
    )
    result = workspace.run("apply", "ranges.yaml", "--auto-approve")
    assert result.returncode == 0, result.stdout + result.stderr
    total = batch_client.get_task(f"{workspace.name}-job", "total")
    assert total.depends_on.task_ids is None or total.depends_on.task_ids == []
    assert [(r.start, r.end) for r in total.depends_on.task_id_ranges] == [(1_000_000, 1_000_011)]
    assert (workspace.root / "out" / "total.txt").read_text().strip() == str(sum(i * i for i in range(12)))
