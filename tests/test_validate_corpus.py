"""Every broken spec in tests/specs/broken is refused with exit code 2, its location and message.

Each corpus file states what it expects in `# expect: LINE:COL: field: message` comments; the
test checks that each appears, prefixed by the file's path, and that no traceback leaks out.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import SPECS, run_cli

BROKEN = sorted((SPECS / "broken").glob("*.yaml"))


def _expectations(path: Path) -> list[str]:
    text = path.read_bytes().decode("utf-8", errors="replace")
    return [
        line.split("# expect:", 1)[1].strip() for line in text.splitlines() if line.startswith("# expect:")
    ]


def test_the_corpus_covers_every_case():
    names = {p.stem for p in BROKEN}
    assert {
        "yaml_syntax",
        "tabs",
        "duplicate_key",
        "empty",
        "top_level_list",
        "non_utf8",
        "custom_tag",
        "alias_bomb",
        "wrong_types",
        "out_of_range",
        "unknown_keys",
        "missing_required",
        "bad_ids",
        "bad_durations",
        "undefined_container",
        "glob_no_match",
        "template_syntax",
        "undefined_var",
        "duplicate_task_ids",
        "template_bounds",
        "template_loops",
        "service_limits",
        "service_limits_schema",
        "container_metadata_size",
        "deep_nesting",
    } <= names


@pytest.mark.parametrize("spec", BROKEN, ids=[p.stem for p in BROKEN])
def test_broken_spec_is_refused_with_location_and_message(spec: Path):
    expected = _expectations(spec)
    assert expected, f"{spec.name} states no # expect: line"
    result = run_cli("validate", str(spec.relative_to(SPECS.parent.parent)), timeout=30)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    shown = f"tests/specs/broken/{spec.name}:"
    for expectation in expected:
        assert shown + expectation in result.stderr or (
            expectation[0].isalpha() and expectation in result.stderr and shown in result.stderr
        ), f"missing {expectation!r} in:\n{result.stderr}"


def test_every_error_is_reported_at_once():
    result = run_cli("validate", "tests/specs/broken/wrong_types.yaml")
    assert result.returncode == 2
    assert len([line for line in result.stderr.splitlines() if "wrong_types.yaml:" in line]) == 3


def test_missing_file_is_refused(cli):
    result = cli("validate", "tests/specs/nope.yaml")
    assert result.returncode == 2
    assert result.stderr.strip() == "tests/specs/nope.yaml: no such file"


def test_directory_is_refused(cli):
    result = cli("validate", "tests/specs")
    assert result.returncode == 2
    assert "tests/specs: is a directory, not a spec file" in result.stderr


@pytest.mark.parametrize(
    "pair, message",
    [
        ("numwords", "malformed --var 'numwords': expected name=value"),
        ("=5", "malformed --var '=5': '' is not a variable name"),
        ("1x=5", "malformed --var '1x=5': '1x' is not a variable name"),
        ("numwrds=5", "--var numwrds: the spec declares no variable 'numwrds' (did you mean 'numwords'?)"),
    ],
)
def test_malformed_var_is_refused(cli, pair, message):
    result = cli("validate", "specs/topn.yaml", "--var", pair)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_a_valid_and_a_broken_spec_together_report_both(cli):
    result = cli("validate", "specs/topn.yaml", "tests/specs/broken/tabs.yaml")
    assert result.returncode == 2
    assert "specs/topn.yaml: valid (4 blob(s), 3 task(s))" in result.stdout
    assert "tests/specs/broken/tabs.yaml:3:1: invalid YAML" in result.stderr


def test_alias_bomb_is_refused_quickly(cli):
    import time

    start = time.monotonic()
    result = cli("validate", "tests/specs/broken/alias_bomb.yaml", timeout=20)
    assert result.returncode == 2
    assert time.monotonic() - start < 10
