"""The node agent against real subprocesses and a real Azurite blob service."""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from azure.storage.blob import BlobServiceClient, ContainerSasPermissions, generate_container_sas

from batchspec.emulator import agent, transfer
from batchspec.emulator.agent import NodeContext, TaskRun, run_start_task
from batchspec.emulator.cmdline import CommandLineError, split_command_line
from support import services

REPO = Path(__file__).resolve().parents[2]
ACCOUNT, KEY = services.AZURITE_ACCOUNT, services.AZURITE_KEY
PY = shlex.quote(sys.executable)


@pytest.fixture(scope="module")
def azurite(tmp_path_factory):
    service = services.azurite(tmp_path_factory.mktemp("azurite")).start()
    blob = BlobServiceClient.from_connection_string(services.connection_string(service.url))
    yield blob
    blob.close()
    service.stop()


_counter = iter(range(10**6))


def _container(
    service: BlobServiceClient, blobs: dict[str, bytes] | None = None, permission: str = "rwlc"
) -> tuple[str, object]:
    """A fresh container holding `blobs`; returns (its SAS URL, its client)."""
    name = f"c{next(_counter)}-{os.getpid()}"
    client = service.create_container(name)
    for blob, data in (blobs or {}).items():
        client.upload_blob(blob, data)
    sas = generate_container_sas(
        ACCOUNT,
        name,
        account_key=KEY,
        permission=ContainerSasPermissions.from_string(permission),
        expiry=datetime.now(timezone.utc) + timedelta(hours=1),
    )
    return f"{client.url}?{sas}", client


def _blob_sas_url(container_url: str, blob: str) -> str:
    base, query = container_url.split("?", 1)
    return f"{base}/{blob}?{query}"


def _names(client) -> set[str]:
    return {b.name for b in client.list_blobs()}


def _run(coro):
    async def main():
        try:
            return await coro
        finally:
            await transfer.close_session()

    return asyncio.run(main())


@pytest.fixture
def ctx(tmp_path) -> NodeContext:
    return NodeContext(tmp_path / "node", "pool1", "tvm-1", "devbatch", "http://127.0.0.1:9/")


def _task(task_id: str, command: str, **extra) -> dict:
    return {"id": task_id, "commandLine": command, **extra}


def _stdout(run: TaskRun) -> str:
    return (run.task_dir / "stdout.txt").read_text()


def _argv_command(*quoted: str) -> str:
    return f"{PY} -c 'import json,sys; print(json.dumps(sys.argv[1:]))' " + " ".join(quoted)


def _pid_gone(pid: int) -> bool:
    """True once `pid` is dead (a zombie waiting for init counts); waits up to 2 s."""
    deadline = time.monotonic() + 2
    while True:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except FileNotFoundError:
            return True
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)


# --- layout and environment -----------------------------------------------------------------


def test_layout_and_environment(ctx, monkeypatch):
    monkeypatch.setenv("AZURE_CLIENT_SECRET", "leak-1")
    monkeypatch.setenv("MY_SERVICE_KEY", "leak-2")
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", "leak-3")
    task = _task(
        "t1",
        "/usr/bin/env",
        environmentSettings=[
            {"name": "FROM_TASK", "value": "task"},
            {"name": "SHARED", "value": "task-wins"},
        ],
    )
    run = TaskRun(ctx, "job1", task, job_env={"FROM_JOB": "job", "SHARED": "job"})
    outcome = _run(run.run())
    assert outcome.result == "success" and outcome.exit_code == 0
    assert outcome.failure_info is None
    assert outcome.start_time.tzinfo is not None and outcome.end_time >= outcome.start_time
    env = dict(line.split("=", 1) for line in _stdout(run).splitlines())
    root = ctx.root
    expected = {
        "AZ_BATCH_ACCOUNT_NAME": "devbatch",
        "AZ_BATCH_ACCOUNT_URL": "http://127.0.0.1:9/",
        "AZ_BATCH_POOL_ID": "pool1",
        "AZ_BATCH_NODE_ID": "tvm-1",
        "AZ_BATCH_NODE_IS_DEDICATED": "true",
        "AZ_BATCH_NODE_ROOT_DIR": str(root),
        "AZ_BATCH_NODE_SHARED_DIR": str(root / "shared"),
        "AZ_BATCH_NODE_STARTUP_DIR": str(root / "startup"),
        "AZ_BATCH_NODE_STARTUP_WORKING_DIR": str(root / "startup" / "wd"),
        "AZ_BATCH_JOB_ID": "job1",
        "AZ_BATCH_TASK_ID": "t1",
        "AZ_BATCH_TASK_DIR": str(root / "workitems/job1/job-1/t1"),
        "AZ_BATCH_TASK_WORKING_DIR": str(root / "workitems/job1/job-1/t1/wd"),
        "FROM_TASK": "task",
        "FROM_JOB": "job",
        "SHARED": "task-wins",
    }
    assert {k: env.get(k) for k in expected} == expected
    assert "PATH" in env
    assert "leak-" not in _stdout(run)
    assert not [k for k in env if k.startswith("AZURE_") or k.endswith("_KEY")]
    assert run.working_dir == root / "workitems/job1/job-1/t1/wd" and run.working_dir.is_dir()
    assert (root / "shared").is_dir() and (run.task_dir / "stderr.txt").exists()


