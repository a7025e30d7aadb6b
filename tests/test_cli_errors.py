"""Failures a user can meet before any spec logic runs: each is one clear line, no traceback."""

from __future__ import annotations

import os
import socket
import time

from batchspec.emulator import DEV_ACCOUNT_KEY, DEV_ACCOUNT_NAME
from support.services import connection_string


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when this returns: nothing listens there


def test_an_unreachable_service_is_one_line_and_quick(cli):
    port = _closed_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AZURE_")}
    env.update(
        AZURE_BATCH_ENDPOINT=f"http://127.0.0.1:{port}",
        AZURE_BATCH_ACCOUNT_NAME=DEV_ACCOUNT_NAME,
        AZURE_BATCH_ACCOUNT_KEY=DEV_ACCOUNT_KEY,
        AZURE_STORAGE_CONNECTION_STRING=connection_string(f"http://127.0.0.1:{port}"),
    )
    start = time.monotonic()
    result = cli("plan", "specs/topn.yaml", "--target", "azure", env=env)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("error: ")
    assert len(result.stderr.strip().splitlines()) == 1
    assert DEV_ACCOUNT_KEY not in result.stderr
    assert time.monotonic() - start < 30
