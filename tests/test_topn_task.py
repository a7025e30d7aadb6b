"""Tests of node/topn_task.py, the node-side task script, run as a real subprocess.

Every expected output is written out literally, counted by hand from the input.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "node" / "topn_task.py"
DATA = ROOT / "data"

RULE = "------------------------------\n"
HEADER = "Word\tCount\n" + RULE
FOOTER = RULE + "Node: node-7\nTask: task-3\nJob:  job-a\nPool: pool-x\n"
BATCH_ENV = {
    "AZ_BATCH_NODE_ID": "node-7",
    "AZ_BATCH_TASK_ID": "task-3",
    "AZ_BATCH_JOB_ID": "job-a",
    "AZ_BATCH_POOL_ID": "pool-x",
}


def run_task(cwd: Path, *args: str, batch_env: bool = True) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AZ_BATCH_")}
    if batch_env:
        env.update(BATCH_ENV)
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def count_words(tmp_path: Path, text: str | bytes, numwords: int, name: str = "in.txt") -> str:
    """Write `text` to `name`, run the task on it from tmp_path, return the output file's text."""
    src = tmp_path / name
    if isinstance(text, str):
        text = text.encode("utf-8")
    src.write_bytes(text)
    result = run_task(tmp_path, "--filepath", name, "--numwords", str(numwords))
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    out = tmp_path / (src.stem + "_OUTPUT" + src.suffix)
    return out.read_bytes().decode("utf-8")


def test_output_file_is_named_after_input_stem_with_output_suffix(tmp_path):
    count_words(tmp_path, "x y x\n", 1, name="taskdata0.txt")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taskdata0.txt", "taskdata0_OUTPUT.txt"]


# (input, numwords, the expected lines between the header and the footer)
COUNTS = {
    "most frequent first": ("apple banana apple\ncherry banana apple\n", 2, "apple:\t3\nbanana:\t2\n"),
    # zeta 2, alpha 2, mid 1, beta 2: beta first appears after mid but outranks it.
    "ties keep the order of first occurrence, not alphabetical": (
        "zeta alpha mid alpha zeta beta beta\n",
        4,
        "zeta:\t2\nalpha:\t2\nbeta:\t2\nmid:\t1\n",
    ),
    "a tie at the cutoff keeps the word that occurred first": (
        "zeta alpha mid alpha zeta beta beta\n",
        2,
        "zeta:\t2\nalpha:\t2\n",
    ),
    "punctuation stripped from both ends but kept inside": (
        "Don't panic; don't, \"don't!\" e.g., (e.g.) --- hello-world -hello-world- x.y.z.\n",
        10,
        "don't:\t2\ne.g:\t2\nhello-world:\t2\nDon't:\t1\npanic:\t1\nx.y.z:\t1\n",
    ),
    "words are case sensitive": ("The the THE the tHe The the\n", 4, "the:\t3\nThe:\t2\nTHE:\t1\ntHe:\t1\n"),
    "numwords above the distinct words lists them all": (
        "one two two three three three\n",
        10,
        "three:\t3\ntwo:\t2\none:\t1\n",
    ),
    "invalid UTF-8 bytes are replaced, not fatal": (
        b"caf\xc3\xa9 bad\xff caf\xc3\xa9 bad\xff ok\n",
        5,
        "caf\u00e9:\t2\nbad\ufffd:\t2\nok:\t1\n",
    ),
}


@pytest.mark.parametrize(("text", "numwords", "expected"), list(COUNTS.values()), ids=list(COUNTS))
def test_counts(tmp_path, text, numwords, expected):
    assert count_words(tmp_path, text, numwords) == HEADER + expected + FOOTER


@pytest.mark.parametrize("text", ["", "   \n\t\n", "-- ... !? ()\n"], ids=["empty", "blank", "punctuation"])
def test_file_without_words_gives_header_and_footer_only(tmp_path, text):
    assert count_words(tmp_path, text, 3) == HEADER + FOOTER


def test_odd_file_name_is_a_plain_string_never_run_by_a_shell(tmp_path):
    name = 'my "odd" file\'s $(touch pwned) `touch pwned` ; touch pwned \u00e9\u6587.txt'
    out = count_words(tmp_path, "b a b\n", 5, name=name)
    assert out == HEADER + "b:\t2\na:\t1\n" + FOOTER
    stem = name[: -len(".txt")]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([name, stem + "_OUTPUT.txt"])
    assert not (tmp_path / "pwned").exists()
    assert not (ROOT / "pwned").exists()


def test_filepath_with_directory_part_writes_output_into_cwd(tmp_path):
    src_dir = tmp_path / "inputs" / "batch"
    src_dir.mkdir(parents=True)
    (src_dir / "x.txt").write_text("q q r\n", encoding="utf-8")
    work = tmp_path / "work"
    work.mkdir()
    result = run_task(work, "--filepath", "../inputs/batch/x.txt", "--numwords", "1")
    assert result.returncode == 0, result.stderr
    assert (work / "x_OUTPUT.txt").read_text(encoding="utf-8") == HEADER + "q:\t2\n" + FOOTER
    assert sorted(p.name for p in src_dir.iterdir()) == ["x.txt"]


def test_missing_batch_env_vars_print_as_empty_values(tmp_path):
    (tmp_path / "in.txt").write_text("w\n", encoding="utf-8")
    result = run_task(tmp_path, "--filepath", "in.txt", "--numwords", "1", batch_env=False)
    assert result.returncode == 0, result.stderr
    expected = HEADER + "w:\t1\n" + RULE + "Node: \nTask: \nJob:  \nPool: \n"
    assert (tmp_path / "in_OUTPUT.txt").read_text(encoding="utf-8") == expected


@pytest.mark.parametrize("make_dir", [False, True], ids=["missing-file", "directory"])
def test_unreadable_input_exits_1_with_one_line_message_and_no_traceback(tmp_path, make_dir):
    if make_dir:
        (tmp_path / "nope.txt").mkdir()
    result = run_task(tmp_path, "--filepath", "nope.txt", "--numwords", "3")
    assert result.returncode == 1
    assert "nope.txt" in result.stderr
    assert len(result.stderr.splitlines()) == 1
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "nope_OUTPUT.txt").exists()


@pytest.mark.parametrize("numwords", ["0", "-2", "three", "2.5", ""])
def test_numwords_not_a_positive_int_is_an_argparse_error(tmp_path, numwords):
    (tmp_path / "in.txt").write_text("a b\n", encoding="utf-8")
    result = run_task(tmp_path, "--filepath", "in.txt", "--numwords", numwords)
    assert result.returncode == 2
    assert "--numwords" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "in_OUTPUT.txt").exists()


@pytest.mark.parametrize(
    ("name", "top3"),
    [
        ("taskdata0.txt", "the:\t34\nand:\t16\na:\t10\n"),
        ("taskdata1.txt", "the:\t31\na:\t22\nlighthouse:\t11\n"),
        ("taskdata2.txt", "the:\t31\nof:\t14\nbees:\t12\n"),
    ],
)
def test_sample_data_top_three(tmp_path, name, top3):
    result = run_task(tmp_path, "--filepath", str(DATA / name), "--numwords", "3")
    assert result.returncode == 0, result.stderr
    out = tmp_path / name.replace(".txt", "_OUTPUT.txt")
    assert out.read_text(encoding="utf-8") == HEADER + top3 + FOOTER