def test_start_task_environment(ctx):
    outcome = _run(
        run_start_task(
            ctx,
            {
                "commandLine": "/bin/sh -c 'env > env.txt'",
                "environmentSettings": [{"name": "STARTUP_SETTING", "value": "on"}],
            },
        )
    )
    assert outcome.result == "success"
    env = dict(
        line.split("=", 1)
        for line in (ctx.root / "startup/wd/env.txt").read_text().splitlines()
        if "=" in line
    )
    assert env["AZ_BATCH_TASK_DIR"] == str(ctx.root / "startup")
    assert env["AZ_BATCH_TASK_WORKING_DIR"] == str(ctx.root / "startup/wd")
    assert env["STARTUP_SETTING"] == "on" and env["AZ_BATCH_POOL_ID"] == "pool1"
    # The service documents these as "all tasks except start task".
    assert "AZ_BATCH_JOB_ID" not in env and "AZ_BATCH_TASK_ID" not in env


# --- command line ---------------------------------------------------------------------------

NASTY = [
    "$(touch pwned)",
    "`touch pwned`",
    "a;touch pwned",
    'it\'s "quoted"',
    "two  spaces",
    "ünïcødé ✓",
    "*",
    "x > pwned",
    "$HOME",
    "back\\slash",
    "",
]


def test_metacharacters_reach_argv_literally(ctx):
    command = _argv_command(*(shlex.quote(a) for a in NASTY), "*", ">pwned", "|", "&&", "true")
    run = TaskRun(ctx, "job1", _task("meta", command))
    outcome = _run(run.run())
    assert outcome.exit_code == 0, (run.task_dir / "stderr.txt").read_text()
    assert json.loads(_stdout(run)) == [*NASTY, "*", ">pwned", "|", "&&", "true"]
    assert not list(ctx.root.rglob("pwned*")) and not Path("pwned").exists()


def test_command_line_without_a_shell_passes_variables_literally(ctx):
    # BatchTaskCreateOptions.commandLine: "does not run under a shell, and therefore cannot take
    # advantage of shell features such as environment variable expansion".
    command = _argv_command(
        "$AZ_BATCH_TASK_ID",
        "${FOO}bar",
        '"$FOO"',
        "'$FOO'",
        "\\$FOO",
        "%FOO%",
        "$",
        "'$(echo hi)'",
    )
    task = _task("vars", command, environmentSettings=[{"name": "FOO", "value": "a b;$(x)"}])
    run = TaskRun(ctx, "job1", task)
    assert _run(run.run()).exit_code == 0
    assert json.loads(_stdout(run)) == [
        "$AZ_BATCH_TASK_ID",
        "${FOO}bar",
        "$FOO",
        "$FOO",
        "$FOO",
        "%FOO%",
        "$",
        "$(echo hi)",
    ]


def test_command_line_through_sh_expands_variables(ctx):
    # "If you want to take advantage of such features, you should invoke the shell in the
    # command line, for example ... "/bin/sh -c MyCommand" in Linux".
    script = f'{PY} -c \'import json,sys; print(json.dumps(sys.argv[1:]))\' "$AZ_BATCH_TASK_ID" "$FOO"'
    task = _task(
        "viash", f"/bin/sh -c {shlex.quote(script)}", environmentSettings=[{"name": "FOO", "value": "a b"}]
    )
    run = TaskRun(ctx, "job1", task)
    assert _run(run.run()).exit_code == 0
    assert json.loads(_stdout(run)) == ["viash", "a b"]


