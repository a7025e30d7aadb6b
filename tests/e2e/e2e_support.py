"""What the end-to-end tests share besides fixtures: the test spec and a workspace around it."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from helpers import ROOT

SPEC = """\
# yaml-language-server: $schema={schema}
name: {name}
vars:
  numwords: 3
  inputs: data/*.txt
  command: python3 "$AZ_BATCH_NODE_SHARED_DIR/topn_task.py"
storage:
  containers:
    {name}-app: {{upload: [node/topn_task.py]}}
    {name}-in: {{upload: ["{{{{ vars.inputs }}}}"]}}
    {name}-out: {{}}
pool:
  id: {name}-pool
  vmSize: {vm_size}
  image: {{publisher: canonical, offer: ubuntu-24_04-lts, sku: server}}
  targetDedicatedNodes: {nodes}
  taskSlotsPerNode: 2
  startTask:
    shell: bash
    commandLine: cp "$AZ_BATCH_TASK_WORKING_DIR/topn_task.py" "$AZ_BATCH_NODE_SHARED_DIR/"
    resourceFiles: [{{container: {name}-app}}]
job:
  id: {name}-job
  tasks:
    forEach: {{container: {name}-in}}
    id: "topn-{{{{ item.stem }}}}"
    shell: bash
    commandLine: >-
      {{{{ vars.command }}}} --filepath {{{{ item.name | shquote }}}} --numwords {{{{ vars.numwords }}}}
    resourceFiles: [{{blob: "{{{{ item.ref }}}}"}}]
    outputFiles: [{{pattern: "*_OUTPUT.txt", container: {name}-out}}]
wait: {{timeout: PT2M}}
download: {{container: {name}-out, to: out/}}
"""


@dataclass
class Workspace:
    root: Path
    name: str
    env: dict[str, str]
    status: dict

    @property
    def spec(self) -> Path:
        return self.root / "spec.yaml"

    def write_spec(self, *, vm_size: str = "standard_d2s_v3", nodes: int = 2) -> None:
        self.spec.write_text(
            SPEC.format(
                name=self.name,
                vm_size=vm_size,
                nodes=nodes,
                schema=ROOT / "schemas" / "batchspec.schema.json",
            )
        )

    def run(self, *args: str, stdin: str | None = None, timeout: float = 180) -> subprocess.CompletedProcess:
        """`batchspec ARGS` in the workspace, as a user runs it (no terminal)."""
        return subprocess.run(
            [sys.executable, "-m", "batchspec", *args],
            cwd=self.root,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            input=stdin,
        )

    def apply(self, *args: str, **kw) -> subprocess.CompletedProcess:
        return self.run("apply", "spec.yaml", "--auto-approve", *args, **kw)

    def secrets(self) -> list[str]:
        return [self.status["batch"]["account_key"], self.status["storage"]["account_key"]]
