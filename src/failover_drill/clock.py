"""One injectable monotonic clock, so that measurement can be tested without sleeping."""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Monotonic seconds."""
        ...

    def wall(self) -> float:
        """Seconds since the epoch, only for labelling and for other processes' logs."""
        ...


class MonotonicClock:
    def now(self) -> float:
        return time.monotonic()

    def wall(self) -> float:
        return time.time()


class ManualClock:
    """A clock tests move by hand."""

    def __init__(self, start: float = 0.0, wall_offset: float = 1_700_000_000.0) -> None:
        self._t = start
        self._wall_offset = wall_offset

    def now(self) -> float:
        return self._t

    def wall(self) -> float:
        return self._t + self._wall_offset

    def advance(self, seconds: float) -> None:
        self._t += seconds


class Anchor:
    """Maps wall-clock timestamps (from Envoy or agent logs) onto the drill's monotonic axis."""

    def __init__(self, clock: Clock) -> None:
        self.mono = clock.now()
        self.wall = clock.wall()

    def to_mono(self, wall_ts: float) -> float:
        return self.mono + (wall_ts - self.wall)
