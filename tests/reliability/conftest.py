"""Services for the reliability suite, each a real subprocess on a free loopback port.

- `clean`: Azurite and a Batch emulator without faults.
- `faulty`: a Batch emulator injecting 10% 503s and 5% dropped connections, and the project's
  fault proxy in front of the same Azurite at the same rates.

Every test gets its own spec name, so tests never share a resource. batchspec is driven with
`--target azure` and the environment pointing at these services.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import reliability_support as rs
from reliability_support import FAULT_503, FAULT_DROP, Stack, new_name


@pytest.fixture(scope="session")
def rel_home(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("reliability")


@pytest.fixture(scope="session")
def azurite(rel_home):
    service = rs.azurite(rel_home).start()
    yield service
    service.stop()


@pytest.fixture(scope="session")
def clean(rel_home, azurite):
    emulator = rs.emulator(rel_home / "batch-clean").start()
    yield Stack(rel_home, emulator, azurite.url, azurite)
    emulator.stop()


@pytest.fixture
def faulty(rel_home, azurite, tmp_path):
    """Fresh per test: each test's n-th request meets the same seeded fault. Seed 505 drops
    proxy requests 18 (before Azurite) and 45 (after it), seed 503 drops emulator requests
    4 and 5, and both answer 503s in between."""
    emulator = rs.emulator(tmp_path / "batch-faulty", rate_503=FAULT_503, drop=FAULT_DROP, seed=503).start()
    proxy = rs.faultproxy(
        azurite.url, tmp_path / "faultproxy.log", rate_503=FAULT_503, drop=FAULT_DROP, seed=505
    ).start()
    stack = Stack(rel_home, emulator, proxy.url, azurite, proxy)
    yield stack
    proxy.stop()
    emulator.stop()


@pytest.fixture
def clean_ws(tmp_path, clean) -> rs.Workspace:
    return rs.Workspace.tutorial(tmp_path / "ws", new_name(), clean.env)


@pytest.fixture(scope="session")
def figures(request):
    """Figures of this run (faults injected, kills, timings): saved in pytest's cache under
    `reliability/figures` (`.pytest_cache/v/reliability/figures`, or `figures-gw0`, ... one per
    pytest-xdist worker) for docs/reliability.md."""
    found: dict = {}
    yield found
    cache = getattr(request.config, "cache", None)  # absent with -p no:cacheprovider
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if found and cache is not None:
        cache.set(f"reliability/figures-{worker}" if worker else "reliability/figures", found)
