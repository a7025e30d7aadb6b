"""A workspace that drives the real `batchspec` CLI as a user does: a folder with a spec written
from one of the templates below, its inputs, and a runner of `python -m batchspec` in it.

Every workspace has its own spec name, so tests never share a resource."""

from __future__ import annotations

import random
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from helpers import ROOT, expected_output

# The spec of a workspace: the tutorial's shape, under the workspace's name. `TOPN` and
# `REVERSE` fill in what differs.
_SPEC = """\
# yaml-language-server: $schema={schema}
name: {name}
{vars}storage:
  containers:
    {name}-app: {{upload: [{app}]}}
    {name}-in: {{upload: [{inputs}]}}
    {name}-out: {{}}
pool:
  id: {name}-pool
  vmSize: {vm_size}
  image: {{publisher: canonical, offer: ubuntu-24_04-lts, sku: server}}
  targetDedicatedNodes: {nodes}
  taskSlotsPerNode: 2
  startTask:
    shell: bash
    commandLine: cp "$AZ_BATCH_TASK_WORKING_DIR"/{copy} "$AZ_BATCH_NODE_SHARED_DIR/"
    resourceFiles: [{{container: {name}-app}}]
    maxTaskRetryCount: {retries}
job:
  id: {name}-job
  tasks:
    forEach: {{container: {name}-in}}
    id: "{task_id}-{{{{ item.stem }}}}"
    shell: bash
    commandLine: >-
      {command}
    resourceFiles: [{{blob: "{{{{ item.ref }}}}"}}]
    outputFiles: [{{pattern: "{outputs}", container: {name}-out}}]
    maxTaskRetryCount: {retries}
wait: {{timeout: PT3M}}
download: {{container: {name}-out, to: out/}}
"""

# The tutorial. `node/*.py` goes up, so `slow_topn.py` is on the node.
TOPN = {
    "vars": (
        "vars:\n  numwords: 3\n  inputs: data/*.txt\n"
        '  command: python3 "$AZ_BATCH_NODE_SHARED_DIR/topn_task.py"\n'
    ),
    "app": '"node/*.py"',
    "inputs": '"{{ vars.inputs }}"',
    "copy": "*.py",
    "task_id": "topn",
    "command": "{{ vars.command }} --filepath {{ item.name | shquote }} --numwords {{ vars.numwords }}",
    "outputs": "*_OUTPUT.txt",
}

# Binary inputs; each task writes its input reversed.
REVERSE = {
    "vars": "",
    "app": "tools/reverse.py",
    "inputs": '"blobs/*.bin"',
    "copy": "reverse.py",
    "task_id": "rev",
    "command": 'python3 "$AZ_BATCH_NODE_SHARED_DIR/reverse.py" {{ item.name | shquote }} {{ item.stem }}.out',
    "outputs": "*.out",
}

REVERSE_PY = """\
import sys

with open(sys.argv[1], "rb") as f:
    data = f.read()
with open(sys.argv[2], "wb") as f:
    f.write(data[::-1])
"""

# `slow_topn.py SECONDS ARGS...` sleeps, then runs topn_task.py ARGS.
SLOW_TOPN = """\
import os, runpy, sys, time

time.sleep(float(sys.argv[1]))
sys.argv = [os.path.join(os.path.dirname(os.path.abspath(__file__)), "topn_task.py"), *sys.argv[2:]]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def slow(seconds: float) -> str:
    """The `--var` that makes every tutorial task take `seconds` longer."""
    return f'command=python3 "$AZ_BATCH_NODE_SHARED_DIR/slow_topn.py" {seconds}'


@dataclass
class Workspace:
    root: Path
    name: str
    env: dict[str, str]
    template: dict = field(default_factory=lambda: TOPN)
    params: dict = field(default_factory=lambda: {"vm_size": "standard_d2s_v3", "nodes": 2, "retries": 1})
    secrets: tuple[str, ...] = ()  # what must never be printed: the services' keys
    runs: list[subprocess.CompletedProcess] = field(default_factory=list)

    @classmethod
    def tutorial(cls, root: Path, name: str, env: dict[str, str], *, inputs: int = 3, **params) -> Workspace:
        """The tutorial's inputs (more of them, each distinct, when asked) and its node script."""
        (root / "data").mkdir(parents=True)
        for i in range(inputs):
            text = (ROOT / "data" / f"taskdata{i % 3}.txt").read_text()
            if i >= 3:  # distinct texts, so each output is checked on its own
                text = f"{text}\n" + " ".join(["extra"] * i + [f"word{i}"] * (i + 1))
            (root / "data" / f"taskdata{i}.txt").write_text(text)
        shutil.copytree(ROOT / "node", root / "node", ignore=shutil.ignore_patterns("__pycache__"))
        (root / "node" / "slow_topn.py").write_text(SLOW_TOPN)
        ws = cls(root, name, env)
        ws.params.update(params)
        ws.write_spec()
        return ws

    @classmethod
    def reverse(
        cls, root: Path, name: str, env: dict[str, str], sizes: list[int], *, seed: int, **params
    ) -> Workspace:
        """Binary inputs of the given sizes (seeded bytes) for the REVERSE spec."""
        rng = random.Random(seed)
        (root / "blobs").mkdir(parents=True)
        (root / "tools").mkdir()
        (root / "tools" / "reverse.py").write_text(REVERSE_PY)
        for i, size in enumerate(sizes):
            (root / "blobs" / f"b{i}.bin").write_bytes(rng.randbytes(size))
        ws = cls(root, name, env, template=REVERSE)
        ws.params.update(params)
        ws.write_spec()
        return ws

    @property
    def spec(self) -> Path:
        return self.root / "spec.yaml"

    def write_spec(self, **changes) -> None:
        """The spec from the workspace's parameters, with `changes` to them for this once."""
        schema = ROOT / "schemas" / "batchspec.schema.json"
        fields = {**self.template, **self.params, **changes}
        self.spec.write_text(_SPEC.format(name=self.name, schema=schema, **fields))

    def argv(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "batchspec", *args]

    def run(
        self, *args: str, stdin: str | None = None, timeout: float = 240, env: dict | None = None
    ) -> subprocess.CompletedProcess:
        """`batchspec ARGS` in the workspace, as a user runs it (no terminal)."""
        r = subprocess.run(
            self.argv(*args),
            cwd=self.root,
            env=env or self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            input=stdin,
            stdin=None if stdin is not None else subprocess.DEVNULL,
        )
        self.runs.append(r)
        return r

    def apply(self, *args: str, **kw) -> subprocess.CompletedProcess:
        return self.run("apply", "spec.yaml", "--auto-approve", *args, **kw)

    def popen_apply(self, *args: str) -> subprocess.Popen:
        return subprocess.Popen(
            self.argv("apply", "spec.yaml", "--auto-approve", *args),
            cwd=self.root,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
        )

    def inputs(self) -> list[Path]:
        return sorted((self.root / "data").glob("*.txt"))

    def expected_outputs(self) -> dict[str, list[str]]:
        return {p.stem: expected_output(p.read_text(), 3) for p in self.inputs()}

    def check_outputs(self) -> None:
        """Every input's output file is downloaded, with the independently computed top words."""
        out = self.root / "out"
        for stem, top in self.expected_outputs().items():
            lines = (out / f"{stem}_OUTPUT.txt").read_text().splitlines()
            assert lines[2:5] == top, (stem, lines)
            assert lines[7] == f"Task: topn-{stem}", (stem, lines)
        found = sorted(p.name for p in out.iterdir())
        assert found == sorted(f"{s}_OUTPUT.txt" for s in self.expected_outputs()), found
