"""Fixtures shared by every test, and the check of every emulator answer against the API
definition (support/answers.py)."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from batchspec.emulator.record import ENV as RECORD
from helpers import run_cli
from support.answers import Answers

_answers = pytest.StashKey[Answers]()


def pytest_configure(config):
    # Before any fixture starts an emulator: every one of them inherits this.
    directory = Path(tempfile.mkdtemp(prefix="batchspec-answers-"))
    os.environ[RECORD] = str(directory)
    config.stash[_answers] = Answers(directory)


def pytest_xdist_auto_num_workers(config):
    """`-n auto`: a worker more than the cores, at most four. The suite mostly waits on its
    services and subprocesses: two workers kept two cores about half busy (user + system time
    ~390 s over a 373 s run)."""
    return min(4, (os.cpu_count() or 1) + 1)


def pytest_unconfigure(config):
    answers = config.stash.get(_answers, None)
    if answers is not None:
        shutil.rmtree(answers.directory, ignore_errors=True)


@pytest.fixture(autouse=True)
def answers_conform_to_the_definition(request):
    """Fails the test (at teardown) whose requests the emulator answered other than the Batch
    API definition says: a status the operation does not declare, a property outside the
    definition, a wrong type, format or enum value, a required property missing."""
    yield
    problems = request.config.stash[_answers].problems()
    if problems:
        pytest.fail("the emulator answered outside the API definition:\n  " + "\n  ".join(problems))


# Under pytest-xdist each worker checks its own emulators' answers; what it counted, and what
# session fixtures' teardowns got wrong after its last test, reach the controller here.
_from_workers = pytest.StashKey[dict]()


def _tally(config) -> dict:
    if _from_workers not in config.stash:
        config.stash[_from_workers] = {"checked": 0, "problems": []}
    return config.stash[_from_workers]


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    output = getattr(node, "workeroutput", {})
    tally = _tally(node.config)
    tally["checked"] += output.get("answers_checked", 0)
    tally["problems"] += output.get("answers_problems", [])


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    answers = config.stash.get(_answers, None)
    checked = (answers.checked if answers is not None else 0) + _tally(config)["checked"]
    if checked:
        terminalreporter.write_line(f"{checked} emulator answers held to the Batch API definition")


def pytest_sessionfinish(session, exitstatus):
    # Answers after the last test's check: session fixtures' teardowns.
    answers = session.config.stash.get(_answers, None)
    problems = answers.problems() if answers is not None else []
    worker = getattr(session.config, "workeroutput", None)
    if worker is not None:  # a pytest-xdist worker: the controller reports
        worker["answers_checked"] = answers.checked if answers is not None else 0
        worker["answers_problems"] = problems
        return
    problems += _tally(session.config)["problems"]
    if problems:
        listed = "\n  ".join(problems)
        print(f"\nthe emulator answered outside the API definition after the last test:\n  {listed}")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


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
