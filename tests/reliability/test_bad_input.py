"""Bad input at every door: broken specs, malformed --var, corrupt or foreign saved plans, blob
names that try to leave the download folder, and input names full of shell metacharacters.
Each is refused with a message (never a traceback) before anything changes, or, for names,
reaches the task as plain text and never runs."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from azure.core.exceptions import HttpResponseError

import reliability_support as rs
from helpers import ROOT, SPECS, expected_output
from reliability_support import new_name

BROKEN = sorted((SPECS / "broken").glob("*.yaml"))


def _services_state(stack: rs.Stack) -> tuple[set[str], set[str], set[str]]:
    batch = stack.batch_client()
    return (
        {c.name for c in stack.blob_service().list_containers()},
        {p.id for p in batch.list_pools()},
        {j.id for j in batch.list_jobs()},
    )


def test_every_broken_spec_is_refused_by_apply_before_touching_the_services(clean):
    """`validate` is tested on the corpus elsewhere; here the door that changes things."""
    before = _services_state(clean)

    def door(args: tuple[str, ...]):
        return args, rs.Workspace(ROOT, "corpus", clean.env).run(*args, timeout=60)

    doors = [("apply", str(spec), "--auto-approve") for spec in BROKEN]
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(door, doors))
    assert len(results) == len(BROKEN) >= 20
    for args, r in results:
        assert r.returncode == 2, (args, r.stdout, r.stderr)
        assert str(Path(args[1]).name) in r.stderr, (args, r.stderr)
        assert "Traceback" not in r.stdout + r.stderr, args
    assert _services_state(clean) == before


@pytest.mark.parametrize(
    ("var", "message"),
    [
        ("novalue", "malformed --var 'novalue': expected name=value"),
        ("=5", "malformed --var '=5'"),
        ("1x=2", "'1x' is not a variable name"),
        ("num-words=2", "'num-words' is not a variable name"),
        ("numwrds=2", "did you mean 'numwords'?"),
        ("inputs=nothing/*.txt", "matches no file"),
        ("inputs", "malformed --var 'inputs'"),
    ],
)
def test_a_malformed_var_is_refused_before_anything_changes(tmp_path, clean, var, message):
    ws = rs.Workspace.tutorial(tmp_path / "ws", new_name(), clean.env)
    r = ws.apply("--var", var)
    assert r.returncode == 2, r.stdout + r.stderr
    assert message in r.stderr
    assert "Traceback" not in r.stderr
    assert rs.owned(ws, clean) == {"containers": [], "pools": [], "jobs": []}


def test_a_var_twice_is_refused_and_a_var_value_is_never_evaluated_as_a_template(tmp_path, clean):
    ws = rs.Workspace.tutorial(tmp_path / "ws", new_name(), clean.env)
    twice = ws.apply("--var", "numwords=2", "--var", "numwords=3")
    assert twice.returncode == 2 and "--var numwords is given twice" in twice.stderr
    rendered = ws.run("render", "spec.yaml", "--json", "--var", "command={{ 7 * 7 }} {% raw %}")
    assert rendered.returncode == 0, rendered.stderr
    lines = {t["commandLine"] for t in json.loads(rendered.stdout)["tasks"]}
    assert all(line.startswith("/bin/bash -c '{{ 7 * 7 }} {% raw %} --filepath") for line in lines), lines


def test_a_corrupt_tampered_or_foreign_saved_plan_is_refused(tmp_path, clean):
    ws = rs.Workspace.tutorial(tmp_path / "ws", new_name(), clean.env)
    other = rs.Workspace.tutorial(tmp_path / "other", new_name(), clean.env)
    assert ws.run("plan", "spec.yaml", "--out", "good.plan").returncode == 0
    good = json.loads((ws.root / "good.plan").read_text())
    assert other.run("plan", "spec.yaml", "--out", "other.plan").returncode == 0
    foreign = json.loads((other.root / "other.plan").read_text())

    unreadable = {
        "truncated.plan": (ws.root / "good.plan").read_text()[:100],
        "garbage.plan": "{\x00\xff not json",
        "list.plan": "[1, 2]",
        "format.plan": json.dumps({**good, "format": "batchspec-plan/99"}),
        "nochanges.plan": json.dumps({k: v for k, v in good.items() if k != "changes"}),
        "badaction.plan": json.dumps({**good, "changes": [{**good["changes"][0], "action": "explode"}]}),
    }
    refused = {
        # another spec's plan, run where this spec is: the plan names the other spec's file
        "foreign-name.plan": json.dumps({**foreign, "spec": good["spec"]}),
        # a plan edited to delete something it did not plan
        "tampered.plan": json.dumps(
            {**good, "changes": [*good["changes"], {"kind": "container", "id": "victim", "action": "delete"}]}
        ),
        "digest.plan": json.dumps({**good, "desired": "0" * 64}),
    }
    why = {
        "foreign-name.plan": f"the saved plan is for spec {other.name!r}, not {ws.name!r}",
        "tampered.plan": "the live state changed since the plan was saved",
        "digest.plan": "the spec or its files changed since the plan was saved",
    }
    for name, text in {**unreadable, **refused}.items():
        (ws.root / name).write_text(text, encoding="utf-8", errors="surrogateescape")
    for name in unreadable:
        r = ws.run("apply", name)
        assert r.returncode == 2, (name, r.stdout, r.stderr)
        assert "Traceback" not in r.stderr
        assert f"{name}: not a readable batchspec plan" in r.stderr, (name, r.stderr)
    for name in refused:
        r = ws.run("apply", name)
        assert r.returncode == 1, (name, r.stdout, r.stderr)
        assert "Traceback" not in r.stderr
        assert why[name] in r.stderr, (name, r.stderr)
    assert rs.owned(ws, clean) == {"containers": [], "pools": [], "jobs": []}
    # the good plan still applies exactly
    assert ws.run("apply", "good.plan").returncode == 0
    ws.check_outputs()


def _files_outside(root: Path, out: Path) -> set[Path]:
    return {p for p in root.rglob("*") if out not in p.parents and p != out}


def test_blobs_named_to_escape_the_download_folder_are_never_written_outside_it(tmp_path, clean):
    ws = rs.Workspace.tutorial(tmp_path / "ws", new_name(), clean.env)
    assert ws.apply().returncode == 0
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (ws.root / "out" / "link").symlink_to(outside, target_is_directory=True)
    before = _files_outside(tmp_path, ws.root / "out")
    container = clean.blob_service().get_container_client(f"{ws.name}-out")
    # Azurite stores a backslash as '/', so '..\\x' arrives as '../x'.
    hostile = [
        "..\\escape1.txt",
        "a\\..\\..\\escape2.txt",
        "/abs.txt",
        "C:/drive.txt",
        "./dot.txt",
        "x//y.txt",
        "link/evil.txt",
        "..",
        "a/..",
    ]
    for name in [*hostile, "ok/ünï $(x) `y`.txt"]:
        try:
            container.upload_blob(name, b"payload", overwrite=True)
        except HttpResponseError:
            pass  # a name the storage service cannot even hold (its URL normalises away)
    stored = {b.name for b in container.list_blobs()}
    dangerous = stored - {"ok/ünï $(x) `y`.txt"} - {f"{p.stem}_OUTPUT.txt" for p in ws.inputs()}
    assert {"../escape1.txt", "a/../../escape2.txt", "link/evil.txt"} <= dangerous, stored
    r = ws.apply()
    assert r.returncode == 1, r.stdout + r.stderr
    for name in dangerous:
        assert f"refused to download blob {name!r}" in r.stdout, (name, r.stdout)
    assert "Traceback" not in r.stdout + r.stderr
    assert (ws.root / "out" / "ok" / "ünï $(x) `y`.txt").read_bytes() == b"payload"
    assert list(outside.iterdir()) == []
    assert _files_outside(tmp_path, ws.root / "out") == before


# File names that a shell would act on; they must reach the task as plain names.
HOSTILE_NAMES = [
    "$(touch pwned1).txt",
    "`touch pwned2`.txt",
    "a;touch pwned3.txt",
    "b|touch pwned4&.txt",
    'it\'s "quoted".txt',
    "two  spaces.txt",
    "ünïcødé ✓ 名前.txt",
    "$HOME ${PATH}.txt",
    "new\tline.txt",
]
# Three ways a name reaches a task's program: directly (no shell: the node splits the line into
# words; the script comes as a resource file, since no variable is expanded), as a script for
# `shell: bash` (batchspec quotes the whole for the node), and through /bin/sh -c written out, the
# inner command quoted for sh and the whole quoted again for the node.
COMMANDS = {
    "direct": ("", "python3 topn_task.py --filepath {{ item.name | shquote }} --numwords 3"),
    "shell": (
        "bash",
        'cd . && python3 "$AZ_BATCH_NODE_SHARED_DIR/topn_task.py" --filepath {{ item.name | shquote }}'
        " --numwords 3",
    ),
    "explicit": (
        "",
        "/bin/sh -c {{ ('cd . && python3 \"$AZ_BATCH_NODE_SHARED_DIR/topn_task.py\" --filepath '"
        " ~ (item.name | shquote) ~ ' --numwords 3') | shquote }}",
    ),
}


@pytest.mark.parametrize("form", sorted(COMMANDS))
def test_input_names_with_shell_metacharacters_reach_the_task_as_plain_names(tmp_path, clean, rel_home, form):
    ws = rs.Workspace.tutorial(tmp_path / "ws", new_name(), clean.env, inputs=0)
    for i, name in enumerate(HOSTILE_NAMES):
        (ws.root / "data" / name).write_text(f"alpha beta {name} " + "gamma " * (i + 1))
    spec = ws.spec.read_text()
    spec = spec.replace('id: "topn-{{ item.stem }}"', 'id: "t-{{ item.sha256[:16] }}"')
    start = spec.index("    shell: bash\n    commandLine: >-\n      {{ vars.command }}")
    end = spec.index("\n", spec.index("--numwords", start))
    shell, command = COMMANDS[form]
    lines = (f"    shell: {shell}\n" if shell else "") + f"    commandLine: {json.dumps(command)}"
    spec = spec[:start] + lines + spec[end:]
    if form == "direct":
        spec = spec.replace(
            'resourceFiles: [{blob: "{{ item.ref }}"}]',
            f'resourceFiles: [{{blob: "{{{{ item.ref }}}}"}}, {{blob: {ws.name}-app/topn_task.py}}]',
        )
    ws.spec.write_text(spec)
    assert ws.run("validate", "--strict", "spec.yaml").returncode == 0
    r = ws.apply()
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"tasks {len(HOSTILE_NAMES)} succeeded, 0 failed" in r.stdout
    for name in HOSTILE_NAMES:
        path = ws.root / "data" / name
        lines = (ws.root / "out" / f"{path.stem}_OUTPUT.txt").read_text().splitlines()
        assert lines[2:5] == expected_output(path.read_text(), 3), name
    pwned = [p for root in (rel_home, tmp_path, ROOT, Path.home()) for p in root.rglob("pwned*")]
    assert pwned == []
