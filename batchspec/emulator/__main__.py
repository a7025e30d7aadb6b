"""`python -m batchspec.emulator`: run the local Batch service in the foreground.

With `--port 0` a free port is chosen; once the service accepts requests it prints exactly one
line to stdout, `batchspec-emulator listening on http://HOST:PORT` (https with `--cert`), which
scripts and tests parse. Requests are logged to stderr. SIGTERM / SIGINT stop it cleanly:
running task processes are killed (their tasks requeue on the next start) and the database is
checkpointed.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import ssl
import sys
from collections.abc import Callable
from pathlib import Path

from aiohttp import web

from . import DEV_ACCOUNT_KEY, DEV_ACCOUNT_NAME
from .faults import Faults
from .faults import rate as _rate
from .incidents import METADATA, Incidents
from .incidents import defaults as incidents_from
from .management import Quotas
from .management import quotas as quotas_from
from .record import ENV
from .server import Emulator, Settings
from .store import DataDirBusy
from .timing import Timing


def _checked(parse: Callable[[str], object]) -> Callable[[str], object]:
    """An option's type from a parser that raises ValueError with the reason."""

    def convert(text: str) -> object:
        try:
            return parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return convert


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line."""
    p = argparse.ArgumentParser(
        prog="python -m batchspec.emulator",
        description="Local Azure Batch service emulator (development only).",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8085, help="port; 0 picks a free one (default 8085)")
    p.add_argument(
        "--data-dir",
        type=Path,
        default=Path(".batchspec/emulator"),
        help="state directory: database and node directories",
    )
    p.add_argument("--account-name", default=DEV_ACCOUNT_NAME)
    p.add_argument("--account-key", default=DEV_ACCOUNT_KEY)
    p.add_argument("--fault-503-rate", type=_rate, default=0.0, help="fraction of requests answered 503")
    p.add_argument("--fault-drop-rate", type=_rate, default=0.0, help="fraction of connections dropped")
    p.add_argument("--fault-latency-ms", type=int, default=0, help="latency added to every request")
    p.add_argument("--seed", type=int, default=None, help="seed for the fault draws")
    p.add_argument(
        "--allocation-delay",
        type=float,
        default=0.2,
        help="seconds a pool stays 'resizing' before its nodes are allocated",
    )
    p.add_argument(
        "--realistic",
        action="store_true",
        help="take about as long as Azure does to allocate, start, reboot and release nodes",
    )
    p.add_argument(
        "--time-scale",
        type=float,
        default=1.0,
        help="with --realistic: multiply those times by this (0.01: a hundred times faster)",
    )
    p.add_argument("--cert", type=Path, help="serve HTTPS with this PEM certificate (chain)")
    p.add_argument("--key", type=Path, help="the private key of --cert (PEM)")
    p.add_argument(
        "--token-key",
        type=Path,
        help="PEM public key: take only bearer tokens signed with its private key (default: "
        "check their claims only, as Azurite's --oauth basic does)",
    )
    p.add_argument(
        "--incidents",
        type=_checked(incidents_from),
        default=Incidents(),
        metavar="JSON",
        help="what goes wrong in every pool: preemption, unusable nodes, failing start tasks, "
        "allocation errors, failed uploads (see batchspec/emulator/incidents.py); a pool's "
        f"metadata item {METADATA!r} asks for its own",
    )
    p.add_argument(
        "--quotas",
        type=_checked(quotas_from),
        default=Quotas(),
        metavar="JSON",
        help="the account's quotas, as Resource Manager's stand-in gives them: dedicatedCoreQuota, "
        "lowPriorityCoreQuota, poolQuota, activeJobAndJobScheduleQuota, ... (see "
        "batchspec/emulator/management.py); default: generous",
    )
    p.add_argument("--quiet", action="store_true", help="do not log each request")
    p.add_argument(
        "--record",
        type=Path,
        default=os.environ.get(ENV) or None,
        help=f"write every answer to DIR/emulator-PID.jsonl (default ${ENV}, else off)",
    )
    args = p.parse_args(argv)
    if (args.cert is None) != (args.key is None):
        p.error("--cert and --key go together")
    return args


def _use_pidfd_child_watcher() -> None:
    """Before Python 3.12, asyncio waits for each child process in a thread of its own
    (ThreadedChildWatcher): starting that thread was a sixth of the emulator's time per
    task. Where Linux offers pidfds, wait for children on the event loop instead."""
    if sys.version_info >= (3, 12) or not hasattr(os, "pidfd_open"):
        return  # 3.12+ already picks the pidfd watcher when it can
    try:
        os.close(os.pidfd_open(os.getpid()))
    except OSError:  # kernel before 5.3, or pidfds not permitted
        return
    watcher = asyncio.PidfdChildWatcher()
    watcher.attach_loop(asyncio.get_running_loop())
    asyncio.set_child_watcher(watcher)


def _timing(args: argparse.Namespace) -> Timing:
    return Timing.realistic(args.time_scale) if args.realistic else Timing(allocation=args.allocation_delay)


async def serve(args: argparse.Namespace) -> None:
    """Run until SIGTERM/SIGINT."""
    _use_pidfd_child_watcher()
    settings = Settings(
        data_dir=args.data_dir.resolve(),
        account_name=args.account_name,
        account_key=args.account_key,
        faults=Faults(args.fault_503_rate, args.fault_drop_rate, args.fault_latency_ms, args.seed),
        timing=_timing(args),
        record=args.record,
        token_key=args.token_key.read_text() if args.token_key else None,
        incidents=args.incidents,
        quotas=args.quotas,
    )
    emulator = Emulator(settings)
    runner = web.AppRunner(emulator.app, access_log=None, handle_signals=False)
    await runner.setup()
    tls = None
    if args.cert:
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(args.cert, args.key)
    site = web.TCPSite(runner, args.host, args.port, reuse_address=True, ssl_context=tls)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # the real port when --port 0
    url = f"{'https' if tls else 'http'}://{args.host}:{port}"
    await emulator.start(url)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"batchspec-emulator listening on {url}", flush=True)
    logging.getLogger("batchspec.emulator").info(
        "data dir %s, account %s", settings.data_dir, settings.account_name
    )
    try:
        await stop.wait()
    finally:
        await emulator.stop()
        await runner.cleanup()


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    args = parse_args(argv)
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if args.quiet:
        logging.getLogger("batchspec.emulator.access").setLevel(logging.WARNING)
    try:
        asyncio.run(serve(args))
    except (OSError, DataDirBusy) as exc:  # e.g. the port is taken
        print(f"batchspec-emulator: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
