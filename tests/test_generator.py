"""The open-loop generator's own arithmetic and bookkeeping, on the event loop the drill uses, against
a real payment-gateway replica process."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from failover_drill.clock import MonotonicClock
from failover_drill.config.scenario import RetryPolicy
from failover_drill.drill import event_loop_factory
from failover_drill.traffic.client import PaymentClient
from failover_drill.traffic.generator import GeneratorStats, OpenLoopGenerator, latency_ms
from failover_drill.traffic.samples import Sample
from failover_drill.traffic.schedule import Schedule
from tests.conftest import lone_replica


def test_latency_runs_from_the_schedule_unless_the_request_went_early() -> None:
    # Late by 3 ms: those 3 ms are the user's (no coordinated omission).
    assert latency_ms(10.0, 10.003, 10.004) == pytest.approx(4.0)
    # Early by 0.5 ms, answered 0.7 ms after it went: 0.7 ms, not 0.2.
    assert latency_ms(10.0, 9.9995, 10.0002) == pytest.approx(0.7)
    # A fast answer to an early send is never a negative latency.
    assert latency_ms(10.0, 9.999, 9.9995) == pytest.approx(0.5)


def test_every_request_is_sent_once_and_its_lateness_or_earliness_counted(tmp_path: Path) -> None:
    samples: list[Sample] = []

    async def go(url: str) -> GeneratorStats:
        client = PaymentClient(url, "us-east1", timeout_s=2.0, retry=RetryPolicy())
        clock = MonotonicClock()
        gen = OpenLoopGenerator(client, Schedule.constant(400, 1.0), clock, samples.append, key_prefix="g")
        try:
            return await gen.run(clock.now() + 0.1)
        finally:
            await client.aclose()

    with (
        lone_replica(tmp_path, "us-east1", "us-east1-a") as url,
        asyncio.Runner(loop_factory=event_loop_factory()) as r,
    ):
        stats = r.run(go(url))

    assert stats.scheduled == stats.sent == stats.completed == len(samples) == 400
    assert sorted(s.seq for s in samples) == list(range(400))
    assert all(s.ok for s in samples), {s.err for s in samples}
    assert stats.early == sum(1 for s in samples if s.lag_ms < 0)
    assert stats.late == sum(1 for s in samples if s.lag_ms > 10)
    assert stats.max_lag_ms == pytest.approx(max(s.lag_ms for s in samples), abs=1e-9)
    # Never shorter than the time the request was out, nor than its own lateness.
    assert all(s.lat_ms >= max(s.lag_ms, 0.0) for s in samples)
