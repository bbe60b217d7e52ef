"""The open-loop generator: every request has a send time fixed before the run starts. A request
that cannot be sent on time is still sent and its lateness recorded; one that finds no capacity is
counted as dropped, never silently delayed. Latency runs from the scheduled send time."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from failover_drill.clock import Clock
from failover_drill.traffic.client import PaymentClient
from failover_drill.traffic.samples import DROPPED, Sample
from failover_drill.traffic.schedule import Schedule

LATE_MS = 10.0


@dataclass
class GeneratorStats:
    scheduled: int = 0
    sent: int = 0
    completed: int = 0
    dropped: int = 0
    late: int = 0
    # Sent before their time: uvloop's timers have whole-millisecond resolution, so a wake-up can
    # come up to ~1 ms early (about four in ten at 2,000 req/s here).
    early: int = 0
    max_lag_ms: float = 0.0

    def add(self, worker: Mapping[str, Any]) -> None:
        """Fold in one worker's stats (as it reported them: vars() of its GeneratorStats)."""
        for f in ("scheduled", "sent", "completed", "dropped", "late", "early"):
            setattr(self, f, getattr(self, f) + int(worker.get(f, 0)))
        self.max_lag_ms = max(self.max_lag_ms, float(worker.get("max_lag_ms", 0.0)))


def latency_ms(sched_at: float, sent_at: float, done_at: float) -> float:
    """From whichever came first: the scheduled send time, so a late send counts against the
    request (no coordinated omission), or the actual send when it went early, or the figure would
    be shorter than the request's own round trip (even negative)."""
    return (done_at - min(sched_at, sent_at)) * 1000.0


class OpenLoopGenerator:
    def __init__(
        self,
        client: PaymentClient,
        schedule: Schedule,
        clock: Clock,
        sink: Callable[[Sample], None],
        key_prefix: str,
        max_in_flight: int = 4000,
        seq_stride: int = 1,
        seq_offset: int = 0,
    ) -> None:
        self.client = client
        self.schedule = schedule
        self.clock = clock
        self.sink = sink
        self.key_prefix = key_prefix
        self.max_in_flight = max_in_flight
        # Worker k of n sends arrivals k, k+n, k+2n, ...: global sequence numbers stay unique.
        self.seq_stride = seq_stride
        self.seq_offset = seq_offset
        self.stats = GeneratorStats()
        self._in_flight: set[asyncio.Task[None]] = set()
        self._stop = asyncio.Event()

    def stop(self) -> None:
        self._stop.set()

    async def run(self, origin: float, offset_s: float = 0.0) -> GeneratorStats:
        """Send from `origin + offset_s` (monotonic) on; sample times are relative to `origin`.
        Callers settle the collector first (gc_quiet.settle), before the origin: it takes a while."""
        for i, t in enumerate(self.schedule):
            seq = i * self.seq_stride + self.seq_offset
            if self._stop.is_set():
                break
            sched = offset_s + t
            delay = origin + sched - self.clock.now()
            if delay > 0:
                # A plain sleep: wait_for(event) would cost a task and a timer per request.
                await asyncio.sleep(delay)
                if self._stop.is_set():
                    break
            self.stats.scheduled += 1
            if len(self._in_flight) >= self.max_in_flight:
                self.stats.dropped += 1
                self.sink(Sample(seq, sched, 0.0, 0.0, 0, DROPPED, key=f"{self.key_prefix}-{seq}"))
                continue
            task = asyncio.create_task(self._one(seq, sched, origin))
            self._in_flight.add(task)
            task.add_done_callback(self._in_flight.discard)
        if self._in_flight:
            await asyncio.gather(*list(self._in_flight), return_exceptions=True)
        return self.stats

    async def _one(self, seq: int, sched: float, origin: float) -> None:
        sent = self.clock.now()
        lag_ms = (sent - origin - sched) * 1000.0
        self.stats.sent += 1
        if lag_ms > LATE_MS:
            self.stats.late += 1
        elif lag_ms < 0:
            self.stats.early += 1
        self.stats.max_lag_ms = max(self.stats.max_lag_ms, lag_ms)
        key = f"{self.key_prefix}-{seq}"
        res = await self.client.pay(key, 1000 + seq % 9000)
        done = self.clock.now()
        a = res.last
        self.stats.completed += 1
        self.sink(
            Sample(
                seq=seq,
                sched=sched,
                lat_ms=latency_ms(origin + sched, sent, done),
                lag_ms=lag_ms,
                status=a.status,
                err=a.err,
                region=a.region,
                zone=a.zone,
                attempts=res.attempts,
                raw_failures=res.raw_failures,
                acked=a.acked,
                key=key,
                version=a.version,
            )
        )
