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
# Sleeps of a fifth of the interval for the first four intervals, then growing by half to it.
_FIRST, _BRISK, _GROWTH = 0.2, 4.0, 1.5


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
    what is being waited for only when there is a wait).

    The sleeps are a fifth of `interval` for the first four intervals, then grow to it by half
    each time: what is waited for is often just about done (a local pool's nodes take ~0.3 s,
    the tutorial's tasks ~0.5 s), and polling every 0.25 s found it ready ~0.12 s late on
    average, at each wait; a long wait still polls once an interval."""
    said = False
    pause = interval * _FIRST
    brisk_until = time.monotonic() + interval * _BRISK
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
        time.sleep(pause if remaining is None else min(pause, max(remaining, 0.01)))
        if time.monotonic() >= brisk_until:
            pause = min(interval, pause * _GROWTH)


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
