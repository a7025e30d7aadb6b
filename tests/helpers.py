"""Paths of the project and a runner of the real CLI, shared by the tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SPECS = Path(__file__).resolve().parent / "specs"


def run_cli(
    *args: str, cwd: Path | str = ROOT, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run `batchspec ARGS` as a real subprocess, as a user would."""
    return subprocess.run(
        [sys.executable, "-m", "batchspec", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )
