"""The `batchspec` command: parse, call, render, map errors to exit codes. No logic lives here.

Over 400 lines: every command's options and help text live here, so that `batchspec --help` and
this file read alike, top to bottom as the pipeline; what the commands do is elsewhere.
"""

from __future__ import annotations

import dataclasses
import json
import sys

import click
from rich.console import Console

from batchspec import __version__
from batchspec.errors import BatchspecError, PreflightError, SpecErrors, UsageError
from batchspec.spec import schema, variables
from batchspec.spec.build import build
from batchspec.spec.cache import BuildCache
from batchspec.ui import errors as errors_text
from batchspec.ui import plan as plan_text
from batchspec.ui import progress, prompt
from batchspec.ui import report as report_text
from batchspec.ui import state as state_text


class _Group(click.Group):
    """Turns every expected failure into clear lines on stderr and its exit code."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except BatchspecError as exc:
            text = str(exc)
            click.echo(text if "\n" in text or text.count(": ") > 1 else f"error: {text}", err=True)
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException, SystemExit):
            raise
        except Exception as exc:
            if _service_error(exc):
                # The service refused (e.g. a wrong key) or stayed unreachable after the retries:
                # its own message is what the user needs, with a hint for a refused key.
                click.echo(errors_text.service_error(exc, _auth_hint(exc)), err=True)
                errors_text.debug_traceback()
                sys.exit(1)
            # a bug: one line for the user, the traceback on request
            click.echo(
                f"internal error: {type(exc).__name__}: {exc} (set BATCHSPEC_DEBUG=1 for the traceback)",
                err=True,
            )
            errors_text.debug_traceback()
            sys.exit(1)


def _service_error(exc: Exception) -> bool:
    """Whether `exc` is azure-core's (an AzureError). Only a command that reaches a service
    imports azure-core (~60 ms): one that did not raised none."""
    module = sys.modules.get("azure.core.exceptions")
    return module is not None and isinstance(exc, module.AzureError)


# The target the running command connected to: a refused request's hint depends on its credentials.
_CONNECTED: list = []


def _auth_hint(exc: Exception) -> str | None:
    from batchspec.services import targets

    return targets.auth_hint(_CONNECTED[-1] if _CONNECTED else None, exc)


def _connect(name: str, **options):
    from batchspec.services import targets

    target = targets.connect(name, **options)
    _CONNECTED.append(target)
    return target


def _build(spec: str, var_pairs: tuple[str, ...] = (), *, refresh: bool = False, **options):
    """The spec's desired state, and the cache that remembers what building it read for the
    next run of the same spec (spec/cache.py): `--refresh` hashes every file again."""
    from batchspec.home import data_dir

    cache = BuildCache(data_dir() / "cache", spec, refresh=refresh)
    return build(spec, variables.parse_overrides(var_pairs), cache=cache, **options), cache


def _tasks(desired, cache=None):
    """The spec's TasksDigest, made only if the job carries one to compare (live.state)."""
    from batchspec.plan import stamps

    def digest() -> str:
        if cache is None:
            return stamps.tasks_digest(desired)
        return cache.tasks_digest(desired.pool, lambda: stamps.tasks_digest(desired))

    return digest


def _console() -> Console:
    return Console(highlight=False)


_refresh_option = click.option(
    "--refresh",
    is_flag=True,
    help="List every upload, read every task and hash every file, whatever the stamps the last "
    "apply left and the build cache say (a spec of more than one listing page of them is "
    "otherwise counted).",
)

_var_option = click.option(
    "--var",
    "var_pairs",
    multiple=True,
    metavar="NAME=VALUE",
    help="Override a variable of the spec (repeatable).",
)
_target_option = click.option(
    "--target",
    type=click.Choice(["local", "azure"]),
    default="local",
    show_default=True,
    envvar="BATCHSPEC_TARGET",
    help="Where to run: the local services or an Azure account.",
)
_approve_option = click.option("--auto-approve", is_flag=True, help="Do not ask for confirmation.")
_lock_option = click.option(
    "--lock-timeout",
    default="0s",
    metavar="DURATION",
    show_default=True,
    help="How long to wait for another apply/destroy of the spec (e.g. 5m).",
)


