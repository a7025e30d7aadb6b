"""Real local services as subprocesses (Azurite, the Batch emulator, the fault proxy) and a
workspace that drives the real `batchspec` CLI against them with `--target azure`."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from azure.batch import BatchClient
from azure.core.credentials import AzureNamedKeyCredential
from azure.storage.blob import BlobServiceClient

from batchspec.emulator import DEV_ACCOUNT_KEY, DEV_ACCOUNT_NAME
from batchspec.local import AZURITE_ACCOUNT, AZURITE_KEY  # noqa: F401 - the suite reads both
from helpers import ROOT, expected_output
from support.services import Service, azurite, connection_string, free_port  # noqa: F401 - used by the suite


def emulator(
    data_dir: Path, *, port: int = 0, rate_503: float = 0, drop: float = 0, seed: int | None = None
) -> Service:
    argv = [sys.executable, "-m", "batchspec.emulator", "--port", str(port), "--data-dir", str(data_dir)]
    argv += ["--allocation-delay", "0.1"]
    if not (rate_503 or drop):
        argv.append("--quiet")  # the faulty one logs requests: the tests count its faults
    else:
        argv += ["--fault-503-rate", str(rate_503), "--fault-drop-rate", str(drop), "--seed", str(seed)]
    return Service("emulator", argv, data_dir.parent / "logs" / f"emulator-{data_dir.name}.log")


def faultproxy(
    upstream: str,
    log: Path,
    *,
    rate_503: float,
    drop: float,
    seed: int,
    methods: str = "",
    container_delete_seconds: float = 0,
) -> Service:
    argv = [
        sys.executable,
        "-m",
        "batchspec.emulator.faultproxy",
        "--listen-port",
        "0",
        "--upstream",
        upstream,
    ]
    argv += ["--503-rate", str(rate_503), "--drop-rate", str(drop), "--seed", str(seed)]
    argv += ["--methods", methods] if methods else []
    argv += ["--container-delete-seconds", str(container_delete_seconds)] if container_delete_seconds else []
    return Service("faultproxy", argv, log)


def proxy_stats(proxy: Service) -> Counter:
    """Requests the proxy saw and the faults it injected, so far."""
    import json
    import urllib.request

    with urllib.request.urlopen(proxy.url + "/.faultproxy/stats", timeout=10) as r:
        return Counter(json.load(r))


def emulator_statuses(emulator: Service) -> Counter:
    """Status codes in the emulator's access log (a dropped connection is logged as a 503)."""
    found = (re.search(r" (\d{3}) [\d.]+ms$", line.rstrip()) for line in list(emulator.stderr_lines))
    return Counter(m.group(1) for m in found if m)


def azure_env(batch_url: str, blob_url: str, home: Path) -> dict[str, str]:
    """The environment that points `--target azure` at local services."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AZURE_", "BATCHSPEC_"))}
    env.update(
        AZURE_BATCH_ENDPOINT=batch_url,
        AZURE_BATCH_ACCOUNT_NAME=DEV_ACCOUNT_NAME,
        AZURE_BATCH_ACCOUNT_KEY=DEV_ACCOUNT_KEY,
        AZURE_STORAGE_CONNECTION_STRING=connection_string(blob_url),
        BATCHSPEC_TARGET="azure",
        BATCHSPEC_HOME=str(home),  # `local up` must never be needed: fail loudly if it were
        BATCHSPEC_AZURITE_PORT="1",
        BATCHSPEC_EMULATOR_PORT="1",
    )
    return env


FAULT_503, FAULT_DROP = 0.10, 0.05


@dataclass
class Stack:
    home: Path
    batch: Service
    blob_url: str  # what batchspec is given: Azurite, or the fault proxy in front of it
    azurite: Service
    proxy: Service | None = None

    @property
    def env(self) -> dict[str, str]:
        return azure_env(self.batch.url, self.blob_url, self.home)

    def batch_client(self) -> BatchClient:
        return BatchClient(self.batch.url, AzureNamedKeyCredential(DEV_ACCOUNT_NAME, DEV_ACCOUNT_KEY))

    def blob_service(self) -> BlobServiceClient:
        """Straight to Azurite, never through the proxy: the tests' own reads see no fault."""
        return BlobServiceClient.from_connection_string(connection_string(self.azurite.url))


def new_name() -> str:
    return "r" + uuid.uuid4().hex[:10]


SECRETS = (DEV_ACCOUNT_KEY, AZURITE_KEY)


def owned(ws: Workspace, stack) -> dict[str, list[str]]:
    """What the services hold that carries the workspace's owner tag (or its names)."""
    blob = stack.blob_service()
    batch = stack.batch_client()
    containers = [
        c.name
        for c in blob.list_containers(include_metadata=True)
        if c.name.startswith(ws.name) or (c.metadata or {}).get("batchspec_owner") == ws.name
    ]

    def mine(resource) -> bool:
        tags = {m.name: m.value for m in resource.metadata or []}
        return resource.id.startswith(ws.name) or tags.get("batchspec-owner") == ws.name

    return {
        "containers": containers,
        "pools": [p.id for p in batch.list_pools() if mine(p)],
        "jobs": [j.id for j in batch.list_jobs() if mine(j)],
    }


def assert_nothing_owned(ws: Workspace, stack) -> None:
    assert owned(ws, stack) == {"containers": [], "pools": [], "jobs": []}
    lock = stack.blob_service().get_blob_client("batchspec-locks", f"{ws.name}.lock")
    assert lock.get_blob_properties().lease.state != "leased"  # the empty lock blob stays, free