def test_split_command_line_errors():
    with pytest.raises(CommandLineError):
        split_command_line("echo 'open")
    with pytest.raises(CommandLineError):
        split_command_line('echo "open')
    with pytest.raises(CommandLineError):
        split_command_line("   ")
    assert split_command_line("a '' \"\" b\\ c") == ["a", "", "", "b c"]
    assert split_command_line('x "$HOME" ${PATH}') == ["x", "$HOME", "${PATH}"]


def test_exit_codes_and_stdio(ctx):
    ok = TaskRun(ctx, "job1", _task("ok", "/bin/sh -c 'echo out; echo err >&2'"))
    assert _run(ok.run()).result == "success"
    assert _stdout(ok) == "out\n" and (ok.task_dir / "stderr.txt").read_text() == "err\n"
    bad = _run(TaskRun(ctx, "job1", _task("bad", "/bin/sh -c 'exit 3'")).run())
    assert (bad.exit_code, bad.result) == (3, "failure")
    assert bad.failure_info["code"] == "FailureExitCode"
    assert bad.failure_info["category"] == "usererror"


def test_program_not_found_and_launch_failure(ctx):
    missing = _run(TaskRun(ctx, "job1", _task("nf", "no-such-program-xyz --flag")).run())
    assert missing.exit_code is None and missing.result == "failure"
    assert missing.failure_info["code"] == "CommandProgramNotFound"
    bad_limit = _run(
        TaskRun(ctx, "job1", _task("bl", "/bin/true", constraints={"maxWallClockTime": "soon"})).run()
    )
    assert bad_limit.exit_code is None and bad_limit.failure_info["code"] == "CommandLaunchFailed"
    unterminated = _run(TaskRun(ctx, "job1", _task("uq", "echo 'oops")).run())
    assert unterminated.exit_code is None
    assert unterminated.failure_info["code"] == "CommandLaunchFailed"


def test_retry_starts_with_clean_working_dir(ctx):
    task = _task("retry", "/bin/sh -c 'ls; echo data > leftover'")
    first = TaskRun(ctx, "job1", task)
    _run(first.run())
    assert _stdout(first) == ""
    second = TaskRun(ctx, "job1", task, retry_count=1)
    _run(second.run())
    assert _stdout(second) == ""  # no leftover from the first attempt, stdout truncated
    assert (second.working_dir / "leftover").exists()


# --- process handling -----------------------------------------------------------------------


def test_wall_clock_expiry_kills_the_process_tree(ctx):
    task = _task(
        "slow",
        "/bin/sh -c 'sleep 60 & echo $! > child.pid; sleep 60'",
        constraints={"maxWallClockTime": "PT1S"},
    )
    run = TaskRun(ctx, "job1", task)
    began = time.monotonic()
    outcome = _run(run.run())
    assert time.monotonic() - began < 1 + agent.KILL_GRACE + 2
    assert outcome.result == "failure" and outcome.exit_code not in (None, 0)
    assert outcome.failure_info["code"] == "TaskEnded"
    assert "maximum wall clock time" in outcome.failure_info["message"]
    assert _pid_gone(int((run.working_dir / "child.pid").read_text()))


def test_kill_escalates_to_sigkill_and_ends_the_tree(ctx):
    # An ignored SIGTERM is inherited by the child: only SIGKILL after the grace ends them.
    task = _task("stubborn", "/bin/sh -c 'trap \"\" TERM; sleep 60 & echo $! > child.pid; sleep 60'")
    run = TaskRun(ctx, "job1", task)

    async def scenario():
        running = asyncio.ensure_future(run.run())
        pid_file = run.working_dir / "child.pid"
        while not (pid_file.exists() and pid_file.read_text().strip()):
            await asyncio.sleep(0.05)
        began = time.monotonic()
        run.kill()
        outcome = await running
        return outcome, time.monotonic() - began

    outcome, took = _run(scenario())
    assert agent.KILL_GRACE - 0.5 < took < agent.KILL_GRACE + 2
    assert outcome.exit_code == 128 + 9
    assert outcome.failure_info["code"] == "TaskEnded"
    assert outcome.failure_info["message"] == "Task was ended by user request."
    assert _pid_gone(int((run.working_dir / "child.pid").read_text()))