def _seconds(text: str, option: str) -> float:
    from batchspec import durations

    try:
        return durations.option_seconds(text)
    except ValueError:
        raise UsageError(f"{option} {text!r}: expected a duration such as 90s, 5m or PT5M") from None


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="batchspec")
def cli() -> None:
    """A declarative runner for Azure Batch."""


@cli.command()
@click.argument("specs", nargs=-1, required=True, metavar="SPEC...")
@_var_option
@click.option(
    "--strict", is_flag=True, help="Treat warnings (e.g. a command line that needs a shell) as errors."
)
def validate(specs: tuple[str, ...], var_pairs: tuple[str, ...], strict: bool) -> None:
    """Check specs: every error, each with its file:line:column and field."""
    variables.parse_overrides(var_pairs)  # a bad --var is said once, before any spec
    failed: list[BatchspecError] = []
    for spec in specs:
        try:
            state, _ = _build(spec, var_pairs)
        except BatchspecError as exc:
            failed.append(exc)
            click.echo(str(exc), err=True)
            continue
        if strict and state.warnings:
            errors = SpecErrors([w.as_error() for w in state.warnings])
            failed.append(errors)
            click.echo(str(errors), err=True)
            continue
        for warning in state.warnings:
            click.echo(str(warning), err=True)
        click.echo(f"{spec}: valid ({len(state.blobs)} blob(s), {len(state.tasks)} task(s))")
    if failed:
        sys.exit(max(e.exit_code for e in failed))


@cli.command("render")
@click.argument("spec")
@_var_option
@click.option("--json", "as_json", is_flag=True, help="Print the desired state as JSON.")
def render_cmd(spec: str, var_pairs: tuple[str, ...], as_json: bool) -> None:
    """Print the fully expanded desired state of a spec."""
    state, _ = _build(spec, var_pairs)
    if as_json:
        click.echo(state_text.to_json(state.to_dict()))
    else:
        state_text.desired_state(state, _console())


@cli.command("schema")
def schema_cmd() -> None:
    """Print the JSON schema of spec files (for editors and CI)."""
    click.echo(schema.schema_text(), nl=False)


@cli.command("plan")
@click.argument("spec")
@_var_option
@_target_option
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON.")
@click.option("--out", "out", metavar="FILE", help="Save the plan for `batchspec apply FILE`.")
@click.option("--detailed-exitcode", is_flag=True, help="Exit 0 for no changes, 2 for changes, 1 on error.")
@_refresh_option
def plan_cmd(spec, var_pairs, target, as_json, out, detailed_exitcode, refresh) -> None:
    """Show what apply would change. Nothing is touched."""
    from batchspec.live import state as live_state
    from batchspec.plan import diff, files

    early = live_state.EarlyListings(lambda: _connect(target), refresh=refresh)
    try:
        desired, cache = _build(spec, var_pairs, refresh=refresh, on_uploads=early.start)
        live = live_state.read(
            early.target(), desired, early=early, tasks_digest=_tasks(desired, cache), refresh=refresh
        )
        p = dataclasses.replace(diff(desired, live), refresh=refresh)
    finally:
        early.close()
    if out:
        files.save(p, out)
    if as_json:
        click.echo(json.dumps({**p.to_dict(), "warnings": [w.to_dict() for w in desired.warnings]}, indent=2))
    else:
        plan_text.warnings(desired.warnings, _console())
        plan_text.plan(p, _console())
        if out:
            click.echo(f"Saved the plan to {out}; `batchspec apply {out}` applies exactly this plan.")
    if detailed_exitcode and p.changes:
        sys.exit(2)