SPEC = """\
name: {name}
vars:
  numwords: 3
  inputs: data/*.txt
  command: python3 "$AZ_BATCH_NODE_SHARED_DIR/topn_task.py"
storage:
  containers:
    {name}-app: {{upload: ["node/*.py"]}}
    {name}-in: {{upload: ["{{{{ vars.inputs }}}}"]}}
    {name}-out: {{}}
pool:
  id: {name}-pool
  vmSize: standard_d2s_v3
  image: {{publisher: canonical, offer: ubuntu-24_04-lts, sku: server}}
  targetDedicatedNodes: 2
  taskSlotsPerNode: 2
  startTask:
    commandLine: /bin/bash -c 'cp "$AZ_BATCH_TASK_WORKING_DIR"/*.py "$AZ_BATCH_NODE_SHARED_DIR/"'
    resourceFiles: [{{container: {name}-app}}]
    maxTaskRetryCount: {retries}
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
    maxTaskRetryCount: {retries}
wait: {{timeout: PT3M}}
download: {{container: {name}-out, to: out/}}
"""


REVERSE_SPEC = """\
name: {name}
storage:
  containers:
    {name}-app: {{upload: [tools/reverse.py]}}
    {name}-in: {{upload: ["blobs/*.bin"]}}
    {name}-out: {{}}
pool:
  id: {name}-pool
  vmSize: standard_d2s_v3
  image: {{publisher: canonical, offer: ubuntu-24_04-lts, sku: server}}
  targetDedicatedNodes: 2
  taskSlotsPerNode: 2
  startTask:
    commandLine: /bin/bash -c 'cp "$AZ_BATCH_TASK_WORKING_DIR/reverse.py" "$AZ_BATCH_NODE_SHARED_DIR/"'
    resourceFiles: [{{container: {name}-app}}]
    maxTaskRetryCount: {retries}
job:
  id: {name}-job
  tasks:
    forEach: {{container: {name}-in}}
    id: "rev-{{{{ item.stem }}}}"
    shell: bash
    commandLine: >-
      python3 "$AZ_BATCH_NODE_SHARED_DIR/reverse.py" {{{{ item.name | shquote }}}} {{{{ item.stem }}}}.out
    resourceFiles: [{{blob: "{{{{ item.ref }}}}"}}]
    outputFiles: [{{pattern: "*.out", container: {name}-out}}]
    maxTaskRetryCount: {retries}
wait: {{timeout: PT3M}}
download: {{container: {name}-out, to: out/}}
"""

REVERSE_PY = """\
import sys

with open(sys.argv[1], "rb") as f:
    data = f.read()
with open(sys.argv[2], "wb") as f:
    f.write(data[::-1])
"""


def reverse_workspace(
    root: Path, name: str, env: dict[str, str], sizes: list[int], *, seed: int, retries: int
) -> Workspace:
    """Binary inputs of the given sizes (seeded bytes); each task writes its input reversed."""
    import random

    rng = random.Random(seed)
    (root / "blobs").mkdir(parents=True)
    (root / "tools").mkdir()
    (root / "tools" / "reverse.py").write_text(REVERSE_PY)
    for i, size in enumerate(sizes):
        (root / "blobs" / f"b{i}.bin").write_bytes(rng.randbytes(size))
    ws = Workspace(root, name, env, retries, template=REVERSE_SPEC)
    ws.write_spec()
    return ws


# `slow_topn.py SECONDS ARGS...` sleeps, then runs topn_task.py ARGS.
SLOW_TOPN = """\
import os, runpy, sys, time

time.sleep(float(sys.argv[1]))
sys.argv = [os.path.join(os.path.dirname(os.path.abspath(__file__)), "topn_task.py"), *sys.argv[2:]]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def slow(seconds: float) -> str:
    """The `--var` that makes every task take `seconds` longer."""
    return f'command=python3 "$AZ_BATCH_NODE_SHARED_DIR/slow_topn.py" {seconds}'


@dataclass
class Workspace:
    """A copy of the tutorial (inputs and node script) under its own spec name."""

    root: Path
    name: str
    env: dict[str, str]
    retries: int = 1
    template: str = SPEC
    runs: list[subprocess.CompletedProcess] = field(default_factory=list)

    @classmethod
    def create(cls, root: Path, name: str, env: dict[str, str], *, inputs: int = 3, retries: int = 1):
        (root / "data").mkdir(parents=True)
        for i in range(inputs):
            src = ROOT / "data" / f"taskdata{i % 3}.txt"
            text = src.read_text()
            if i >= 3:  # more inputs: distinct texts, so each output is checked on its own
                text = f"{text}\n" + " ".join(["extra"] * i + [f"word{i}"] * (i + 1))
            (root / "data" / f"taskdata{i}.txt").write_text(text)
        shutil.copytree(ROOT / "node", root / "node", ignore=shutil.ignore_patterns("__pycache__"))
        (root / "node" / "slow_topn.py").write_text(SLOW_TOPN)
        ws = cls(root, name, env, retries)
        ws.write_spec()
        return ws

    @property
    def spec(self) -> Path:
        return self.root / "spec.yaml"

    def write_spec(self) -> None:
        self.spec.write_text(self.template.format(name=self.name, retries=self.retries))

    def argv(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "batchspec", *args]

    def run(self, *args: str, timeout: float = 240, env: dict | None = None) -> subprocess.CompletedProcess:
        r = subprocess.run(
            self.argv(*args),
            cwd=self.root,
            env=env or self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
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
