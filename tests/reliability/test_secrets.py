"""Secrets and scopes: no account key in any output, log, plan file or node environment; SAS
URLs as narrow as promised; a wrong key refused; the services on loopback only."""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from azure.batch import BatchClient
from azure.core.credentials import AzureNamedKeyCredential
from azure.core.exceptions import HttpResponseError

import reliability_support as rs
from batchspec.services import targets
from reliability_support import SECRETS, new_name

DUMP_ENV = 'command=python3 -c "import os; print(sorted(os.environ.items()))"'


def _http(method: str, url: str, body: bytes | None = None) -> int:
    headers = {"x-ms-version": "2023-11-03"}
    if method == "PUT":
        headers["x-ms-blob-type"] = "BlockBlob"
    request = urllib.request.Request(url, data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as r:
            r.read()
            return r.status
    except urllib.error.HTTPError as exc:
        return exc.code


def _with_path(sas_url: str, path: str) -> str:
    """The same SAS token on another blob or container path."""
    parts = urlsplit(sas_url)
    return f"{parts.scheme}://{parts.netloc}{path}?{parts.query}"


def _files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


def test_no_account_key_in_any_output_log_plan_file_or_node_environment(tmp_path, clean, rel_home):
    ws = rs.Workspace.tutorial(tmp_path / "ws", new_name(), clean.env)
    results = [
        ws.run("plan", "spec.yaml", "--out", "saved.plan", "--var", DUMP_ENV),
        ws.run("apply", "saved.plan"),
        ws.run("status", "spec.yaml", "--json", "--var", DUMP_ENV),
        ws.run("plan", "spec.yaml", "--json", "--var", DUMP_ENV),
    ]
    assert [r.returncode for r in results] == [0, 0, 0, 0], [r.stderr for r in results]
    client = clean.batch_client()
    tasks = list(client.list_tasks(f"{ws.name}-job"))
    # What each task's process saw: it printed its whole environment.
    environments = [
        b"".join(client.download_task_file(f"{ws.name}-job", t.id, "stdout.txt")).decode() for t in tasks
    ]
    assert len(environments) == 3 and all("AZ_BATCH_TASK_ID" in e for e in environments)
    # Every file batchspec or the emulator wrote: the plan file, the emulator's database, node
    # directories (task and start task stdout/stderr, upload logs, the task's files) and logs.
    nodes = _files(rel_home / "batch-clean" / "nodes" / f"{ws.name}-pool")
    assert len(nodes) > 20
    texts = {str(p): p.read_bytes().decode("utf-8", "replace") for p in nodes}
    results.append(ws.run("destroy", "spec.yaml", "--auto-approve", "--var", DUMP_ENV))
    assert results[-1].returncode == 0
    written = [ws.root / "saved.plan", *_files(rel_home / "batch-clean"), *_files(rel_home / "logs")]
    texts.update({str(p): p.read_bytes().decode("utf-8", "replace") for p in written})
    texts.update({f"output {i}": r.stdout + r.stderr for i, r in enumerate(results)})
    texts.update({f"environment {i}": e for i, e in enumerate(environments)})
    for secret in SECRETS:
        leaks = [where for where, text in texts.items() if secret in text]
        assert leaks == [], f"an account key is in {leaks}"
    plan = (ws.root / "saved.plan").read_text()
    assert "sig=" not in plan and "AccountKey" not in plan  # no SAS either: they are minted at apply


def test_a_tasks_input_sas_reads_only_its_own_blob(tmp_path, clean):
    ws = rs.Workspace.tutorial(tmp_path / "ws", new_name(), clean.env)
    assert ws.apply().returncode == 0
    task = clean.batch_client().get_task(f"{ws.name}-job", "topn-taskdata1")
    url = task.resource_files[0].http_url
    assert urlsplit(url).path.endswith(f"/{ws.name}-in/taskdata1.txt")
    assert parse_qs(urlsplit(url).query)["sp"] == ["r"]
    container = f"{urlsplit(url).path.rsplit('/', 2)[0]}/{ws.name}-in"
    assert _http("GET", url) == 200
    assert _http("GET", _with_path(url, f"{container}/taskdata0.txt")) == 403  # a sibling blob
    assert _http("GET", _with_path(url, f"{container}") + "&restype=container&comp=list") == 403
    assert _http("PUT", url, b"overwritten") == 403
    assert _http("DELETE", url) == 403
    assert _http("PUT", _with_path(url, f"{container}/new.txt"), b"x") == 403
    blob = clean.blob_service().get_blob_client(f"{ws.name}-in", "taskdata1.txt")
    assert blob.download_blob().readall() == (ws.root / "data" / "taskdata1.txt").read_bytes()


def test_the_output_sas_only_creates_and_writes_in_the_output_container_and_expires(tmp_path, clean):
    ws = rs.Workspace.tutorial(tmp_path / "ws", new_name(), clean.env)
    assert ws.apply().returncode == 0
    task = clean.batch_client().get_task(f"{ws.name}-job", "topn-taskdata0")
    url = task.output_files[0].destination.container.container_url
    query = parse_qs(urlsplit(url).query)
    assert query["sp"] == ["cw"]
    expiry = datetime.fromisoformat(query["se"][0].replace("Z", "+00:00"))
    now = datetime.now(timezone.utc)
    assert now < expiry <= now + timedelta(hours=2, minutes=1)
    out = urlsplit(url).path
    assert _http("PUT", _with_path(url, f"{out}/written-by-a-task.txt"), b"result") == 201
    assert _http("GET", _with_path(url, f"{out}/taskdata0_OUTPUT.txt")) == 403
    assert _http("GET", _with_path(url, out) + "&restype=container&comp=list") == 403
    assert _http("DELETE", _with_path(url, f"{out}/taskdata0_OUTPUT.txt")) == 403
    inputs = out.replace(f"{ws.name}-out", f"{ws.name}-in")
    assert _http("PUT", _with_path(url, f"{inputs}/taskdata0.txt"), b"tampered") == 403
    assert _http("GET", _with_path(url, f"{inputs}/taskdata0.txt")) == 403

    # The same kind of SAS with a lifetime of two seconds stops working once it expires; the
    # issuer shares one between requests made together, never one past its refresh point.
    target = targets.connect("azure", env=clean.env, sas_lifetime=timedelta(seconds=2))
    try:
        short = target.sas.container_write(f"{ws.name}-out")
        assert target.sas.container_write(f"{ws.name}-out") == short
        assert _http("PUT", _with_path(short, f"{out}/early.txt"), b"x") == 201
        deadline = time.monotonic() + 30
        status = 201
        while status != 403 and time.monotonic() < deadline:
            time.sleep(0.5)
            status = _http("PUT", _with_path(short, f"{out}/late.txt"), b"x")
        assert status == 403
        fresh = target.sas.container_write(f"{ws.name}-out")
        assert fresh != short
        assert _http("PUT", _with_path(fresh, f"{out}/late.txt"), b"x") == 201
    finally:
        target.close()


def test_a_wrong_batch_key_is_refused_by_the_emulator_with_a_clear_error(tmp_path, clean):
    wrong = base64.b64encode(os.urandom(64)).decode()
    with pytest.raises(HttpResponseError) as refused:
        list(BatchClient(clean.batch.url, AzureNamedKeyCredential("devbatch", wrong)).list_pools())
    assert refused.value.status_code == 403
    assert refused.value.error.code == "AuthenticationFailed"
    ws = rs.Workspace.tutorial(tmp_path / "ws", new_name(), {**clean.env, "AZURE_BATCH_ACCOUNT_KEY": wrong})
    for r in (ws.run("plan", "spec.yaml"), ws.apply()):
        assert r.returncode == 1, r.stdout + r.stderr
        assert r.stderr.startswith("error: the service refused a request (403 AuthenticationFailed)")
        assert "hint: the Batch account refused its shared key: check AZURE_BATCH_ACCOUNT_NAME" in r.stderr
        assert "unset AZURE_BATCH_ACCOUNT_KEY to sign in through azure-identity" in r.stderr
        assert "Traceback" not in r.stderr and wrong not in r.stdout + r.stderr
    assert rs.owned(ws, clean) == {"containers": [], "pools": [], "jobs": []}


def test_a_wrong_storage_key_is_refused_with_a_clear_error(tmp_path, clean):
    wrong = base64.b64encode(os.urandom(64)).decode()
    env = {**clean.env}
    env["AZURE_STORAGE_CONNECTION_STRING"] = rs.connection_string(clean.blob_url).replace(
        rs.AZURITE_KEY, wrong
    )
    ws = rs.Workspace.tutorial(tmp_path / "ws", new_name(), env)
    for r in (ws.run("plan", "spec.yaml"), ws.apply()):
        assert r.returncode == 1, r.stdout + r.stderr
        assert r.stderr.startswith("error: the service refused a request (403 AuthorizationFailure)")
        assert "hint: the storage account refused its key: check AZURE_STORAGE_ACCOUNT_KEY" in r.stderr
        assert "Traceback" not in r.stderr and wrong not in r.stdout + r.stderr
    assert rs.owned(ws, clean) == {"containers": [], "pools": [], "jobs": []}


def _listening(port: int) -> set[str]:
    """Local addresses with a socket listening on `port` (from /proc/net/tcp and tcp6)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            for line in list(f)[1:]:
                local, state = line.split()[1], line.split()[3]
                address, hex_port = local.rsplit(":", 1)
                if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                    raw = bytes.fromhex(address)
                    if len(raw) == 4:
                        found.add(socket.inet_ntop(socket.AF_INET, raw[::-1]))
                    else:
                        words = b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))
                        found.add(socket.inet_ntop(socket.AF_INET6, words))
    return found


def test_the_emulator_azurite_and_the_fault_proxy_listen_only_on_loopback(tmp_path, clean, faulty):
    env = {
        **os.environ,
        "BATCHSPEC_HOME": str(tmp_path / "home"),
        "BATCHSPEC_AZURITE_PORT": str(rs.free_port()),
        "BATCHSPEC_EMULATOR_PORT": str(rs.free_port()),
    }
    local = [sys.executable, "-m", "batchspec", "local"]
    up = subprocess.run([*local, "up"], env=env, capture_output=True, text=True, timeout=120)
    assert up.returncode == 0, up.stderr
    try:
        status = json.loads(
            subprocess.run([*local, "status", "--json"], env=env, capture_output=True, text=True).stdout
        )
        urls = [status["batch"]["endpoint"], status["storage"]["blob_endpoint"]]
        urls += [clean.azurite.url, clean.batch.url, faulty.batch.url, faulty.proxy.url]
        ports = [urlsplit(u).port for u in urls]
        for port in ports:
            assert _listening(port) == {"127.0.0.1"}, port
        # And from this host's other addresses, nobody answers.
        others = {a[4][0] for a in socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET)}
        others -= {"127.0.0.1", "127.0.1.1"}
        for address in others:
            for port in ports:
                with socket.socket() as s:
                    s.settimeout(2)
                    assert s.connect_ex((address, port)) != 0, (address, port)
    finally:
        subprocess.run([*local, "down"], env=env, capture_output=True, timeout=60)