@cli.command("apply")
@click.argument("spec_or_plan", metavar="SPEC|PLANFILE")
@_var_option
@_target_option
@_approve_option
@_lock_option
@click.option(
    "--parallelism",
    default=16,
    show_default=True,
    type=click.IntRange(1, 256),
    help="Concurrent transfers (small blobs: twice this many requests in flight, at most 128) "
    "and task submissions (at most 8 requests of 100 tasks).",
)
@click.option(
    "--timeout",
    "timeout_text",
    metavar="DURATION",
    help="How long to wait for the tasks, from when waiting for them begins "
    "(default: the spec's wait.timeout).",
)
@click.option(
    "--setup-timeout",
    "setup_timeout_text",
    metavar="DURATION",
    help="How long to wait for deletions, node allocation, resize and reboot before the tasks "
    "(default: the spec's wait.setupTimeout, else 30m).",
)
@click.option(
    "--report",
    "report_file",
    metavar="FILE",
    help="Where to write the run report (default: beside the download folder, <name>-report.html).",
)
@_refresh_option
def apply_cmd(
    spec_or_plan,
    var_pairs,
    target,
    auto_approve,
    lock_timeout,
    parallelism,
    timeout_text,
    setup_timeout_text,
    report_file,
    refresh,
):
    """Converge: create and update what the spec describes, run the tasks, download results."""
    from batchspec.plan import diff, files
    from batchspec.timeouts import sas_lifetime

    console = _console()
    saved = cache = None
    if files.is_plan_file(spec_or_plan):
        if var_pairs:
            raise UsageError("--var cannot change a saved plan; make a new plan instead")
        saved = files.load(spec_or_plan)
        desired = files.desired_for(saved)
        refresh = refresh or saved.refresh  # read as the plan was, or its live digest differs
    else:
        desired, cache = _build(spec_or_plan, var_pairs, refresh=refresh)
    # The SDKs behind these take a third of a second to import: not for a spec refused above.
    from batchspec.apply import SETUP_TIMEOUT, Applier, storage, transfer
    from batchspec.apply.lock import Lock
    from batchspec.live import state as live_state

    timeout = _timeout(timeout_text, desired.wait_timeout, "--timeout")
    setup_timeout = _timeout(setup_timeout_text, desired.setup_timeout, "--setup-timeout")
    wait = _seconds(lock_timeout, "--lock-timeout")
    setup_timeout = SETUP_TIMEOUT if setup_timeout is None else setup_timeout
    client = _connect(target, parallelism=parallelism, sas_lifetime=sas_lifetime(timeout, setup_timeout))
    reporter = progress.ConsoleReporter(console)
    try:
        with Lock(client.blob, desired.name, command="apply", wait=wait) as lock:
            live = live_state.read(client, desired, tasks_digest=_tasks(desired, cache), refresh=refresh)
            p = dataclasses.replace(diff(desired, live), refresh=refresh)
            transfer.prepare(storage.uploads(desired, p.of("blob")))  # while the plan is shown
            if saved is not None:
                files.check(saved, p)
            plan_text.warnings(desired.warnings, console)
            plan_text.plan(p, console)
            if p.errors():
                raise PreflightError(
                    f"the plan's preflight found {len(p.errors())} error(s): nothing was created",
                    hint="fix what it names, then plan again",
                )
            if not p.changes and not p.pending_tasks:
                return
            if p.changes and saved is None:
                prompt.confirm("apply these changes", auto_approve)
            outcome = Applier(
                client,
                desired,
                p,
                reporter,
                parallelism=parallelism,
                timeout=timeout,
                setup_timeout=setup_timeout,
                guard=lock.check,
            ).run()
            reporter.close()
            report_text.outcome(outcome, console)
            _write_report(client, desired, report_file, console, known=outcome.seen)
    finally:
        reporter.close()
        client.close()
    if outcome.exit_code:
        sys.exit(outcome.exit_code)


def _timeout(text: str | None, from_spec: str | None, option: str) -> float | None:
    from batchspec import durations

    if text:
        return _seconds(text, option)
    return durations.parse(from_spec).total_seconds() if from_spec else None


@cli.command("destroy")
@click.argument("spec")
@_var_option
@_target_option
@_approve_option
@_lock_option
def destroy_cmd(spec, var_pairs, target, auto_approve, lock_timeout) -> None:
    """Delete everything the spec owns (never anything without its owner tag)."""
    from batchspec.plan import teardown

    desired, cache = _build(spec, var_pairs)
    from batchspec.apply import destroy  # the SDKs: not for a spec refused above
    from batchspec.apply.lock import Lock
    from batchspec.live import state as live_state

    console = _console()
    client = _connect(target)
    try:
        with Lock(
            client.blob, desired.name, command="destroy", wait=_seconds(lock_timeout, "--lock-timeout")
        ) as lock:
            live = live_state.read(
                client, desired, with_download=False, with_account=False, tasks_digest=_tasks(desired, cache)
            )
            p = teardown.destroy(desired, live)
            plan_text.plan(p, console)
            if not p.changes:
                return
            prompt.confirm("destroy these resources", auto_approve)
            reporter = progress.ConsoleReporter(console)
            destroy.run(client, p, reporter.step, guard=lock.check)
            console.print(
                f"[bold]Destroy complete:[/] {len(p.changes)} resource(s) destroyed; "
                "local downloads are left in place."
            )
    finally:
        client.close()


