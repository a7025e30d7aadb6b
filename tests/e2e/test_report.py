"""The run report, opened in a real headless browser (Debian's chromium, driven by playwright):
no console error, one bar per task, the failed ones with their cause in the tooltip, a table
that sorts; the page is saved as a screenshot (BATCHSPEC_ARTIFACTS, else the test's folder)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from batchspec.ui.html import HEADLESS_CHROMIUM_ARGS
from support.workspace import Workspace

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# taskdata1 fails (exit code 7, a line on stderr); the others succeed.
ONE_FAILS = (
    "command=python3 -c 'import sys; name = sys.argv[-3]; "
    'sys.exit(0) if "taskdata1" not in name else (sys.stderr.write("bad\\\\n"), sys.exit(7))\' x'
)


@pytest.fixture(scope="module")
def page():
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"no chromium at {CHROMIUM}: `make test` installs Debian's chromium where it can")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=list(HEADLESS_CHROMIUM_ARGS))
        yield browser.new_page(viewport={"width": 1240, "height": 900})
        browser.close()


def test_the_report_shows_every_task_and_why_one_failed(workspace: Workspace, page, tmp_path):
    result = workspace.apply("--var", ONE_FAILS)
    assert result.returncode == 3, result.stdout + result.stderr
    beside = workspace.root / f"{workspace.name}-report.html"  # beside the download folder
    assert f"Report: {beside}" in " ".join(result.stdout.split()) and beside.is_file()
    written = workspace.run("report", "spec.yaml", "--out", "r.html", "--var", ONE_FAILS)
    assert written.returncode == 0, written.stderr
    html = (workspace.root / "r.html").read_text()
    assert "http://" not in html.replace("http://www.w3.org/2000/svg", "")  # self-contained

    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.goto((workspace.root / "r.html").as_uri())
    bars = page.locator("svg rect.attempt")
    assert bars.count() == 3
    failed = page.locator("svg rect.attempt.failure")
    assert failed.count() == 1
    assert failed.get_attribute("data-task") == "topn-taskdata1"
    assert "cause: exit code 7" in failed.locator("title").text_content()
    assert page.locator("svg rect.start-task").count() == 2  # each node's start task
    assert "exit code 7" in page.locator("#causes").text_content()
    header = page.locator("#tasks th", has_text="exit code")
    header.click()
    header.click()  # descending: the failed task first
    assert page.locator("#tasks tbody tr").first.locator("td").first.text_content() == "topn-taskdata1"
    assert problems == []
    shots = Path(os.environ.get("BATCHSPEC_ARTIFACTS") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(shots / "report.png"), full_page=True)
    assert (shots / "report.png").stat().st_size > 10_000
