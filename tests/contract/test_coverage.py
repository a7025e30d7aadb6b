"""The emulator serves every operation of the API definition that is not deprecated, and docs/
emulator.md says how many; the deprecated ones (certificates) answer InvalidUri."""

from __future__ import annotations

import pytest

from batchspec.emulator import errors, server
from support import definition


def _path(op: definition.Operation) -> str:
    path = op.template.replace("{filePath}", "wd/x")
    for name in ("poolId", "nodeId", "jobId", "taskId", "jobScheduleId", "applicationId", "userName"):
        path = path.replace("{" + name + "}", "x")
    for name in ("extensionName", "thumbprintAlgorithm", "thumbprint"):
        path = path.replace("{" + name + "}", "x")
    return path


def test_every_current_operation_has_a_handler_and_the_docs_count_them():
    current = [o for o in definition.operations() if not o.deprecated]
    for op in current:
        server.resolve(op.method, _path(op))  # raises InvalidUri (400) or UnsupportedHttpVerb (405)
    docs = " ".join((definition.DEFINITION.parents[3] / "docs" / "emulator.md").read_text().split())
    assert f"{len(current)} of the definition's {len(current)} operations that are not deprecated" in docs


def test_the_deprecated_operations_are_invalid_uris():
    for op in (o for o in definition.operations() if o.deprecated):
        with pytest.raises(errors.BatchServiceError) as info:
            server.resolve(op.method, _path(op))
        assert info.value.code == "InvalidUri", op.id
