"""Where batchspec keeps its data on this machine: the local services' state and logs, and the
build cache. Apart from `local` (which starts services) so that a command that only reads a spec
does not import it."""

from __future__ import annotations

import os
from pathlib import Path


def data_dir() -> Path:
    """$BATCHSPEC_HOME, else $XDG_DATA_HOME/batchspec, else ~/.local/share/batchspec."""
    if os.environ.get("BATCHSPEC_HOME"):
        return Path(os.environ["BATCHSPEC_HOME"]).expanduser()
    xdg = os.environ.get("XDG_DATA_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".local" / "share"
    return base / "batchspec"
