"""Waiting for the services, bounded: one deadline type, one polling loop (apply, destroy and the
local services use it), one way to finish an SDK long-running operation within the deadline.

Each wait names what it waits for and which limit bounds it, so a timeout says both.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

from batchspec.errors import ApplyTimeout

T = TypeVar("T")


class Deadline:
    """A moment a wait must not pass; `limit` names the setting that set it, for the message."""

    def __init__(self, seconds: float | None, limit: str):
        self.seconds = seconds
        self.limit = limit
        self._at = time.monotonic() + seconds if seconds is not None else None

    def remaining(self) -> float | None:
        return None if self._at is None else max(0.0, self._at - time.monotonic())

    def expired(self) -> bool:
        return self._at is not None and time.monotonic() >= self._at

    def timeout(self, waiting_for: str) -> ApplyTimeout:
        return ApplyTimeout(
            f"timed out after {_shown(self.seconds)} waiting for {waiting_for}",
            hint=f"the limit is {self.limit}; run the command again to resume",
        )


def _shown(seconds: float | None) -> str:
    if seconds is None:
        return "no limit"
    if seconds >= 120:
        return f"{seconds / 60:g} min"
    return f"{seconds:g} s"


def poll(
    condition: Callable[[], T | None],
    deadline: Deadline,
    interval: float,
    *,
    on_first_wait: Callable[[], None] | None = None,
) -> T | None:
    """Call `condition` until it returns something other than None or False, and return that;
    None once `deadline` has passed. `on_first_wait` runs once, before the first sleep (to say
    what is being waited for only when there is a wait)."""
    said = False
    while True:
        result = condition()
        if result is not None and result is not False:
            return result
        if deadline.expired():
            return None
        if not said and on_first_wait is not None:
            on_first_wait()
        said = True
        remaining = deadline.remaining()
        time.sleep(interval if remaining is None else min(interval, max(remaining, 0.01)))


def until(
    condition: Callable[[], T | None],
    deadline: Deadline,
    interval: float,
    waiting_for: str,
    *,
    on_first_wait: Callable[[], None] | None = None,
    error: Callable[[], Exception] | None = None,
) -> T:
    """`poll`, raising once the deadline has passed: `error()`, else an ApplyTimeout that names
    what was waited for and the limit."""
    result = poll(condition, deadline, interval, on_first_wait=on_first_wait)
    if result is None:
        raise error() if error is not None else deadline.timeout(waiting_for)
    return result


def finish(poller: Any, deadline: Deadline, waiting_for: str) -> Any:
    """The result of an SDK long-running operation (an LROPoller), waiting no longer than the
    deadline: `poller.result()` alone would poll for as long as the service takes."""
    poller.wait(deadline.remaining())
    if not poller.done():
        raise deadline.timeout(waiting_for)
    return poller.result()
