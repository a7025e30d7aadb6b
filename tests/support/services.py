"""The local services as real subprocesses on free loopback ports, for every test suite: the
launcher, Azurite, the development keys (from batchspec itself, never copied) and their
connection string."""

from __future__ import annotations

import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from batchspec.emulator import DEV_ACCOUNT_KEY, DEV_ACCOUNT_NAME  # noqa: F401 - the suites' keys
from batchspec.local import AZURITE_ACCOUNT, AZURITE_KEY, azurite_command

LISTENING = re.compile(r"listen(?:s|ing) on (https?://[\d.]+:\d+)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Service:
    """A service subprocess in its own session; `url` once it said where it listens."""

    def __init__(
        self, name: str, argv: list[str], log: Path, *, ready: re.Pattern = LISTENING, env: dict | None = None
    ):
        self.name, self.argv, self.log, self.ready = name, argv, log, ready
        self.env = env or {}
        self.proc: subprocess.Popen | None = None
        self.url = ""
        self.stderr_lines: list[str] = []

    def start(self, timeout: float = 60) -> Service:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            self.argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
            start_new_session=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **self.env},
        )
        lines: queue.Queue[str | None] = queue.Queue()
        log = self.log.open("a")

        def pump(stream, keep: bool) -> None:
            for line in stream:
                log.write(line)
                log.flush()
                if keep:
                    self.stderr_lines.append(line)
                lines.put(line)
            lines.put(None)

        threading.Thread(target=pump, args=(self.proc.stdout, False), daemon=True).start()
        threading.Thread(target=pump, args=(self.proc.stderr, True), daemon=True).start()
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                line = None
            if line is not None and (m := self.ready.search(line)):
                self.url = m.group(1)
                return self
            if line is None and (time.monotonic() >= deadline or self.proc.poll() is not None):
                self.kill()
                raise RuntimeError(f"{self.name} did not start; see {self.log}")

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def kill(self) -> None:
        """SIGKILL, as a crash."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 15 s."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()


def emulator(
    data_dir: Path,
    *extra: str,
    port: int = 0,
    allocation_delay: float = 0.1,
    quiet: bool = True,
    env: dict | None = None,
) -> Service:
    """`python -m batchspec.emulator` on `data_dir`; `extra` are more of its options, `env` more
    of its environment."""
    argv = [sys.executable, "-m", "batchspec.emulator", "--port", str(port), "--data-dir", str(data_dir)]
    argv += ["--allocation-delay", str(allocation_delay), *(["--quiet"] if quiet else []), *extra]
    log = data_dir.parent / "logs" / f"emulator-{data_dir.name}.log"
    return Service("emulator", argv, log, env=env)


def azurite(home: Path, *extra: str, port: int = 0) -> Service:
    """Azurite's blob service under `home`; `extra` are more of its options (`--oauth basic`)."""
    port = port or free_port()
    return Service("azurite", [*azurite_command(home, port), *extra], home / "logs" / "azurite.log")


def connection_string(blob_url: str) -> str:
    return (
        f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
        f"BlobEndpoint={blob_url}/{AZURITE_ACCOUNT};"
    )