def test_kill_before_run_never_starts_the_process(ctx):
    run = TaskRun(ctx, "job1", _task("early", "/bin/sh -c 'touch ran'"))
    run.kill()
    outcome = _run(run.run())
    assert outcome.exit_code is None and outcome.failure_info["code"] == "TaskEnded"
    assert not (run.working_dir / "ran").exists()


def test_many_concurrent_runs(ctx):
    runs = [
        TaskRun(ctx, "job1", _task(f"c{i}", "/bin/sh -c 'sleep 1; echo $AZ_BATCH_TASK_ID'"))
        for i in range(12)
    ]

    async def all_runs():
        return await asyncio.gather(*(r.run() for r in runs))

    began = time.monotonic()
    outcomes = _run(all_runs())
    assert time.monotonic() - began < 4
    assert all(o.exit_code == 0 for o in outcomes)
    assert [_stdout(r).strip() for r in runs] == [f"c{i}" for i in range(12)]


# --- resource files -------------------------------------------------------------------------


def test_resource_files_http_url_and_container_prefix(ctx, azurite):
    url, _ = _container(
        azurite,
        {
            "tool.sh": b"#!/bin/sh\necho tool-ran\n",
            "data/x.txt": b"x",
            "data/sub/y.txt": b"y",
            "other.txt": b"o",
        },
    )
    task = _task(
        "res",
        "/bin/sh -c './bin/tool.sh && cat inputs/data/x.txt inputs/data/sub/y.txt'",
        resourceFiles=[
            {
                "httpUrl": _blob_sas_url(url, "tool.sh"),
                "filePath": "bin/tool.sh",
                "fileMode": "0755",
            },
            {"storageContainerUrl": url, "blobPrefix": "data/", "filePath": "inputs"},
        ],
    )
    run = TaskRun(ctx, "job1", task)
    outcome = _run(run.run())
    assert outcome.exit_code == 0, (run.task_dir / "stderr.txt").read_text()
    assert _stdout(run) == "tool-ran\nxy"
    wd = run.working_dir
    assert (wd / "bin/tool.sh").stat().st_mode & 0o777 == 0o755
    assert (wd / "inputs/data/x.txt").stat().st_mode & 0o777 == 0o770  # the service default
    assert not (wd / "inputs/other.txt").exists()


def test_resource_container_listing_pages(ctx, azurite, monkeypatch):
    monkeypatch.setattr(transfer, "LIST_PAGE_SIZE", 2)
    blobs = {f"f{i}.txt": str(i).encode() for i in range(5)}
    url, _ = _container(azurite, blobs)
    run = TaskRun(
        ctx,
        "job1",
        _task("pages", "/bin/sh -c 'cat f*.txt'", resourceFiles=[{"storageContainerUrl": url}]),
    )
    assert _run(run.run()).exit_code == 0
    assert _stdout(run) == "01234"


@pytest.mark.parametrize("kind", ["blob", "container"])
def test_bad_sas_fails_without_running_the_command(ctx, azurite, kind):
    url, _ = _container(azurite, {"a.txt": b"a"})
    base, query = url.split("?", 1)
    bad = f"{base}?{query.replace('sig=', 'sig=AAAA')}"
    resource = (
        {"httpUrl": _blob_sas_url(bad, "a.txt"), "filePath": "a.txt"}
        if kind == "blob"
        else {"storageContainerUrl": bad}
    )
    run = TaskRun(ctx, "job1", _task("badsas", "/bin/sh -c 'touch ran'", resourceFiles=[resource]))
    outcome = _run(run.run())
    assert outcome.exit_code is None and outcome.result == "failure"
    info = outcome.failure_info
    assert info["category"] == "usererror"
    assert info["code"] == ("BlobAccessDenied" if kind == "blob" else "ResourceContainerAccessDenied")
    recorded = json.dumps(info)
    assert base in recorded and "sig=" not in recorded and "?" not in recorded
    assert not (run.working_dir / "ran").exists()


