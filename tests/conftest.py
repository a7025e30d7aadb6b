"""Fixtures shared by every test."""

from __future__ import annotations

import pytest

from helpers import run_cli


@pytest.fixture
def cli():
    return run_cli


def pytest_addoption(parser):
    # Here, not in tests/reliability/conftest.py: pytest reads options only from the conftest
    # files it loads at start-up.
    parser.addoption(
        "--crash-iterations",
        type=int,
        default=5,
        help="reliability: how many applies are killed with SIGKILL at seeded moments (default 5)",
    )
    parser.addoption(
        "--crash-seed",
        type=int,
        default=20261125,
        help="reliability: seed of the kill moments",
    )
