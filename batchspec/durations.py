"""ISO-8601 durations as the Batch API uses them (PT20M, P1DT2H, PT0.5S): the one parser of the
code base, the emulator's included (a leaf module: it imports nothing of batchspec).

Only seconds take a fraction (PT1.5H is refused everywhere alike, at validate time in batchspec
and with a 400 in the emulator), as .NET's TimeSpan, which the service uses, writes them.
"""

from __future__ import annotations

import re
from datetime import timedelta

_DURATION = re.compile(
    r"^P(?!$)(?:(?P<weeks>\d+)W)?(?:(?P<days>\d+)D)?"
    r"(?:T(?=\d)(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?(?:(?P<seconds>\d+(?:\.\d+)?)S)?)?$"
)


def parse(text: str) -> timedelta:
    """`PT1H30M` -> 1:30:00. Raises ValueError for anything else (years and months included:
    their length is ambiguous, and the Batch API does not take them either)."""
    match = _DURATION.match(text) if isinstance(text, str) else None
    if not match:
        raise ValueError(f"{text!r} is not an ISO-8601 duration such as PT30S, PT20M or P1D")
    parts = {k: float(v) for k, v in match.groupdict().items() if v}
    return timedelta(**parts)


# How the service writes "no limit" (TimeSpan.MaxValue) in constraints it fills in.
UNLIMITED = "P10675199DT2H48M5.4775807S"


def seconds(text: str) -> float:
    """`PT1M30S` -> 90.0; raises ValueError as `parse` does."""
    return parse(text).total_seconds()


_SHORT = {"s": 1, "m": 60, "h": 3600}


def option_seconds(text: str) -> float:
    """A command-line duration in seconds: `90`, `90s`, `5m`, `1.5h`, or ISO-8601 (`PT5M`)."""
    t = text.strip()
    if t and t[-1] in _SHORT and t[:-1].replace(".", "", 1).isdigit():
        return float(t[:-1]) * _SHORT[t[-1]]
    if t.replace(".", "", 1).isdigit():
        return float(t)
    return seconds(t)


def format(delta: timedelta) -> str:
    """1:30:00 -> `PT1H30M`; the inverse of parse for whole seconds."""
    total = int(delta.total_seconds())
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    time = "".join(f"{n}{u}" for n, u in ((hours, "H"), (minutes, "M"), (seconds, "S")) if n)
    return "P" + (f"{days}D" if days else "") + (f"T{time}" if time else ("" if days else "T0S"))
