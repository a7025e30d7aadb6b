"""Every answer of every emulator the tests start, checked against the API definition.

The suite points `BATCHSPEC_EMULATOR_RECORD` at a folder before anything starts; each emulator
(started by a fixture, a test or `batchspec local up`) writes its answers there, one file per
process (batchspec/emulator/record.py). After each test, the answers given since the last check
are read and held to the definition (`definition.response_errors`), so the test that made a
non-conforming answer fails, naming the operation, the property and the rule. The answers of
the emulator's stand-in for Azure Resource Manager go to their own referee (`arm`).
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from support import arm, definition

_SHOWN = 12


class Answers:
    def __init__(self, directory: Path):
        self.directory = directory
        self._read: dict[Path, int] = {}  # file -> bytes already checked
        self.checked = 0

    def _new_lines(self) -> list[bytes]:
        lines: list[bytes] = []
        for path in sorted(self.directory.glob("*.jsonl")):
            start = self._read.get(path, 0)
            with path.open("rb") as f:
                f.seek(start)
                data = f.read()
            whole = data[: data.rfind(b"\n") + 1]  # a line still being written waits for next time
            self._read[path] = start + len(whole)
            lines += whole.splitlines()
        return lines

    def problems(self) -> list[str]:
        """The definition's objections to the answers since the last call, most frequent first."""
        found: Counter[str] = Counter()
        for line in self._new_lines():
            meta, _, raw = line.partition(b"\t")
            answer = json.loads(meta)
            body = json.loads(raw) if raw.strip() else None
            self.checked += 1
            if arm.is_management(answer["url"]):
                errors = arm.response_errors(answer["method"], answer["url"], answer["status"], body)
            else:
                errors = definition.response_errors(
                    answer["method"], answer["url"], answer["status"], body, conditional=answer["conditional"]
                )
            found.update(errors)
        shown = [f"{text}  (x{n})" if n > 1 else text for text, n in found.most_common(_SHOWN)]
        if len(found) > _SHOWN:
            shown.append(f"... and {len(found) - _SHOWN} more")
        return shown
