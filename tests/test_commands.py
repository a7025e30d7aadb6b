"""Command lines as Batch runs them: no shell unless the line starts one, and a warning otherwise."""

from __future__ import annotations

import json

import pytest

from batchspec.emulator.cmdline import split_command_line
from batchspec.spec.commands import runs_a_shell, shell_feature, with_shell

SPEC = """\
name: lint
pool:
  vmSize: standard_d2s_v3
  image: {{publisher: canonical, offer: ubuntu-24_04-lts, sku: server}}
  startTask:
    commandLine: {start}
job:
  tasks:
    forEach: {{range: 3}}
    id: "t{{{{ item }}}}"
{shell}    commandLine: {task}
"""


@pytest.mark.parametrize(
    ("line", "found"),
    [
        ("python3 $AZ_BATCH_NODE_SHARED_DIR/x.py", "the variable $AZ_BATCH_NODE_SHARED_DIR"),
        ('python3 "${HOME}/x.py"', "the variable ${HOME}"),
        ("app.exe %AZ_BATCH_TASK_ID%", "the variable %AZ_BATCH_TASK_ID%"),
        ("sort data.txt | head", "a pipe (|)"),
        ("python3 x.py > out.txt", "a redirect (>)"),
        ("make && make install", "&&"),
        ('echo "$(date)"', "a command substitution ($(...))"),
        ("echo `date`", "a command substitution (`...`)"),
        # what a shell would not expand either, or text no one would take for a shell feature
        ("python3 x.py '$HOME' 'a|b' 'x > y'", None),
        ('python3 -c "print(1 > 0)"', None),
        ("python3 x.py --price \\$5 50%", None),
        ("python3 x.py costs $ 5", None),
        # a shell runs the line: it expands what it needs
        ("/bin/bash -c 'cp a $AZ_BATCH_NODE_SHARED_DIR'", None),
        ("sh -c 'sort | head > x'", None),
        ("/usr/bin/env bash -c 'echo $HOME'", None),
        ('cmd /c "echo %PATH%"', None),
    ],
)
def test_shell_features_are_found_only_where_no_shell_runs_the_line(line, found):
    assert shell_feature(line) == found


def test_shell_bash_sends_the_script_as_one_word_the_node_splits_back():
    script = """cp "$AZ_BATCH_TASK_WORKING_DIR/it's here.py" "$AZ_BATCH_NODE_SHARED_DIR/" && ls | wc -l"""
    line = with_shell("bash", script)
    assert runs_a_shell(line)
    assert split_command_line(line) == ["/bin/bash", "-c", script]


def _spec(tmp_path, *, start: str, task: str, shell: str = "") -> str:
    path = tmp_path / "lint.yaml"
    shell_line = f"    shell: {shell}\n" if shell else ""
    path.write_text(SPEC.format(start=json.dumps(start), task=json.dumps(task), shell=shell_line))
    return str(path)


def test_a_variable_without_a_shell_is_a_warning_naming_the_line_and_strict_refuses_it(cli, tmp_path):
    spec = _spec(
        tmp_path, start="/bin/sh -c 'echo ok'", task="python3 $AZ_BATCH_NODE_SHARED_DIR/t.py {{ item }}"
    )
    result = cli("validate", spec)
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == (
        f"{spec}:11:18: warning: job.tasks.commandLine: uses the variable $AZ_BATCH_NODE_SHARED_DIR "
        "(in 3 of 3 tasks), but Batch runs command lines without a shell: the program gets it as "
        "plain text (add `shell: bash` beside commandLine, or start the line with /bin/bash -c '...')"
    )
    strict = cli("validate", "--strict", spec)
    assert strict.returncode == 2
    assert f"{spec}:11:18: job.tasks.commandLine: uses the variable" in strict.stderr
    assert "valid" not in strict.stdout


def test_a_start_task_pipe_is_a_warning_and_shell_bash_clears_both(cli, tmp_path):
    spec = _spec(tmp_path, start="sort data | head", task="python3 $HOME/t.py")
    result = cli("validate", spec)
    assert f"{spec}:6:18: warning: pool.startTask.commandLine: uses a pipe (|)" in result.stderr
    fixed = _spec(tmp_path, start="/bin/bash -c 'sort data | head'", task="python3 $HOME/t.py", shell="bash")
    clean = cli("validate", "--strict", fixed)
    assert clean.returncode == 0 and clean.stderr == "", clean.stderr
    rendered = json.loads(cli("render", fixed, "--json").stdout)
    assert rendered["tasks"][0]["commandLine"] == "/bin/bash -c 'python3 $HOME/t.py'"
