"""The local services' lifecycle with real Azurite and real emulator processes."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from azure.core.credentials import AzureNamedKeyCredential
from azure.storage.blob import BlobServiceClient

from batchspec import local
from batchspec.errors import LocalServiceError
from support.services import free_port


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("BATCHSPEC_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("BATCHSPEC_AZURITE_PORT", str(free_port()))
    monkeypatch.setenv("BATCHSPEC_EMULATOR_PORT", str(free_port()))
    yield tmp_path / "home"
    local.down()


def _state(home: Path) -> dict:
    return json.loads((home / "local.json").read_text())["services"]


def _gone(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def _http_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        exc.close()
        return exc.code


def test_data_dir_precedence(monkeypatch, tmp_path):
    monkeypatch.delenv("BATCHSPEC_HOME", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert local.data_dir() == tmp_path / "xdg" / "batchspec"
    monkeypatch.delenv("XDG_DATA_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "h"))
    assert local.data_dir() == tmp_path / "h" / ".local" / "share" / "batchspec"
    monkeypatch.setenv("BATCHSPEC_HOME", str(tmp_path / "bh"))
    assert local.data_dir() == tmp_path / "bh"
    assert local.log_paths() == {
        "azurite": tmp_path / "bh" / "logs" / "azurite.log",
        "emulator": tmp_path / "bh" / "logs" / "emulator.log",
    }


def test_status_before_up(home):
    status = local.status()
    assert status.running is False
    port = os.environ["BATCHSPEC_EMULATOR_PORT"]
    assert status.batch["endpoint"] == f"http://127.0.0.1:{port}"


def test_up_is_idempotent_serves_both_and_down_stops_exactly_those(home):
    foreign = subprocess.Popen(
        [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(free_port())],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        status = local.up()
        assert status.running
        doc = status.to_json()
        assert set(doc) == {"running", "batch", "storage"} and doc["running"] is True
        assert set(doc["batch"]) == {"endpoint", "account_name", "account_key"}
        assert set(doc["storage"]) == {"blob_endpoint", "account_name", "account_key", "connection_string"}
        assert doc["batch"]["account_name"] == "devbatch"
        assert doc["storage"]["account_name"] == "devstoreaccount1"
        assert json.loads(json.dumps(doc)) == doc

        # Azurite: the real storage client creates a container and round-trips a blob.
        blobs = BlobServiceClient.from_connection_string(doc["storage"]["connection_string"])
        container = blobs.create_container("lifecycle")
        container.upload_blob("hello.txt", b"hi")
        assert container.download_blob("hello.txt").readall() == b"hi"
        blobs.close()

        # The emulator: the real Batch client authenticates and lists pools.
        from azure.batch import BatchClient

        batch = BatchClient(
            doc["batch"]["endpoint"],
            AzureNamedKeyCredential(doc["batch"]["account_name"], doc["batch"]["account_key"]),
        )
        assert list(batch.list_pools()) == []
        batch.close()

        pids = {name: rec["pid"] for name, rec in _state(home).items()}
        again = local.up()
        assert again.running and {n: r["pid"] for n, r in _state(home).items()} == pids
        assert local.ensure_up().running
        assert {n: r["pid"] for n, r in _state(home).items()} == pids

        for name, path in local.log_paths().items():
            assert path.exists() and "starting" in path.read_text(), name
        assert "listening on" in local.log_paths()["emulator"].read_text()

        local.down()
        assert all(_gone(pid) for pid in pids.values())
        assert foreign.poll() is None  # a process it did not start survives
        assert not (home / "local.json").exists()
        assert local.status().running is False
        assert any((home / "azurite").iterdir())  # data stays
        local.down()  # idempotent

        # Data survives a restart.
        restarted = local.up()
        blobs = BlobServiceClient.from_connection_string(restarted.storage["connection_string"])
        assert blobs.get_container_client("lifecycle").download_blob("hello.txt").readall() == b"hi"
        blobs.close()
    finally:
        foreign.terminate()
        foreign.wait()


def test_taken_port_is_a_clear_error(home):
    port = int(os.environ["BATCHSPEC_AZURITE_PORT"])
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        with pytest.raises(LocalServiceError) as caught:
            local.up()
    text = str(caught.value)
    assert str(port) in text and "BATCHSPEC_AZURITE_PORT" in text
    assert not (home / "local.json").exists()
    # Nothing half-started holds the other port.
    emulator_port = int(os.environ["BATCHSPEC_EMULATOR_PORT"])
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", emulator_port))


def test_bad_port_variable(home, monkeypatch):
    monkeypatch.setenv("BATCHSPEC_EMULATOR_PORT", "eighty")
    with pytest.raises(LocalServiceError, match="BATCHSPEC_EMULATOR_PORT"):
        local.up()


def test_stale_state_and_recycled_pid_are_never_killed(home):
    # A live process that is not ours sits at a recorded pid with another start identity.
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    dead = subprocess.Popen(["true"])
    dead.wait()
    try:
        home.mkdir(parents=True, exist_ok=True)
        (home / "local.json").write_text(
            json.dumps(
                {
                    "services": {
                        "azurite": {"pid": bystander.pid, "start": "1", "port": 1},
                        "emulator": {"pid": dead.pid, "start": "2", "port": 2},
                    }
                }
            )
        )
        assert local.status().running is False
        local.down()
        assert bystander.poll() is None
        assert not (home / "local.json").exists()

        (home / "local.json").write_text(
            json.dumps({"services": {"azurite": {"pid": bystander.pid, "start": "1", "port": 1}}})
        )
        status = local.up()
        assert status.running and bystander.poll() is None
        assert _state(home)["azurite"]["pid"] != bystander.pid
    finally:
        bystander.kill()
        bystander.wait()


def test_startup_timeout_stops_what_it_started(home):
    with pytest.raises(LocalServiceError, match="did not answer"):
        local.up(wait=0.0)
    assert not (home / "local.json").exists()
    for var in ("BATCHSPEC_AZURITE_PORT", "BATCHSPEC_EMULATOR_PORT"):
        deadline = time.monotonic() + 5
        while True:
            with socket.socket() as probe:
                try:
                    probe.bind(("127.0.0.1", int(os.environ[var])))
                    break
                except OSError:
                    assert time.monotonic() < deadline, f"{var} still held"
            time.sleep(0.1)


def test_no_node_is_a_clear_error(home, monkeypatch):
    monkeypatch.setenv("PATH", str(home / "empty-path"))
    with pytest.raises(LocalServiceError, match="Node.js"):
        local.up()
    assert not (home / "local.json").exists()


def test_up_restarts_after_a_service_died(home):
    local.up()
    before = _state(home)
    os.kill(before["emulator"]["pid"], 9)
    deadline = time.monotonic() + 5
    while local.status().running:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    status = local.up()
    after = _state(home)
    assert status.running
    assert after["emulator"]["pid"] != before["emulator"]["pid"]
    assert _gone(before["azurite"]["pid"])  # the survivor was stopped and started afresh
    assert _http_status(status.batch["endpoint"] + "/pools") == 401


def test_local_up_with_incidents_rehearses_a_failure_and_refuses_a_wrong_one(home, tmp_path, cli):
    """`batchspec local up --incidents JSON`: every pool of the local emulator goes through them."""
    import shutil

    from helpers import ROOT

    wrong = cli("local", "up", "--incidents", '{"preemptRate": 3}')
    assert wrong.returncode == 2 and "preemptRate is a share" in wrong.stderr
    quota = '{"allocationError": "AccountCoreQuotaReached", "maxNodes": 0}'
    assert cli("local", "up", "--incidents", quota).returncode == 0
    work = tmp_path / "work"
    shutil.copytree(ROOT / "specs", work / "specs")
    shutil.copytree(ROOT / "data", work / "data")
    shutil.copytree(ROOT / "node", work / "node")
    result = cli("apply", "specs/topn.yaml", "--auto-approve", cwd=work)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "could not allocate nodes: AccountCoreQuotaReached" in " ".join(
        (result.stdout + result.stderr).split()
    )


def test_local_up_refuses_quotas_that_are_not_right_before_starting_anything(home, cli):
    wrong = cli("local", "up", "--quotas", '{"poolQuota": -1}')
    assert wrong.returncode == 2 and "--quotas: poolQuota is a whole number" in wrong.stderr
    assert not (home / "local.json").exists()
