"""Apply's last step: download the blobs that are missing or different, never outside the folder."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from batchspec.apply import transfer
from batchspec.apply.common import short
from batchspec.live import state as live_state
from batchspec.spec.files import safe_local_path

if TYPE_CHECKING:
    from batchspec.apply.executor import Applier


def download(run: Applier) -> None:
    d = run.desired.download
    if not d:
        return
    pending = live_state.download_pending(run.t, run.desired)
    if not pending:
        return
    root = Path(d.to)
    refused = [n for n in pending if safe_local_path(root, n) is None]
    for name in refused:
        run.outcome.problems.append(
            f"refused to download blob {name!r}: its name would be written outside {root}"
        )
    names = [n for n in pending if n not in refused]
    run.ui.step(f"downloading {len(names)} blob(s) to {root}")
    with run.ui.progress("download", len(names)) as advance:
        failures = transfer.download(
            run.t,
            d.container,
            names,
            root,
            parallelism=run.parallelism,
            sizes=pending,
            on_done=lambda n: advance(1),
        )
    for name, exc in failures:
        run.outcome.problems.append(f"download of {name!r} failed: {short(exc)}")
    run.outcome.downloaded = len(names) - len(failures)
