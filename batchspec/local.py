"""The local services behind the `local` target: Azurite (blob storage) and the Batch emulator.

`up` starts both in the background (detached sessions, logs under ``<data_dir>/logs``) and
records what it started in ``<data_dir>/local.json``: pid, port and the process's start
identity (its start time), so that `down` stops exactly those processes and never a process
that later reused one of their pids. Data stays in ``<data_dir>/azurite`` and
``<data_dir>/batch`` across `down`/`up`.

Over 400 lines: two services' start, readiness, records and stop belong together, since `down`
must stop exactly what `up` started.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from batchspec import waiting
from batchspec.emulator import DEV_ACCOUNT_KEY, DEV_ACCOUNT_NAME
from batchspec.errors import LocalServiceError, UsageError
from batchspec.home import data_dir

AZURITE_ACCOUNT = "devstoreaccount1"
# Azurite's well-known development key: public by design, accepted only by Azurite.
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
AZURITE_FALLBACK_VERSION = "3.37.0"
HOST = "127.0.0.1"
_PORTS = {"azurite": ("BATCHSPEC_AZURITE_PORT", 10000), "emulator": ("BATCHSPEC_EMULATOR_PORT", 10080)}
_STOP_TIMEOUT = 10.0  # seconds between SIGTERM and SIGKILL in down()
_REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class LocalStatus:
    """Whether the local services run, and how to reach them."""

    running: bool
    batch: dict
    storage: dict

    def to_json(self) -> dict:
        return {"running": self.running, "batch": dict(self.batch), "storage": dict(self.storage)}


def log_paths() -> dict[str, Path]:
    """The services' log files: {"azurite": ..., "emulator": ...}."""
    logs = data_dir() / "logs"
    return {"azurite": logs / "azurite.log", "emulator": logs / "emulator.log"}


def status() -> LocalStatus:
    """The services' status, from local.json and the processes it names."""
    state = _read_state()
    if state is None:
        return _status(_configured_ports(), running=False)
    services = state["services"]
    running = all(_alive(services.get(name)) for name in _PORTS)
    ports = {name: services[name]["port"] for name in _PORTS if name in services}
    return _status({**_configured_ports(strict=False), **ports}, running=running)


def ensure_up() -> LocalStatus:
    """Start the services unless they already run."""
    current = status()
    return current if current.running else up()


def up(
    *,
    wait: float = 30.0,
    realistic: bool = False,
    time_scale: float = 1.0,
    incidents: str | None = None,
    quotas: str | None = None,
) -> LocalStatus:
    """Start Azurite and the emulator in the background and wait until both answer.
    `realistic`: the emulator takes about as long as Azure to allocate, start, reboot and release
    nodes, times multiplied by `time_scale` (batchspec/emulator/timing.py). `incidents`: what
    goes wrong in every pool, as JSON (batchspec/emulator/incidents.py), to rehearse failures.
    `quotas`: the account's quotas, as JSON (batchspec/emulator/management.py), for the plan's
    preflight to meet.

    Idempotent: when both already run, their status is returned and nothing is started.
    """
    from batchspec.emulator.incidents import defaults
    from batchspec.emulator.management import quotas as account_quotas

    # Checked here, so that a mistake is said at once and not in the emulator's log.
    for option, text, parse in (("--incidents", incidents, defaults), ("--quotas", quotas, account_quotas)):
        try:
            parse(text)
        except ValueError as exc:
            raise UsageError(f"{option}: {exc}") from None
    home = data_dir()
    for sub in ("logs", "azurite", "batch"):
        (home / sub).mkdir(parents=True, exist_ok=True)
    with _lock(home):
        state = _read_state()
        if state is not None:
            services = state["services"]
            if all(_alive(services.get(name)) for name in _PORTS):
                return status()
            _stop(services)  # half up, or stale: stop what is ours and start afresh
            _state_path().unlink(missing_ok=True)
        ports = _configured_ports()
        for name, port in ports.items():
            _check_port_free(name, port)
        commands = {
            "azurite": azurite_command(home, ports["azurite"]),
            "emulator": [
                sys.executable,
                "-m",
                "batchspec.emulator",
                "--host",
                HOST,
                "--port",
                str(ports["emulator"]),
                "--data-dir",
                str(home / "batch"),
                *(["--realistic", "--time-scale", str(time_scale)] if realistic else []),
                *(["--incidents", incidents] if incidents else []),
                *(["--quotas", quotas] if quotas else []),
            ],
        }
        services = {}
        try:
            for name, command in commands.items():
                services[name] = _spawn(name, command, ports[name])
                _write_state({"services": services})
            _wait_ready(services, wait)
        except BaseException:
            _stop(services)
            _state_path().unlink(missing_ok=True)
            raise
        return status()


