"""`transfer.prepare`: apply begins importing aiohttp in a thread once its plan uploads more small
files than go through the SDK on threads (never otherwise), and the exit waits for it."""

from __future__ import annotations

import subprocess
import sys

CODE = """
import sys, threading
from batchspec.apply import transfer
from batchspec.model import Blob
assert 'aiohttp' not in sys.modules
count = int(sys.argv[1])
transfer.prepare([Blob('c', f'b{i}', f'/x/b{i}', 10, 'd') for i in range(count)])
transfer.prepare([Blob('c', 'big', '/x/big', 2 * 1024 * 1024, 'd')] * 50)  # large files: no
for thread in threading.enumerate():
    if thread.name == 'batchspec-prepare':
        # an exit while a daemon thread imports C extensions can crash the interpreter
        assert not thread.daemon
        thread.join()
print('aiohttp' in sys.modules)
"""


def _prepared(count: int) -> bool:
    result = subprocess.run(
        [sys.executable, "-c", CODE, str(count)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout.strip() == "True"


def test_aiohttp_is_imported_ahead_only_for_more_small_files_than_go_on_threads():
    from batchspec.apply import transfer

    assert _prepared(transfer._FEW + 1)
    assert not _prepared(transfer._FEW)
