"""`--record DIR`: every answer, one line each, for checking against the API definition.

The test suite sets `BATCHSPEC_EMULATOR_RECORD` and checks each test's answers against the
Batch API definition (tests/support/definition.py): a new route is checked without anyone
remembering to. A line is the request (method, path and query, whether it was conditional),
a tab, and the JSON body of the answer as sent (empty when there is none or it is not JSON).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from aiohttp import web

ENV = "BATCHSPEC_EMULATOR_RECORD"
_CONDITIONAL = ("If-None-Match", "If-Modified-Since")


class Recorder:
    def __init__(self, directory: Path):
        directory.mkdir(parents=True, exist_ok=True)
        # Unbuffered, one write per line: a reader sees whole lines as soon as they are answered.
        self._file = open(directory / f"emulator-{os.getpid()}.jsonl", "ab", buffering=0)  # noqa: SIM115

    def write(self, request: web.Request, response: web.StreamResponse) -> None:
        meta = {
            "method": request.method,
            "url": str(request.rel_url),
            "status": response.status,
            "conditional": any(h in request.headers for h in _CONDITIONAL),
        }
        body = b""
        # aiohttp sends no body with an answer to HEAD: record what went over the wire.
        if (
            request.method != "HEAD"
            and isinstance(response, web.Response)
            and response.content_type == "application/json"
        ):
            body = response.body if isinstance(response.body, bytes) else b""
        self._file.write(json.dumps(meta).encode() + b"\t" + body + b"\n")

    def close(self) -> None:
        self._file.close()
