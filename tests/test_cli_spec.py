"""The spec commands as a user runs them: validate, render, schema."""

from __future__ import annotations

import json

from batchspec.spec.schema import schema


def test_validate_accepts_the_tutorial(cli):
    result = cli("validate", "specs/topn.yaml")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "specs/topn.yaml: valid (4 blob(s), 3 task(s))"


def test_render_json_lists_the_tutorial_tasks(cli):
    result = cli("render", "specs/topn.yaml", "--json")
    assert result.returncode == 0, result.stderr
    state = json.loads(result.stdout)
    assert [t["id"] for t in state["tasks"]] == ["topn-taskdata0", "topn-taskdata1", "topn-taskdata2"]
    # `shell: bash`: Batch runs command lines without a shell, and the task needs $AZ_BATCH_*.
    assert state["tasks"][0]["commandLine"] == (
        '/bin/bash -c \'python3 "$AZ_BATCH_NODE_SHARED_DIR/topn_task.py" --filepath taskdata0.txt '
        "--numwords 3'"
    )
    assert state["pool"]["startTask"]["commandLine"].startswith("/bin/bash -c 'cp ")
    # the spec's three, and the one every task's stdout and stderr go to (logs, on by default)
    assert [c["name"] for c in state["containers"]] == ["application", "input", "output", "topn-logs"]
    assert state["pool"]["startTask"]["resourceFiles"][0]["container"] == "application"
    assert state["download"]["to"].endswith("specs/out")


def test_render_text_shows_every_task_and_its_command(cli):
    result = cli("render", "specs/topn.yaml", "--var", "numwords=7")
    assert result.returncode == 0, result.stderr
    for stem in ("taskdata0", "taskdata1", "taskdata2"):
        assert f"topn-{stem}" in result.stdout
    assert "--numwords 7" in result.stdout
    assert "pool topn-pool" in result.stdout


def test_schema_prints_the_shipped_schema(cli):
    result = cli("schema")
    assert result.returncode == 0
    assert json.loads(result.stdout) == schema()


def test_every_schema_field_has_a_description():
    missing = []

    def walk(node, path):
        if isinstance(node, dict):
            props = node.get("properties", {})
            for key, sub in props.items():
                if isinstance(sub, dict) and "description" not in sub and "$ref" not in sub:
                    missing.append(f"{path}.{key}")
                walk(sub, f"{path}.{key}")
            for name, sub in node.get("$defs", {}).items():
                if "description" not in sub:
                    missing.append(f"$defs.{name}")
                walk(sub, f"$defs.{name}")
            for key in ("additionalProperties", "items"):
                if isinstance(node.get(key), dict):
                    walk(node[key], f"{path}.{key}")
            for key in ("anyOf", "allOf"):
                for i, sub in enumerate(node.get(key, [])):
                    walk(sub, f"{path}.{key}[{i}]")

    walk(schema(), "")
    assert missing == []


def test_example_specs_point_editors_at_the_schema():
    from helpers import ROOT

    for spec in (ROOT / "specs").glob("*.yaml"):
        assert spec.read_text().startswith("# yaml-language-server: $schema="), spec


def test_every_example_spec_is_valid(cli):
    from helpers import ROOT

    specs = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "specs").glob("*.yaml"))
    assert len(specs) >= 2
    result = cli("validate", *specs)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count(": valid (") == len(specs)


def test_render_groups_the_tasks_of_each_stage_in_the_order_they_run(cli):
    result = cli("render", "specs/pipeline.yaml")
    assert result.returncode == 0, result.stderr
    stages = [line.split("stage ", 1)[1] for line in result.stdout.splitlines() if "── stage " in line]
    assert stages == ["count (3 task(s))", "merge (1 task(s))", "report (1 task(s))"]
    assert "dependsOn: 3 task(s)" in result.stdout
