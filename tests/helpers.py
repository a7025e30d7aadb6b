"""Paths of the project and a runner of the real CLI, shared by the tests."""

from __future__ import annotations

import os
import string
import subprocess
import sys
from collections import Counter
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


def expected_output(text: str, numwords: int) -> list[str]:
    """The top words of a text, computed independently of the node script (for assertions)."""
    words = [w.strip(string.punctuation) for w in text.split()]
    counts = Counter(w for w in words if w)
    order = {w: i for i, w in reversed(list(enumerate(w for w in words if w)))}
    top = sorted(counts, key=lambda w: (-counts[w], order[w]))[:numwords]
    return [f"{w}:\t{counts[w]}" for w in top]