def down() -> None:
    """Stop the processes `up` started (SIGTERM, SIGKILL after a timeout); keep their data."""
    home = data_dir()
    if not _state_path().exists():
        return
    with _lock(home):
        state = _read_state()
        if state is not None:
            _stop(state["services"])
        _state_path().unlink(missing_ok=True)


# --- configuration --------------------------------------------------------------------------


def _state_path() -> Path:
    return data_dir() / "local.json"


def _configured_ports(strict: bool = True) -> dict[str, int]:
    ports = {}
    for name, (var, default) in _PORTS.items():
        raw = os.environ.get(var, "").strip()
        try:
            port = int(raw) if raw else default
            if not 0 < port < 65536:
                raise ValueError
        except ValueError:
            if not strict:
                port = default
            else:
                raise LocalServiceError(
                    f"{var}={raw!r} is not a TCP port", hint="use a number between 1 and 65535"
                ) from None
        ports[name] = port
    return ports


def _status(ports: dict[str, int], *, running: bool) -> LocalStatus:
    blob = f"http://{HOST}:{ports['azurite']}/{AZURITE_ACCOUNT}"
    return LocalStatus(
        running=running,
        batch={
            "endpoint": f"http://{HOST}:{ports['emulator']}",
            "account_name": DEV_ACCOUNT_NAME,
            "account_key": DEV_ACCOUNT_KEY,
        },
        storage={
            "blob_endpoint": blob,
            "account_name": AZURITE_ACCOUNT,
            "account_key": AZURITE_KEY,
            "connection_string": (
                f"DefaultEndpointsProtocol=http;"
                f"AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
                f"BlobEndpoint={blob};"
            ),
        },
    )


@contextlib.contextmanager
def _lock(home: Path):
    # Two concurrent `up`s (e.g. parallel `apply`s) must not both start services.
    with open(home / "local.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _read_state() -> dict | None:
    try:
        state = json.loads(_state_path().read_text())
    except (FileNotFoundError, ValueError):
        return None
    if not isinstance(state, dict) or not isinstance(state.get("services"), dict):
        return None
    return state


def _write_state(state: dict) -> None:
    path = _state_path()
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(state, indent=2) + "\n")
    os.replace(tmp, path)


# --- Azurite --------------------------------------------------------------------------------


def azurite_command(home: Path, port: int) -> list[str]:
    """Azurite's blob service on HOST:`port`, its data under `home`/azurite."""
    return [
        *_azurite_executable(home),
        "--blobHost",
        HOST,
        "--blobPort",
        str(port),
        "--location",
        str(home / "azurite"),
        "--skipApiVersionCheck",
        "--loose",
        "--silent",
        # Telemetry phones home, and its pending sends keep Azurite
        # alive for minutes after SIGTERM.
        "--disableTelemetry",
    ]


def _azurite_executable(home: Path) -> list[str]:
    """The azurite-blob executable: the repo's, then PATH's, then one installed with npm."""
    installed = home / "npm" / "node_modules" / ".bin" / "azurite-blob"
    project = _REPO / "node_modules" / ".bin" / "azurite-blob"
    found = (
        (project if project.exists() else None)
        or shutil.which("azurite-blob")
        or (installed if installed.exists() else None)
    )
    if shutil.which("node") is None:
        raise LocalServiceError(
            "Node.js was not found on PATH; the local target runs Azurite, "
            "the Azure Storage emulator, with it",
            hint="install Node.js 18 or later",
        )
    if found is None:
        found = _install_azurite(home, installed)
    return [str(found)]


def _azurite_version() -> str:
    try:
        package = json.loads((_REPO / "package.json").read_text())
    except (OSError, ValueError):
        return AZURITE_FALLBACK_VERSION
    for section in ("devDependencies", "dependencies"):
        version = (package.get(section) or {}).get("azurite")
        if isinstance(version, str) and version.strip():
            return version.strip().lstrip("^~=")
    return AZURITE_FALLBACK_VERSION


