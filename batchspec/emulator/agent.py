"""The emulator's node agent: runs start tasks and task attempts on a "compute node".

A node is a directory laid out like a Linux Batch node (``$AZ_BATCH_NODE_ROOT_DIR``)::

    <root>/shared/                                   AZ_BATCH_NODE_SHARED_DIR
    <root>/startup/{wd,stdout.txt,stderr.txt}        AZ_BATCH_NODE_STARTUP_DIR (start task)
    <root>/workitems/<jobId>/job-1/<taskId>/{wd,stdout.txt,stderr.txt}   AZ_BATCH_TASK_DIR

One attempt of a task: resource files are downloaded into the working directory, the command
line is split (not run under a shell, see `cmdline`) and executed with cwd = the working
directory, stdout/stderr to the task's files and a minimal environment (nothing of the
emulator's own environment leaks beyond PATH, HOME, locale and TMPDIR), then output files are
uploaded. Every process is a session/process-group leader so that wall-clock expiry and
`TaskRun.kill` end the whole tree (SIGTERM, then SIGKILL after `KILL_GRACE` seconds).

Choices where the service's behaviour is not documented or not observable here:
- a retry reuses the task directory with an emptied working directory and truncated
  stdout/stderr (the service also reuses the directory; a clean wd makes attempts independent);
- a program that cannot be found ends the attempt without an exit code (``exit_code=None``) and
  failureInfo ``CommandProgramNotFound``; other launch errors give ``CommandLaunchFailed``;
- a process killed by a signal reports exit code 128 + signal number, as a shell would;
- output files are uploaded after a normal exit or a wall-clock expiry, never after `kill`
  (the job/task was terminated or the node is going away) nor when the process never ran;
- ``AZ_BATCH_TASK_RETRY_COUNT`` is not set: the service documents no such variable.

Over 400 lines: a task attempt's whole life on a node (resource files, process, wall clock,
kill, output files, exit) is one state machine, read in one place.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from batchspec import durations  # the one shared module (see durations.py)
from batchspec.emulator import transfer
from batchspec.emulator.cmdline import CommandLineError, split_command_line

KILL_GRACE = 2.0  # seconds between SIGTERM and SIGKILL to a task's process group
_INHERITED = ("PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR", "USER", "LOGNAME")
_DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_FOREVER = 10 * 365 * 86400.0  # the service answers "unlimited" with a ~29000-year duration


@dataclass(frozen=True)
class NodeContext:
    """Where a node lives and what it tells its tasks about itself."""

    root: Path
    pool_id: str
    node_id: str
    account_name: str
    account_url: str
    is_dedicated: bool = True
    windows: bool = False  # a Windows pool's node: its command lines cannot run on this host


@dataclass
class Outcome:
    """How one run ended, in the terms of the REST TaskExecutionInformation."""

    exit_code: int | None
    result: str
    failure_info: dict | None
    start_time: datetime
    end_time: datetime


def start_task_dir(ctx: NodeContext) -> Path:
    """The start task's directory (AZ_BATCH_NODE_STARTUP_DIR)."""
    return Path(ctx.root) / "startup"


def task_dir(ctx: NodeContext, job_id: str, task_id: str) -> Path:
    """A job task's directory (AZ_BATCH_TASK_DIR); its working directory is `wd` inside it."""
    return Path(ctx.root) / "workitems" / job_id / "job-1" / task_id


def prepare_node(ctx: NodeContext) -> None:
    """Create the node's directory layout; safe to call again."""
    root = Path(ctx.root)
    for sub in ("shared", "startup/wd", "workitems"):
        (root / sub).mkdir(parents=True, exist_ok=True)


def parse_duration(value: str | None) -> float | None:
    """Seconds in an ISO-8601 duration ("PT10S", "P1DT2H"); None for absent or unlimited."""
    if not value:
        return None
    seconds = durations.seconds(value.strip())
    return None if seconds >= _FOREVER else seconds


def _now() -> datetime:
    return datetime.now(timezone.utc)


WINDOWS_NOTE = (
    "the local Batch emulator runs command lines on its Linux host: a Windows node cannot run "
    "them (docs/emulator.md)"
)


def _failure(code: str, message: str, details: list[dict] | None = None, category: str = "usererror") -> dict:
    return {"category": category, "code": code, "message": message, "details": details or []}


def _settings(value) -> dict[str, str]:
    """environmentSettings ([{name, value}]) or a plain mapping, as a dict."""
    if not value:
        return {}
    if isinstance(value, dict):
        return {str(k): "" if v is None else str(v) for k, v in value.items()}
    return {s["name"]: s.get("value") or "" for s in value}


def _base_env() -> dict[str, str]:
    env = {k: os.environ[k] for k in _INHERITED if k in os.environ}
    env.setdefault("PATH", _DEFAULT_PATH)
    return env


