"""How fast the run report of 10,000 tasks opens in a real browser (Debian's chromium, driven
by playwright, as tests/e2e/test_report.py does).

Renders the report page (`batchspec/ui/html.py`) of 10,000 tasks on 4 nodes x 2 slots (5% failed,
2% requeued), then measures in headless chromium the time from navigation to the page's load
event, median of --repeat runs. Baseline, in the same run: the naive page of the same tasks as
plain table rows, without timeline, counts or script. Target: the report opens in under 2 s.

    python benchmarks/report_10k.py [--quick] [--check] [--repeat 3]
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from html import escape
from pathlib import Path

import _common as c
from batchspec.ui import html


def status(n: int) -> dict:
    """What `status` reads after a run of `n` one-second tasks on 4 nodes x 2 slots."""
    begin = datetime(2026, 12, 5, 10, 0, tzinfo=timezone.utc)
    nodes = [f"tvmps_{i:032x}_d" for i in range(4)]

    def iso(seconds: float) -> str:
        return (begin + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")

    tasks = []
    for i in range(n):
        slot = i % 8
        start = (i // 8) * 1.0 + 0.01 * slot
        failed = i % 20 == 7
        tasks.append(
            {
                "id": f"task-{i:05d}",
                "state": "completed",
                "result": "failure" if failed else "success",
                "exitCode": 1 if failed else 0,
                "node": nodes[slot // 2],
                "startTime": iso(start),
                "endTime": iso(start + 0.9),
                "retries": 0,
                "requeues": 1 if i % 50 == 3 else 0,
                "cause": "exit code 1" if failed else None,
            }
        )
    node_list = [
        {"id": node, "state": "idle", "dedicated": True, "allocationTime": iso(-60), "startTask": None}
        for node in nodes
    ]
    return {
        "name": "bench",
        "pool": {"id": "bench-pool", "nodeList": node_list},
        "job": {"id": "bench-job"},
        "tasks": tasks,
        "causes": [],
    }


def naive(report: dict) -> str:
    rows = "".join(f"<tr><td>{escape(t['id'])}</td><td>{t['result']}</td></tr>" for t in report["tasks"])
    return f"<!doctype html><html><body><table>{rows}</table></body></html>"


def load_seconds(page, path: Path) -> float:
    started = time.perf_counter()
    page.goto(path.as_uri(), wait_until="load")
    return time.perf_counter() - started


def main() -> int:
    p = c.parser(__doc__)
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args()
    n = 500 if args.quick else 10_000
    chromium = shutil.which("chromium")
    if chromium is None:
        print("no chromium on PATH: `make test` (as root) installs Debian's chromium", file=sys.stderr)
        return 2
    from playwright.sync_api import sync_playwright

    report = status(n)
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as pw:
        with c.timer() as rendered:
            page_html = html.render(report, now=datetime(2026, 12, 5, 12, tzinfo=timezone.utc))
        full, plain = Path(tmp) / "report.html", Path(tmp) / "naive.html"
        full.write_text(page_html, encoding="utf-8")
        plain.write_text(naive(report), encoding="utf-8")
        browser = pw.chromium.launch(executable_path=chromium, args=list(html.HEADLESS_CHROMIUM_ARGS))
        page = browser.new_page()
        load_seconds(page, plain)  # warm the browser up
        runs = [load_seconds(page, full) for _ in range(args.repeat)]
        baseline = [load_seconds(page, plain) for _ in range(args.repeat)]
        page.goto(full.as_uri())
        bars = page.locator("svg rect.attempt").count()
        browser.close()
    if bars != n:
        raise SystemExit(f"the page shows {bars} bars for {n} tasks")
    opened = c.median(runs)
    rows = [
        c.Row(
            f"report of {n} tasks opens",
            "s",
            opened,
            baseline=c.median(baseline),
            target="<= 2 s",
            met=opened <= 2,
            runs=runs,
            note=f"{len(page_html) / 1e6:.1f} MB page rendered in {rendered['s']:.2f} s; "
            "baseline: the same tasks as plain table rows",
        )
    ]
    return c.report("report_10k", rows, quick=args.quick, check=args.check, params={"tasks": n})


if __name__ == "__main__":
    sys.exit(main())