@cli.command("status")
@click.argument("spec")
@_var_option
@_target_option
@click.option("--json", "as_json", is_flag=True, help="Print the live state as JSON.")
def status_cmd(spec, var_pairs, target, as_json) -> None:
    """Show the live state of a spec's resources and tasks."""
    desired, _ = _build(spec, var_pairs)
    from batchspec.live import status  # the SDKs: not for a spec refused above

    client = _connect(target)
    try:
        report = status.read(client, desired)
    finally:
        client.close()
    if as_json:
        click.echo(json.dumps({**report, "tasks": list(report["tasks"])}, indent=2, default=str))
    else:
        report_text.status(report, _console())


def _write_report(client, desired, given: str | None, console: Console, *, quiet=False, known=None):
    """The run report (ui/html.py) from live state; a report that cannot be written is said, not
    fatal, after an apply."""
    from azure.core.exceptions import HttpResponseError

    from batchspec.live import status
    from batchspec.ui import html

    path = html.report_path(desired, given)
    try:
        report = status.read(client, desired, known)
        path.parent.mkdir(parents=True, exist_ok=True)
        html.write(report, path)
    except (OSError, HttpResponseError) as exc:
        if quiet:
            raise
        console.print(f"[yellow]warning:[/] the run report could not be written to {path}: {exc}")
        return path
    if not quiet:
        console.print(f"Report: {path}", soft_wrap=True, highlight=False)  # a path, whole
    return path


@cli.command("report")
@click.argument("spec")
@_var_option
@_target_option
@click.option("--out", "out", metavar="FILE", help="Where to write it (default: beside the downloads).")
def report_cmd(spec, var_pairs, target, out) -> None:
    """Write the run report of a spec from live state: a self-contained HTML page with the
    node x time timeline of the tasks, their states and causes, and a sortable table."""
    from batchspec.ui import html

    desired, _ = _build(spec, var_pairs)
    client = _connect(target)
    try:
        path = _write_report(client, desired, out, _console(), quiet=True)
    except OSError as exc:
        where = html.report_path(desired, out)
        raise UsageError(f"cannot write the report to {where}: {exc.strerror}") from None
    finally:
        client.close()
    click.echo(str(path))


@cli.command("logs")
@click.argument("spec")
@click.argument("task", required=False)
@_var_option
@_target_option
@click.option("--stderr", "stream", flag_value="stderr.txt", help="Its stderr.txt (default: stdout.txt).")
@click.option("--follow", "-f", is_flag=True, help="While the task runs, print what it writes until it ends.")
@click.option(
    "--start-task",
    "node",
    metavar="NODE",
    help="The start task's output of a node of the pool instead (kept after the node is gone).",
)
@click.option(
    "--attempt",
    type=click.IntRange(min=1),
    metavar="N",
    help="The task's attempt N (1 the first): earlier attempts are kept while apply waits.",
)
def logs_cmd(spec, task, var_pairs, target, stream, follow, node, attempt) -> None:
    """A task's stdout or stderr, from its node while it runs and from the spec's logs container
    once it completed (after its node and pool are gone). Without TASK: the failures by cause."""
    from batchspec.live import logs, status

    if node is not None and (task is not None or follow or attempt):
        raise UsageError("--start-task NODE goes without TASK, --follow and --attempt")
    if attempt is not None and (task is None or follow):
        raise UsageError("--attempt N goes with TASK, without --follow")
    desired, _ = _build(spec, var_pairs)
    client = _connect(target)
    try:
        if node is not None:
            click.get_binary_stream("stdout").write(
                logs.start_task(client, desired, node, stream or "stdout.txt")
            )
            return
        if task is None:
            report = status.read(client, desired)
            failed = [t["id"] for t in report["tasks"] if t["result"] == "failure"]
            report_text.causes(report["causes"], _console())
            if not report["causes"]:
                click.echo(f"no task of {desired.name} failed" if report["tasks"] else "no tasks")
            elif failed:
                click.echo(f"failed: {', '.join(failed)}")
            return
        name = stream or "stdout.txt"
        out = click.get_binary_stream("stdout")
        if follow:
            for chunk in logs.follow(client, desired, task, name):
                out.write(chunk)
                out.flush()
        elif attempt is not None:
            out.write(logs.read_attempt(client, desired, task, name, attempt))
        else:
            out.write(logs.read(client, desired, task, name))
    finally:
        client.close()


