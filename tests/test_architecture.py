"""The pipeline's shape, enforced: which part of batchspec may import which (docs/architecture.md).

spec -> model -> live -> plan -> apply -> ui, with services below live and the emulator apart:
no import goes back up, and the emulator imports nothing of batchspec but the duration parser.
"""

from __future__ import annotations

import ast
from pathlib import Path

from helpers import ROOT

PACKAGE = ROOT / "batchspec"
# What each part may import (besides itself). A part missing here may import nothing.
ALLOWED = {
    "errors": set(),
    "durations": set(),
    "timeouts": set(),
    "waiting": {"errors"},
    "model": {"errors"},
    "spec": {"errors", "durations", "model"},
    "services": {"errors", "local", "timeouts"},
    "home": set(),
    "local": {"errors", "waiting", "emulator", "home"},
    "live": {"errors", "durations", "model", "services", "spec"},
    "plan": {"errors", "durations", "timeouts", "model", "spec"},
    "apply": {"errors", "durations", "timeouts", "waiting", "model", "spec", "services", "live", "plan"},
    "ui": {"errors", "model", "plan", "apply"},
    "emulator": {"durations"},
    "cli": {
        "errors",
        "durations",
        "timeouts",
        "model",
        "spec",
        "services",
        "local",
        "home",
        "live",
        "plan",
        "apply",
        "ui",
    },
    "__main__": {"cli"},
    "__init__": set(),
}
MAX_LINES = 400


def _part(path: Path) -> str:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return parts[0]


def _imports(path: Path) -> set[str]:
    """The parts of batchspec a module imports (`from batchspec import x` counts as part x)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "batchspec":
            if node.module == "batchspec":
                found |= {a.name for a in node.names if a.name != "__version__"}
            else:
                found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".")[1] for a in node.names if a.name.startswith("batchspec.")}
    return found


def test_every_import_goes_down_the_pipeline():
    wrong = []
    for path in sorted(PACKAGE.rglob("*.py")):
        part = _part(path)
        assert part in ALLOWED, f"{path.relative_to(ROOT)}: a new part of batchspec; add its rule here"
        for imported in sorted(_imports(path) - {part} - ALLOWED[part]):
            wrong.append(f"{path.relative_to(ROOT)} imports batchspec.{imported}")
    assert wrong == []


def test_the_rule_catches_an_import_going_back_up(tmp_path):
    module = tmp_path / "module.py"
    module.write_text("from batchspec.apply.executor import Applier\nfrom batchspec import plan\n")
    assert _imports(module) == {"apply", "plan"}
    assert not {"apply", "plan"} <= ALLOWED["live"]


def test_no_module_is_over_400_lines_without_a_reason_at_its_top():
    long = []
    for path in sorted(PACKAGE.rglob("*.py")):
        text = path.read_text("utf-8")
        if text.count("\n") > MAX_LINES and "Over 400 lines:" not in text[:3000]:
            long.append(f"{path.relative_to(ROOT)}: {text.count(chr(10))} lines")
    assert long == []