def _install_azurite(home: Path, installed: Path) -> Path:
    npm = shutil.which("npm")
    if npm is None:
        raise LocalServiceError(
            "Azurite is not installed and npm was not found to install it",
            hint="install Node.js 18 or later (it comes with npm)",
        )
    log = home / "logs" / "npm-install.log"
    with open(log, "wb") as out:
        result = subprocess.run(
            [
                npm,
                "install",
                "--prefix",
                str(home / "npm"),
                "--no-audit",
                "--no-fund",
                f"azurite@{_azurite_version()}",
            ],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            check=False,
        )
    if result.returncode != 0 or not installed.exists():
        raise LocalServiceError(f"installing Azurite with npm failed (see {log}):\n{_tail(log)}")
    return installed


# --- processes ------------------------------------------------------------------------------


def _check_port_free(name: str, port: int) -> None:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            var = _PORTS[name][0]
            what = "Azurite" if name == "azurite" else "the Batch emulator"
            raise LocalServiceError(
                f"port {port} for {what} is already in use by another process",
                hint=f"stop it or set {var} to a free port",
            ) from None


def _spawn(name: str, command: list[str], port: int) -> dict:
    log = log_paths()[name]
    with open(log, "ab") as out, open(os.devnull, "rb") as null:
        out.write(f"--- {time.strftime('%Y-%m-%dT%H:%M:%S%z')} starting: {' '.join(command)}\n".encode())
        out.flush()
        try:
            proc = subprocess.Popen(
                command,
                stdin=null,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=data_dir(),
                start_new_session=True,
            )
        except OSError as exc:
            raise LocalServiceError(f"cannot start {command[0]}: {exc.strerror or exc}") from None
    # The Popen object is dropped on purpose: the service outlives this process.
    return {"pid": proc.pid, "start": _start_identity(proc.pid), "port": port, "command": command}


def _start_identity(pid: int) -> str | None:
    """What tells this process apart from a later one with the same pid: its start time."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        fields = stat.rsplit(")", 1)[1].split()
        return None if fields[0] == "Z" else fields[19]  # field 22, starttime
    except (OSError, IndexError):
        pass
    try:  # no procfs (macOS): ps gives the start time too
        out = subprocess.run(
            ["ps", "-o", "lstart=", "-p", str(pid)], capture_output=True, text=True, check=False
        ).stdout.strip()
    except OSError:
        return None
    return out or None


def _alive(record: dict | None) -> bool:
    if not record or not isinstance(record.get("pid"), int) or not record.get("start"):
        return False
    return _start_identity(record["pid"]) == record["start"]


def _reap(pid: int) -> None:
    # When up() and down() run in one process (tests, a long-lived caller) the services are our
    # children: collect them so they do not linger as zombies.
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def _stop(services: dict) -> None:
    mine = [r for r in services.values() if _alive(r)]
    for record in mine:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(record["pid"], signal.SIGTERM)

    def stopped() -> bool:
        for record in mine:
            _reap(record["pid"])
        return not any(_alive(r) for r in mine)

    if waiting.poll(stopped, waiting.Deadline(_STOP_TIMEOUT, "stop"), 0.1):
        return
    for record in mine:
        if _alive(record):
            # It started its own session, so its group holds whatever it spawned.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(record["pid"], signal.SIGKILL)
    waiting.poll(stopped, waiting.Deadline(2.5, "kill"), 0.05)


def _wait_ready(services: dict, wait: float) -> None:
    urls = {
        "azurite": f"http://{HOST}:{services['azurite']['port']}/{AZURITE_ACCOUNT}?comp=list",
        "emulator": f"http://{HOST}:{services['emulator']['port']}/pools",
    }
    pending = dict(urls)

    def ready() -> bool:
        for name in list(pending):
            if not _alive(services[name]):
                _reap(services[name]["pid"])
                raise LocalServiceError(
                    f"{_label(name)} exited while starting (log "
                    f"{log_paths()[name]}):\n{_tail(log_paths()[name])}"
                )
            if _answers(pending[name]):
                del pending[name]
        return not pending

    def not_ready() -> LocalServiceError:
        name = next(iter(pending))
        return LocalServiceError(
            f"{_label(name)} did not answer on {urls[name]} within "
            f"{wait:g}s (log {log_paths()[name]}):\n"
            f"{_tail(log_paths()[name])}"
        )

    waiting.until(ready, waiting.Deadline(wait, "start"), 0.1, "the local services", error=not_ready)


def _answers(url: str) -> bool:
    try:
        urllib.request.urlopen(url, timeout=1).close()
    except urllib.error.HTTPError as exc:  # 401/403 without credentials: it is up
        exc.close()
    except (OSError, ValueError):
        return False
    return True


def _label(name: str) -> str:
    return "Azurite" if name == "azurite" else "the Batch emulator"


def _tail(path: Path, lines: int = 20) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:]) or "(empty log)"
