"""Shared pieces of the benchmarks: isolated local services, timing, peak RSS, request counting,
the results table and `benchmarks/results.json`.

Not a benchmark itself (`make bench` skips `_*.py`).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from azure.core.pipeline.policies import SansIOHTTPPolicy

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results.json"
CACHE = REPO / ".cache"  # gitignored: azcopy and its library live here


# -- command line -----------------------------------------------------------------------------


def parser(doc: str) -> argparse.ArgumentParser:
    """The options every benchmark takes: --quick (smoke size) and --check (exit 1 on a miss)."""
    p = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="a small smoke size instead of the full figures")
    p.add_argument("--check", action="store_true", help="exit non-zero when a target is missed")
    return p


# -- isolated local services ------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalServices:
    """Azurite and the Batch emulator in a throwaway BATCHSPEC_HOME on free ports.

    The environment variables are set in this process (so `targets.connect("local")` finds the
    services) and inherited by every CLI subprocess; other people's services on the default
    ports are never touched. `start=False` leaves them down, for cold-start measurements (the
    first `batchspec` command starts them).
    """

    def __init__(self, *, start: bool = True):
        self.home = Path(tempfile.mkdtemp(prefix="batchspec-bench-home-"))
        self._saved = {k: os.environ.get(k) for k in self.vars()}
        os.environ["BATCHSPEC_HOME"] = str(self.home)
        os.environ["BATCHSPEC_AZURITE_PORT"] = str(free_port())
        os.environ["BATCHSPEC_EMULATOR_PORT"] = str(free_port())
        os.environ["BATCHSPEC_TARGET"] = "local"
        if start:
            self.up()

    @staticmethod
    def vars() -> tuple[str, ...]:
        return ("BATCHSPEC_HOME", "BATCHSPEC_AZURITE_PORT", "BATCHSPEC_EMULATOR_PORT", "BATCHSPEC_TARGET")

    def up(self):
        from batchspec import local

        return local.up()

    def status(self):
        from batchspec import local

        return local.status()

    def close(self) -> None:
        from batchspec import local

        try:
            local.down()
        finally:
            for k, v in self._saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
            shutil.rmtree(self.home, ignore_errors=True)

    def __enter__(self) -> LocalServices:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def connect(**kwargs):
    """`batchspec.services.targets.connect("local")` with a request counter on both clients."""
    from batchspec.services import targets

    counter = RequestCounter()
    client = targets.connect("local", policies=[counter], **kwargs)
    return client, counter


class RequestCounter(SansIOHTTPPolicy):
    """Counts every HTTP request (retries included) of the clients it is attached to."""

    def __init__(self):
        super().__init__()
        self._lock = threading.Lock()
        self.count = 0

    def on_request(self, request) -> None:
        with self._lock:
            self.count += 1

    def reset(self) -> int:
        with self._lock:
            n, self.count = self.count, 0
        return n


def ubuntu_vm():
    """The Ubuntu 24.04 image and node agent the naive baselines' pools use (as the specs do)."""
    from azure.batch import models as bm

    return bm.VirtualMachineConfiguration(
        image_reference=bm.BatchVmImageReference(
            publisher="canonical", offer="ubuntu-24_04-lts", sku="server"
        ),
        node_agent_sku_id="batch.node.ubuntu 24.04",
    )


# -- measuring --------------------------------------------------------------------------------


@contextlib.contextmanager
def timer() -> Iterator[dict]:
    """`with timer() as t: ...` then t["s"] holds the wall-clock seconds."""
    box: dict = {}
    start = time.perf_counter()
    try:
        yield box
    finally:
        box["s"] = time.perf_counter() - start


@dataclass
class Proc:
    seconds: float
    peak_rss_mb: float
    returncode: int
    stdout: str
    stderr: str