def test_missing_blob_and_escaping_file_path(ctx, azurite):
    url, _ = _container(azurite)
    missing = _run(
        TaskRun(
            ctx,
            "job1",
            _task(
                "nf",
                "/bin/true",
                resourceFiles=[{"httpUrl": _blob_sas_url(url, "nope.txt"), "filePath": "nope.txt"}],
            ),
        ).run()
    )
    assert missing.failure_info["code"] == "BlobNotFound" and missing.exit_code is None
    for path in ("../../escape.txt", "/etc/escape.txt"):
        run = TaskRun(
            ctx,
            "job1",
            _task(
                "esc",
                "/bin/sh -c 'touch ran'",
                resourceFiles=[{"httpUrl": _blob_sas_url(url, "nope.txt"), "filePath": path}],
            ),
        )
        outcome = _run(run.run())
        assert outcome.exit_code is None and outcome.failure_info["category"] == "usererror"
        assert not (run.working_dir / "ran").exists()
    assert not list(ctx.root.rglob("escape.txt"))


def test_auto_storage_is_reported_unsupported(ctx):
    outcome = _run(
        TaskRun(
            ctx,
            "job1",
            _task("auto", "/bin/true", resourceFiles=[{"autoStorageContainerName": "inputs"}]),
        ).run()
    )
    assert outcome.exit_code is None and "autoStorageContainerName" in outcome.failure_info["message"]


# --- output files ---------------------------------------------------------------------------


def _outputs(url: str) -> list[dict]:
    def out(pattern, path, condition):
        return {
            "filePattern": pattern,
            "destination": {"container": {"containerUrl": url, **({"path": path} if path else {})}},
            "uploadOptions": {"uploadCondition": condition},
        }

    return [
        out("out/**/*.txt", "tree", "taskcompletion"),
        out("log.txt", "ok/log-renamed.txt", "tasksuccess"),
        out("log.txt", "failed/log.txt", "taskfailure"),
        out("../std*.txt", "std", "taskcompletion"),
        out("*.bin", None, "tasksuccess"),
    ]


WRITER = (
    "/bin/sh -c 'mkdir -p out/sub/deeper && echo a > out/a.txt && echo b > out/sub/b.txt"
    " && echo c > out/sub/deeper/c.txt && echo h > out/.hidden.txt && echo n > out/n.dat"
    " && echo log > log.txt && echo bin > x.bin && exit {code}'"
)


def test_output_files_on_success(ctx, azurite):
    url, client = _container(azurite)
    run = TaskRun(ctx, "job1", _task("up", WRITER.format(code=0), outputFiles=_outputs(url)))
    outcome = _run(run.run())
    assert outcome.result == "success", outcome.failure_info
    assert _names(client) == {
        "tree/a.txt",
        "tree/sub/b.txt",
        "tree/sub/deeper/c.txt",
        "ok/log-renamed.txt",
        "std/stdout.txt",
        "std/stderr.txt",
        "x.bin",
    }
    assert client.download_blob("tree/sub/b.txt").readall() == b"b\n"
    assert (
        client.get_blob_client("tree/a.txt").get_blob_properties().content_settings.content_type
        == "text/plain"
    )
    journal = (run.task_dir / "fileuploadout.txt").read_text()
    assert "tree/sub/deeper/c.txt" in journal and "sig=" not in journal
    assert (run.task_dir / "fileuploaderr.txt").read_text() == ""


def test_upload_headers_are_sent(ctx, azurite):
    url, client = _container(azurite)
    headers = [
        {"name": "x-ms-blob-content-type", "value": "application/x-report"},
        {"name": "x-ms-meta-origin", "value": "batch"},
    ]
    task = _task(
        "hdr",
        "/bin/sh -c 'echo r > report.txt'",
        outputFiles=[
            {
                "filePattern": "report.txt",
                "destination": {"container": {"containerUrl": url, "uploadHeaders": headers}},
                "uploadOptions": {"uploadCondition": "taskcompletion"},
            }
        ],
    )
    assert _run(TaskRun(ctx, "job1", task).run()).result == "success"
    props = client.get_blob_client("report.txt").get_blob_properties()
    assert props.content_settings.content_type == "application/x-report"
    assert props.metadata == {"origin": "batch"}


def test_output_files_on_failure(ctx, azurite):
    url, client = _container(azurite)
    run = TaskRun(ctx, "job1", _task("up", WRITER.format(code=2), outputFiles=_outputs(url)))
    outcome = _run(run.run())
    assert outcome.exit_code == 2 and outcome.failure_info["code"] == "FailureExitCode"
    assert _names(client) == {
        "tree/a.txt",
        "tree/sub/b.txt",
        "tree/sub/deeper/c.txt",
        "failed/log.txt",
        "std/stdout.txt",
        "std/stderr.txt",
    }


