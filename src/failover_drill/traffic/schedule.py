"""Arrival schedules: constant rate, ramps and steps, every send time known in advance."""

from __future__ import annotations

import math
from dataclasses import dataclass

from failover_drill.errors import ConfigError


@dataclass(frozen=True)
class Segment:
    duration_s: float
    rate_from: float
    rate_to: float


class Schedule:
    """Piecewise-linear rate; arrival n happens when the integrated rate reaches n."""

    def __init__(self, segments: list[Segment]) -> None:
        if not segments:
            raise ConfigError("a traffic schedule needs at least one segment")
        for s in segments:
            if s.duration_s <= 0 or s.rate_from < 0 or s.rate_to < 0 or (s.rate_from == 0 and s.rate_to == 0):
                raise ConfigError(
                    f"bad traffic segment {s}: durations must be > 0 and rates >= 0, not both 0",
                    field="traffic.rate_rps",
                    hint="use a rate above 0 req/s",
                )
        self.segments = segments
        self.duration_s = sum(s.duration_s for s in segments)

    @classmethod
    def constant(cls, rate_rps: float, duration_s: float) -> Schedule:
        if rate_rps <= 0:
            raise ConfigError(
                f"rate must be > 0 req/s, got {rate_rps}", field="traffic.rate_rps", hint="e.g. --rate 200"
            )
        return cls([Segment(duration_s, rate_rps, rate_rps)])

    def expected_count(self) -> int:
        return int(sum((s.rate_from + s.rate_to) / 2 * s.duration_s for s in self.segments))

    def __iter__(self) -> _Iter:
        return _Iter(self)


class _Iter:
    def __init__(self, sched: Schedule) -> None:
        self.sched = sched
        self.n = 0

    def __iter__(self) -> _Iter:
        return self

    def __next__(self) -> float:
        target = float(self.n)  # the n-th arrival happens when cumulative requests reach n
        start = 0.0
        done = 0.0
        for s in self.sched.segments:
            area = (s.rate_from + s.rate_to) / 2 * s.duration_s
            if done + area > target + 1e-12:
                need = target - done
                slope = (s.rate_to - s.rate_from) / s.duration_s
                if abs(slope) < 1e-12:
                    dt = need / s.rate_from
                else:
                    # need = r0*t + slope*t^2/2  ->  solve for t >= 0
                    disc = s.rate_from**2 + 2 * slope * need
                    dt = (-s.rate_from + math.sqrt(max(disc, 0.0))) / slope
                self.n += 1
                return start + dt
            done += area
            start += s.duration_s
        raise StopIteration