class _Execution:
    """One run of a command line in a task directory: resources, process, outputs."""

    def __init__(
        self,
        directory: Path,
        spec: dict,
        env: dict[str, str],
        *,
        clean_wd: bool,
        windows: bool = False,
        resources_to: Path | None = None,
    ):
        self.directory = directory
        self._windows = windows
        self.wd = directory / "wd"
        self._resources_to = resources_to or self.wd
        self._spec = spec
        self._env = env
        self._clean_wd = clean_wd
        self._process: asyncio.subprocess.Process | None = None
        self._running = False
        self._killed = False
        self._kill_event = asyncio.Event()

    def kill(self) -> None:
        self._killed = True
        self._kill_event.set()
        if self._process is None:
            return
        # While run() is waiting it escalates to SIGKILL itself; afterwards only stragglers that
        # outlived the leader can be left, and those get no grace.
        self._signal_group(signal.SIGTERM if self._running else signal.SIGKILL)

    def _signal_group(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):  # the group is gone
            os.killpg(self._process.pid, sig)

    async def run(self) -> Outcome:
        self._running = True
        try:
            return await self._run()
        finally:
            self._running = False

    async def _run(self) -> Outcome:
        start = _now()

        def ended(exit_code, failure):
            return Outcome(exit_code, "failure" if failure else "success", failure, start, _now())

        try:
            self._prepare_directory()
        except OSError as exc:
            return ended(
                None,
                _failure(
                    "ResourceDirectoryCreateFailed",
                    "Failure encountered creating resource directory for the task.",
                    [{"name": "Message", "value": str(exc)}],
                    "servererror",
                ),
            )
        if self._killed:
            return ended(None, _ended_by_user())
        staging = transfer.download_resource_files(self._spec.get("resourceFiles") or [], self._resources_to)
        try:
            finished = await self._until_killed(staging)
        except transfer.TransferError as exc:
            return ended(None, exc.failure_info())
        if not finished:
            return ended(None, _ended_by_user())

        if self._windows:
            # The emulator's nodes are processes on this (Linux) host: a Windows pool is
            # created and its nodes come up, but what they are asked to run cannot run.
            return ended(
                None,
                _failure(
                    "CommandLaunchFailed",
                    "Failed to launch the specified command line.",
                    [{"name": "Message", "value": WINDOWS_NOTE}],
                ),
            )
        try:
            argv = split_command_line(self._spec.get("commandLine") or "")
            limit = parse_duration((self._spec.get("constraints") or {}).get("maxWallClockTime"))
        except (CommandLineError, ValueError) as exc:
            return ended(
                None,
                _failure(
                    "CommandLaunchFailed",
                    "Failed to launch the specified command line.",
                    [{"name": "Message", "value": str(exc)}],
                ),
            )
        try:
            self._process = await self._spawn(argv)
        except FileNotFoundError:
            return ended(
                None,
                _failure(
                    "CommandProgramNotFound",
                    "The specified command program is not found.",
                    [
                        {"name": "Program", "value": argv[0]},
                        {"name": "Message", "value": "No such file or directory"},
                    ],
                ),
            )
        except OSError as exc:
            return ended(
                None,
                _failure(
                    "CommandLaunchFailed",
                    "Failed to launch the specified command line.",
                    [
                        {"name": "Program", "value": argv[0]},
                        {"name": "Message", "value": exc.strerror or str(exc)},
                    ],
                ),
            )

        exited = await self._until_killed(self._process.wait(), timeout=limit)
        failure = None
        if not exited:
            timed_out = not self._killed
            await self._terminate_tree()
            if timed_out:
                failure = _failure(
                    "TaskEnded",
                    "The task exceeded its maximum wall clock time and was terminated.",
                    [{"name": "MaxWallClockTime", "value": self._spec["constraints"]["maxWallClockTime"]}],
                )
            else:
                failure = _ended_by_user()
        code = self._process.returncode
        exit_code = 128 - code if code < 0 else code
        if failure is None and exit_code != 0:
            failure = _failure(
                "FailureExitCode",
                "The task process exited with an unexpected exit code",
                [{"name": "AdditionalErrorCode", "value": "FailureExitCode"}],
            )
        if self._killed:
            return ended(exit_code, failure or _ended_by_user())
        uploads = transfer.upload_output_files(
            self._spec.get("outputFiles") or [], self.wd, self._env, exit_code, log_dir=self.directory
        )
        try:
            if not await self._until_killed(uploads):
                return ended(exit_code, failure or _ended_by_user())
        except transfer.TransferError as exc:
            failure = failure or exc.failure_info()
        return ended(exit_code, failure)

    def _prepare_directory(self) -> None:
        if self._clean_wd and self.wd.exists():
            shutil.rmtree(self.wd)
        self.wd.mkdir(parents=True, exist_ok=True)
        for name in ("stdout.txt", "stderr.txt"):
            (self.directory / name).write_bytes(b"")

    async def _spawn(self, argv: list[str]) -> asyncio.subprocess.Process:
        with (
            open(self.directory / "stdout.txt", "ab") as out,
            open(self.directory / "stderr.txt", "ab") as err,
        ):
            # The child gets its own copies of the descriptors; ours close when this returns.
            return await asyncio.create_subprocess_exec(
                *argv,
                cwd=self.wd,
                env=self._env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=True,
            )

    async def _until_killed(self, awaitable, timeout: float | None = None) -> bool:
        """Await `awaitable` unless kill() or `timeout` comes first; True if it finished."""
        work = asyncio.ensure_future(awaitable)
        killed = asyncio.ensure_future(self._kill_event.wait())
        try:
            await asyncio.wait({work, killed}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            if work.done():
                work.result()  # re-raise its failure
                return True
            return False
        finally:
            for t in (work, killed):
                t.cancel()
            await asyncio.gather(work, killed, return_exceptions=True)

    async def _terminate_tree(self) -> None:
        self._signal_group(signal.SIGTERM)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._process.wait()), KILL_GRACE)
        # Also reaps children that ignored SIGTERM or outlived the group leader.
        self._signal_group(signal.SIGKILL)
        await self._process.wait()
        # SIGKILL is delivered asynchronously: give the group a moment to be gone so callers
        # see no survivors (a zombie awaiting its new parent's wait still counts as a member).
        for _ in range(20):
            if not _group_has_live_members(self._process.pid):
                return
            await asyncio.sleep(0.05)


