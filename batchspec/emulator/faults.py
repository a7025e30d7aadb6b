"""Fault injection, off by default: 503 ServerBusy, added latency and dropped connections.

Faults exercise a client's retry logic the way a busy Batch front end does. They are drawn from
one seeded random generator, so a given seed and request sequence reproduce the same faults.
"""

from __future__ import annotations

import argparse
import asyncio
import random
from dataclasses import dataclass, field


@dataclass
class Faults:
    """Rates in [0, 1]; latency in milliseconds; `seed` makes the sequence reproducible."""

    rate_503: float = 0.0
    drop_rate: float = 0.0
    latency_ms: int = 0
    seed: int | None = None
    _rng: random.Random = field(init=False, repr=False)

    def __post_init__(self) -> None:
        for name in ("rate_503", "drop_rate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, got {value}")
        if self.latency_ms < 0:
            raise ValueError("latency_ms must not be negative")
        self._rng = random.Random(self.seed)

    @property
    def enabled(self) -> bool:
        """Whether any fault is configured."""
        return bool(self.rate_503 or self.drop_rate or self.latency_ms)

    async def delay(self) -> None:
        """Sleep for the configured latency."""
        if self.latency_ms:
            await asyncio.sleep(self.latency_ms / 1000)

    def should_drop(self) -> bool:
        """Draw: close the connection without answering."""
        return bool(self.drop_rate) and self._rng.random() < self.drop_rate

    def should_503(self) -> bool:
        """Draw: answer 503 ServerBusy."""
        return bool(self.rate_503) and self._rng.random() < self.rate_503


def rate(text: str) -> float:
    """An argparse type: a fraction of requests, between 0 and 1."""
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError("a rate is between 0 and 1")
    return value