def test_output_files_after_wall_clock_expiry_count_as_failure(ctx, azurite):
    url, client = _container(azurite)
    task = _task(
        "late",
        "/bin/sh -c 'echo log > log.txt; sleep 30'",
        constraints={"maxWallClockTime": "PT0.5S"},
        outputFiles=_outputs(url),
    )
    outcome = _run(TaskRun(ctx, "job1", task).run())
    assert outcome.failure_info["code"] == "TaskEnded"
    assert _names(client) == {"failed/log.txt", "std/stdout.txt", "std/stderr.txt"}


def test_upload_failure_fails_the_task_without_leaking_the_sas(ctx, azurite):
    url, client = _container(azurite, permission="rl")  # no write permission
    run = TaskRun(ctx, "job1", _task("ro", "/bin/sh -c 'echo log > log.txt'", outputFiles=_outputs(url)[1:2]))
    outcome = _run(run.run())
    assert outcome.exit_code == 0 and outcome.result == "failure"
    assert outcome.failure_info["code"] == "FileUploadAccessDenied"
    assert outcome.failure_info["category"] == "usererror"
    assert "sig=" not in json.dumps(outcome.failure_info)
    assert _names(client) == set()
    errors = (run.task_dir / "fileuploaderr.txt").read_text()
    assert "FileUploadAccessDenied" in errors and "sig=" not in errors


def test_large_output_file_goes_up_in_blocks(ctx, azurite, monkeypatch):
    monkeypatch.setattr(transfer, "PUT_BLOB_LIMIT", 1000)
    monkeypatch.setattr(transfer, "BLOCK_SIZE", 300)
    url, client = _container(azurite)
    payload = bytes(range(256)) * 10  # 2560 bytes: 9 blocks
    task = _task(
        "big",
        f"{PY} -c 'import sys; sys.stdout.buffer.write(bytes(range(256)) * 10)'",
        outputFiles=[
            {
                "filePattern": "../stdout.txt",
                "destination": {"container": {"containerUrl": url, "path": "big.bin"}},
                "uploadOptions": {"uploadCondition": "tasksuccess"},
            }
        ],
    )
    outcome = _run(TaskRun(ctx, "job1", task).run())
    assert outcome.result == "success", outcome.failure_info
    assert client.download_blob("big.bin").readall() == payload
    assert len(client.get_blob_client("big.bin").get_block_list()[0]) == 9


def test_start_task_resource_files_with_odd_blob_names(ctx, azurite):
    odd = "dir with space/ünï #1+%20.txt"
    url, _ = _container(azurite, {odd: b"odd", "plain.txt": b"plain"})
    start = {
        "commandLine": "/bin/sh -c 'cat \"$AZ_BATCH_NODE_STARTUP_WORKING_DIR/" + odd + "\"'",
        "resourceFiles": [{"storageContainerUrl": url}],
    }
    outcome = _run(run_start_task(ctx, start))
    assert outcome.result == "success", outcome.failure_info
    assert (ctx.root / "startup" / "stdout.txt").read_text() == "odd"
    assert (ctx.root / "startup" / "wd" / "plain.txt").read_bytes() == b"plain"
    # A re-run (as after a reboot) keeps the startup working directory.
    (ctx.root / "startup" / "wd" / "marker").write_text("kept")
    again = _run(run_start_task(ctx, {"commandLine": "/bin/cat marker"}))
    assert again.exit_code == 0
    assert (ctx.root / "startup" / "stdout.txt").read_text() == "kept"


def test_unreachable_storage_is_a_download_error_without_the_sas(ctx):
    url = f"http://127.0.0.1:{services.free_port()}/acct/c/a.txt?sv=2023&sig=SECRETSIG"
    outcome = _run(
        TaskRun(
            ctx, "job1", _task("down", "/bin/true", resourceFiles=[{"httpUrl": url, "filePath": "a.txt"}])
        ).run()
    )
    assert outcome.exit_code is None
    assert outcome.failure_info["code"] == "BlobDownloadMiscError"
    assert outcome.failure_info["category"] == "servererror"
    assert "SECRETSIG" not in json.dumps(outcome.failure_info)