def _group_has_live_members(pgid: int) -> bool:
    """Whether process group `pgid` has a member that is not a zombie."""
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    proc = Path("/proc")
    if not proc.is_dir():
        return True  # no procfs: cannot tell zombies apart, assume the worst
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] != "Z" and fields[2] == str(pgid):  # state, ppid, pgrp
            return True
    return False


def _ended_by_user() -> dict:
    return _failure("TaskEnded", "Task was ended by user request.")


def _system_env(ctx: NodeContext, directory: Path) -> dict[str, str]:
    root = Path(ctx.root)
    return {
        "AZ_BATCH_ACCOUNT_NAME": ctx.account_name,
        "AZ_BATCH_ACCOUNT_URL": ctx.account_url,
        "AZ_BATCH_POOL_ID": ctx.pool_id,
        "AZ_BATCH_NODE_ID": ctx.node_id,
        "AZ_BATCH_NODE_IS_DEDICATED": "true" if ctx.is_dedicated else "false",
        "AZ_BATCH_NODE_ROOT_DIR": str(root),
        "AZ_BATCH_NODE_SHARED_DIR": str(root / "shared"),
        "AZ_BATCH_NODE_STARTUP_DIR": str(start_task_dir(ctx)),
        "AZ_BATCH_NODE_STARTUP_WORKING_DIR": str(start_task_dir(ctx) / "wd"),
        "AZ_BATCH_TASK_DIR": str(directory),
        "AZ_BATCH_TASK_WORKING_DIR": str(directory / "wd"),
    }


async def run_start_task(ctx: NodeContext, start_task: dict) -> Outcome:
    """Run a pool's start task (REST StartTask JSON) in the node's startup directory.

    The startup working directory is kept between runs: the service re-runs start tasks on
    reboot in place, which is why they must be idempotent.
    """
    prepare_node(ctx)
    directory = start_task_dir(ctx)
    env = {**_base_env(), **_settings(start_task.get("environmentSettings")), **_system_env(ctx, directory)}
    return await _Execution(directory, start_task, env, clean_wd=False, windows=ctx.windows).run()


class TaskRun:
    """One attempt of one task of a job on a node.

    `kill` must be called from the thread running the event loop; it can come before, during
    or after `run`.
    """

    def __init__(
        self,
        ctx: NodeContext,
        job_id: str,
        task: dict,
        *,
        retry_count: int = 0,
        job_env: dict | None = None,
        service_env: dict | None = None,
        coordination: bool = False,
    ):
        """`coordination`: a multi-instance task's coordination command, whose (common) resource
        files go to the task directory, "one directory above the working directory"
        (MultiInstanceSettings.commonResourceFiles); `service_env`: more of the variables the
        service defines (those of a multi-instance task)."""
        self.ctx = ctx
        self.job_id = job_id
        self.task = task
        self.retry_count = retry_count
        directory = task_dir(ctx, job_id, task["id"])
        # Service-defined variables come last: a task cannot redefine where it runs.
        env = {
            **_base_env(),
            **_settings(job_env),
            **_settings(task.get("environmentSettings")),
            **_system_env(ctx, directory),
            "AZ_BATCH_JOB_ID": job_id,
            "AZ_BATCH_TASK_ID": task["id"],
            **(service_env or {}),
        }
        self._execution = _Execution(
            directory,
            task,
            env,
            clean_wd=True,
            windows=ctx.windows,
            resources_to=directory if coordination else None,
        )

    @property
    def task_dir(self) -> Path:
        return self._execution.directory

    @property
    def working_dir(self) -> Path:
        return self._execution.wd

    async def run(self) -> Outcome:
        """Download resource files, run the command line, upload output files."""
        prepare_node(self.ctx)
        return await self._execution.run()

    def kill(self) -> None:
        """Terminate the attempt's whole process tree now (or prevent it from starting)."""
        self._execution.kill()