@cli.command("force-unlock")
@click.argument("spec")
@_target_option
def force_unlock_cmd(spec, target) -> None:
    """Break the lock of a spec whose apply or destroy was killed."""
    from batchspec.apply import lock

    desired, _ = _build(spec)
    client = _connect(target)
    try:
        held = lock.force_unlock(client.blob, desired.name)
    finally:
        client.close()
    click.echo(f"unlocked {desired.name}" if held else f"{desired.name} was not locked")


@cli.group("local")
def local_group() -> None:
    """The local services: Azurite (storage) and the Batch emulator."""


@local_group.command("up")
@click.option(
    "--realistic",
    is_flag=True,
    help="The Batch emulator takes about as long as Azure to allocate, start, reboot and release "
    "nodes (minutes), showing the states a real account shows meanwhile.",
)
@click.option(
    "--time-scale",
    type=click.FloatRange(min=0.001, max=100),
    default=1.0,
    show_default=True,
    help="With --realistic: multiply those times by this.",
)
@click.option(
    "--incidents",
    metavar="JSON",
    help="What goes wrong in every pool, to rehearse failures: preemption, unusable nodes, failing "
    "start tasks, allocation errors, failed uploads (docs/emulator.md, Incidents on demand).",
)
@click.option(
    "--quotas",
    metavar="JSON",
    help="The account's quotas the plan's preflight checks against, e.g. "
    '\'{"dedicatedCoreQuota": 4, "poolQuota": 1}\' (docs/emulator.md, Quotas); default: generous.',
)
def local_up(realistic: bool, time_scale: float, incidents: str | None, quotas: str | None) -> None:
    """Start the local services in the background (idempotent: when they run already, they are
    left as they are; `local down` first to change how they run)."""
    from batchspec import local

    s = local.up(realistic=realistic, time_scale=time_scale, incidents=incidents, quotas=quotas)
    click.echo(f"batch   {s.batch['endpoint']} (account {s.batch['account_name']})")
    click.echo(f"storage {s.storage['blob_endpoint']} (account {s.storage['account_name']})")
    click.echo(f"data    {local.data_dir()}")


@local_group.command("down")
def local_down() -> None:
    """Stop the local services that `local up` started; their data stays."""
    from batchspec import local

    local.down()
    click.echo("stopped")


@local_group.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print status and endpoints as JSON.")
def local_status(as_json: bool) -> None:
    """Whether the local services run, and how to reach them."""
    from batchspec import local

    s = local.status()
    if as_json:
        click.echo(json.dumps(s.to_json(), indent=2))
        return
    click.echo(f"running: {'yes' if s.running else 'no'}")
    click.echo(f"batch   {s.batch['endpoint']} (account {s.batch['account_name']})")
    click.echo(f"storage {s.storage['blob_endpoint']} (account {s.storage['account_name']})")


@local_group.command("logs")
@click.argument("service", type=click.Choice(["azurite", "emulator", "all"]), default="all")
@click.option("-n", "--lines", default=50, show_default=True, help="Lines from the end of each log.")
def local_logs(service: str, lines: int) -> None:
    """Show the end of the local services' logs."""
    from batchspec import local

    for name, path in local.log_paths().items():
        if service not in ("all", name):
            continue
        click.echo(f"==> {path} <==")
        if path.exists():
            with path.open("rb") as f:
                tail = f.read()[-200_000:].decode("utf-8", errors="replace").splitlines()[-lines:]
            click.echo("\n".join(tail))


def main() -> None:
    cli(prog_name="batchspec")