def run(cmd: list[str], *, cwd: Path | None = None, env: dict | None = None, timeout: float = 3600) -> Proc:
    """Run a command; its wall time and its own peak RSS (os.wait4 reports that child alone,
    unlike RUSAGE_CHILDREN which is the maximum over every child so far)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err)
        deadline = start + timeout
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                proc.kill()
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.005)
        seconds = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return Proc(
            seconds,
            usage.ru_maxrss / 1024,  # KiB on Linux
            proc.returncode,
            out.read().decode(errors="replace"),
            err.read().decode(errors="replace"),
        )


_compiled = False


def compile_package() -> None:
    """Write batchspec's bytecode, as `pip install` does for a regular install.

    The repository's editable install has no __pycache__ where PYTHONDONTWRITEBYTECODE is set
    (it is on the benchmark machine): every CLI run would then compile batchspec from source,
    about 0.3 s that no installed copy pays. py_compile writes the files regardless of it.
    """
    global _compiled
    if not _compiled:
        import compileall

        compileall.compile_dir(REPO / "batchspec", quiet=1)
        _compiled = True


def batchspec_cli() -> list[str]:
    """The installed `batchspec` console script next to this interpreter (the real entry point)."""
    compile_package()
    script = Path(sys.executable).parent / "batchspec"
    return [str(script)] if script.exists() else [sys.executable, "-m", "batchspec"]


def median(values: list[float]) -> float:
    return statistics.median(values)


# -- results ----------------------------------------------------------------------------------


@dataclass
class Row:
    """One figure: batchspec's value, the naive baseline's (and a peer's), the target, met or not."""

    figure: str
    unit: str
    batchspec: float | None
    baseline: float | None = None
    peer: float | None = None  # azcopy, for transfers
    ratio: float | None = None  # how many times better batchspec is than the baseline
    target: str = ""
    met: bool | None = None  # None: no target for this row
    runs: list[float] = field(default_factory=list)  # every measurement the figure is the median of
    note: str = ""


def _fmt(v: float | None, unit: str = "") -> str:
    if v is None:
        return "-"
    if isinstance(v, float) and not v.is_integer():
        text = f"{v:.2f}" if abs(v) < 100 else f"{v:.0f}"
    else:
        text = f"{int(v)}"
    return f"{text} {unit}".strip()


def table(rows: list[Row]) -> str:
    head = ["figure", "batchspec", "baseline", "azcopy", "ratio", "target", "met"]
    body = [
        [
            r.figure,
            _fmt(r.batchspec, r.unit),
            _fmt(r.baseline, r.unit),
            _fmt(r.peer, r.unit),
            "-" if r.ratio is None else f"{r.ratio:.1f}x",
            r.target or "-",
            {True: "yes", False: "MISSED", None: "-"}[r.met],
        ]
        for r in rows
    ]
    widths = [max(len(x) for x in col) for col in zip(head, *body, strict=False)]
    lines = ["| " + " | ".join(h.ljust(w) for h, w in zip(head, widths, strict=False)) + " |"]
    lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    lines += ["| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=False)) + " |" for row in body]
    return "\n".join(lines)


def machine() -> dict:
    cpu = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem_gb = None
    with contextlib.suppress(OSError, ValueError, IndexError):
        mem_gb = round(int(Path("/proc/meminfo").read_text().split()[1]) / 1024 / 1024, 1)
    versions = {}
    for pkg in ("azure-batch", "azure-storage-blob", "azure-core"):
        with contextlib.suppress(Exception):
            from importlib.metadata import version

            versions[pkg] = version(pkg)
    with contextlib.suppress(OSError, ValueError):
        versions["azurite"] = json.loads((REPO / "node_modules/azurite/package.json").read_text())["version"]
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True, check=False
    ).stdout.strip()
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gb": mem_gb,
        "loadavg_1m": os.getloadavg()[0],
        "os": platform.platform(),
        "python": platform.python_version(),
        "versions": versions,
        "commit": commit,
    }


def report(name: str, rows: list[Row], *, quick: bool, check: bool, params: dict | None = None) -> int:
    """Print the table, merge this benchmark's figures into results.json, return the exit code."""
    print()
    print(f"{name}{' (--quick: smoke size, targets not meaningful)' if quick else ''}")
    print(table(rows))
    for r in rows:
        if r.note:
            print(f"  {r.figure}: {r.note}")
    missed = [r.figure for r in rows if r.met is False]
    if missed and not quick:
        print("TARGET MISSED: " + "; ".join(missed))
    results = {}
    with contextlib.suppress(OSError, ValueError):
        results = json.loads(RESULTS.read_text())
    results[name] = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "quick": quick,
        "params": params or {},
        "machine": machine(),
        "figures": [asdict(r) for r in rows],
    }
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"(written to {RESULTS.relative_to(REPO)})")
    return 1 if check and missed else 0
