"""A fault-injecting HTTP reverse proxy, for testing retries against Azurite (or any HTTP service).

    python -m batchspec.emulator.faultproxy --listen-port 0 --upstream http://127.0.0.1:10000 \\
        --503-rate 0.1 --drop-rate 0.05 --seed 7

It forwards every request to the upstream unchanged (method, raw path and query, headers, body
streamed both ways), except that a seeded random draw answers a fraction of requests `503
ServerBusy` without forwarding them and closes a fraction of connections without an answer. Half
of the dropped connections are dropped before the request reaches the upstream, half after the
upstream has handled it (the client never learns that its request succeeded): the second kind is
what makes a non-idempotent retry visible. Storage SharedKey and SAS signatures do not cover the
Host header's port, so a client that talks to the proxy instead of the upstream needs no change.

With `--container-delete-seconds N` it also plays the storage service's slow container deletion:
after a container is deleted, creating one of the same name is answered `409
ContainerBeingDeleted` for N seconds. Azure Storage documents "After you delete a container, you
can't create a container with the same name for at least 30 seconds. Attempting to create a
container with the same name fails with HTTP error code 409 (Conflict)" (Delete a blob
container, Azure Storage docs); Azurite deletes at once.

Off unless started; it listens on loopback only. Once it accepts connections it prints exactly one
line to stdout, `batchspec-faultproxy listening on http://127.0.0.1:PORT`; when stopped (SIGTERM /
SIGINT) it prints `batchspec-faultproxy stats {JSON}` to stderr: requests seen and faults injected;
`GET /.faultproxy/stats` answers the same JSON while it runs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import signal
import sys
import time
from collections import Counter
from dataclasses import dataclass, field

import aiohttp
from aiohttp import web
from yarl import URL

from batchspec.emulator.faults import rate as _rate

HOST = "127.0.0.1"
_HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
}
_BUSY = (
    b'<?xml version="1.0" encoding="utf-8"?><Error><Code>ServerBusy</Code>'
    b"<Message>The server is currently unable to receive requests. Please retry your request."
    b"</Message></Error>"
)
_BEING_DELETED = (
    b'<?xml version="1.0" encoding="utf-8"?><Error><Code>ContainerBeingDeleted</Code>'
    b"<Message>The specified container is being deleted. Try operation later.</Message></Error>"
)
_CHUNK = 256 * 1024
STATS_PATH = "/.faultproxy/stats"  # answered by the proxy itself, never faulted nor forwarded


@dataclass
class FaultPlan:
    """Rates in [0, 1]; one seeded generator, so a seed and a request order reproduce the faults."""

    rate_503: float = 0.0
    drop_rate: float = 0.0
    seed: int | None = None
    methods: frozenset[str] | None = None  # fault only these HTTP methods (None: all)
    counts: Counter = field(default_factory=Counter)

    def __post_init__(self) -> None:
        for name in ("rate_503", "drop_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1")
        self._rng = random.Random(self.seed)

    def draw(self, method: str = "GET") -> str:
        """'forward', '503', 'drop-before' or 'drop-after' for the next request."""
        self.counts["requests"] += 1
        if self.methods is not None and method.upper() not in self.methods:
            self.counts["forward"] += 1
            return "forward"  # no draw: the faulted methods' sequence stays reproducible
        roll = self._rng.random()
        if roll < self.drop_rate:
            outcome = "drop-before" if self._rng.random() < 0.5 else "drop-after"
        elif roll < self.drop_rate + self.rate_503:
            outcome = "503"
        else:
            outcome = "forward"
        self.counts[outcome] += 1
        return outcome


def make_app(upstream: str, faults: FaultPlan, container_delete_seconds: float = 0.0) -> web.Application:
    base = URL(upstream)
    app = web.Application(client_max_size=0)
    state: dict[str, aiohttp.ClientSession] = {}
    deleted_at: dict[str, float] = {}  # container path -> when its deletion was answered

    async def on_startup(_app: web.Application) -> None:
        state["session"] = aiohttp.ClientSession(
            auto_decompress=False,
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=300),
            connector=aiohttp.TCPConnector(limit=64),
        )

    async def on_cleanup(_app: web.Application) -> None:
        await state["session"].close()

    async def handle(request: web.Request) -> web.StreamResponse:
        if request.rel_url.path == STATS_PATH:
            return web.json_response(dict(sorted(faults.counts.items())))
        container_op = request.query.get("restype") == "container" and request.method in ("PUT", "DELETE")
        if container_op and request.method == "PUT":
            since = time.monotonic() - deleted_at.get(request.rel_url.path, -1e9)
            if since < container_delete_seconds:
                faults.counts["being-deleted"] += 1
                return web.Response(
                    status=409,
                    body=_BEING_DELETED,
                    headers={"Content-Type": "application/xml", "x-ms-error-code": "ContainerBeingDeleted"},
                )
        outcome = faults.draw(request.method)
        if outcome == "drop-before":
            return _drop(request)
        if outcome == "503":
            return web.Response(
                status=503,
                body=_BUSY,
                headers={"Content-Type": "application/xml", "x-ms-error-code": "ServerBusy"},
            )
        url = URL(str(base.origin()) + request.rel_url.raw_path_qs, encoded=True)
        headers = [(k, v) for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP]
        body = request.content if request.body_exists else None
        try:
            async with state["session"].request(
                request.method,
                url,
                headers=headers,
                data=body,
                allow_redirects=False,
                skip_auto_headers=("Accept-Encoding", "User-Agent", "Content-Type"),
            ) as upstream_resp:
                if container_op and request.method == "DELETE" and upstream_resp.status < 300:
                    deleted_at[request.rel_url.path] = time.monotonic()
                if outcome == "drop-after":
                    await upstream_resp.read()
                    return _drop(request)
                resp = web.StreamResponse(status=upstream_resp.status, reason=upstream_resp.reason)
                for k, v in upstream_resp.headers.items():
                    if k.lower() not in _HOP_BY_HOP:
                        resp.headers.add(k, v)
                await resp.prepare(request)
                if request.method != "HEAD":
                    async for chunk in upstream_resp.content.iter_chunked(_CHUNK):
                        await resp.write(chunk)
                await resp.write_eof()
                return resp
        except (aiohttp.ClientError, asyncio.TimeoutError):
            faults.counts["upstream-errors"] += 1
            return web.Response(status=502, text="upstream unreachable")

    app.router.add_route("*", "/{tail:.*}", handle)
    app.on_startup.append(on_startup)
    app.on_cleanup.append(on_cleanup)
    return app


def _drop(request: web.Request) -> web.StreamResponse:
    if request.transport is not None:
        request.transport.abort()
    # The connection is gone; aiohttp discards whatever is returned.
    return web.Response(status=503)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m batchspec.emulator.faultproxy",
        description="Fault-injecting HTTP reverse proxy on loopback (testing only).",
    )
    p.add_argument("--listen-port", type=int, default=0, help="port on 127.0.0.1; 0 picks a free one")
    p.add_argument("--upstream", required=True, help="base URL to forward to, e.g. http://127.0.0.1:10000")
    p.add_argument("--503-rate", dest="rate_503", type=_rate, default=0.0, help="fraction answered 503")
    p.add_argument("--drop-rate", type=_rate, default=0.0, help="fraction of connections dropped")
    p.add_argument("--seed", type=int, default=None, help="seed of the fault draws")
    p.add_argument("--methods", default="", help="fault only these methods, e.g. POST,PATCH (default: all)")
    p.add_argument(
        "--container-delete-seconds",
        type=float,
        default=0.0,
        help="answer 409 ContainerBeingDeleted to a container create this long after its delete",
    )
    args = p.parse_args(argv)
    upstream = URL(args.upstream)
    if upstream.scheme not in ("http", "https") or not upstream.host:
        p.error(f"--upstream {args.upstream!r}: expected http://HOST:PORT")
    return args


async def serve(args: argparse.Namespace) -> None:
    methods = frozenset(m.strip().upper() for m in args.methods.split(",") if m.strip()) or None
    faults = FaultPlan(args.rate_503, args.drop_rate, args.seed, methods)
    app = make_app(args.upstream, faults, args.container_delete_seconds)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, HOST, args.listen_port, reuse_address=True)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"batchspec-faultproxy listening on http://{HOST}:{port}", flush=True)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
        print(
            f"batchspec-faultproxy stats {json.dumps(dict(sorted(faults.counts.items())))}",
            file=sys.stderr,
            flush=True,
        )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        asyncio.run(serve(args))
    except OSError as exc:
        print(f"batchspec-faultproxy: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
