"""Traffic from several processes when one core is not enough: the rate is split (worker k of n
sends arrivals k, k+n, ...), every worker times against the same monotonic origin, and samples
come back to the drill in batches through a pipe."""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing as mp
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

from failover_drill.clock import MonotonicClock
from failover_drill.config.scenario import TrafficSpec
from failover_drill.traffic import gc_quiet
from failover_drill.traffic.client import PaymentClient
from failover_drill.traffic.generator import GeneratorStats, OpenLoopGenerator
from failover_drill.traffic.samples import Sample, SampleRow
from failover_drill.traffic.schedule import Schedule

BATCH_S = 0.1


def _child(
    conn: Connection,
    url: str,
    region: str,
    spec_json: dict[str, Any],
    total_s: float,
    n: int,
    k: int,
    key_prefix: str,
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None,
) -> None:
    spec = TrafficSpec.model_validate(spec_json)

    async def main() -> None:
        batch: list[SampleRow] = []
        client = PaymentClient.for_traffic(url, region, spec)
        rate = spec.rate_rps / n
        gen = OpenLoopGenerator(
            client,
            Schedule.constant(rate, total_s),
            MonotonicClock(),
            lambda s: batch.append(s.to_row()),
            key_prefix=key_prefix,
            max_in_flight=max(1, spec.max_in_flight // n),
            seq_stride=n,
            seq_offset=k,
        )
        gc_quiet.settle()
        conn.send(("ready", k))
        _, origin = conn.recv()
        run = asyncio.create_task(gen.run(origin, offset_s=k / spec.rate_rps))

        async def pump() -> None:
            while True:
                await asyncio.sleep(BATCH_S)
                if batch:
                    conn.send(("samples", batch[:]))
                    batch.clear()
                if conn.poll():
                    msg = conn.recv()
                    if msg == "stop":
                        gen.stop()

        pumping = asyncio.create_task(pump())
        stats = await run
        pumping.cancel()
        await client.aclose()
        if batch:
            conn.send(("samples", batch[:]))
        conn.send(("done", vars(stats)))

    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(main())


class WorkerPool:
    def __init__(
        self,
        n: int,
        url: str,
        region: str,
        spec: TrafficSpec,
        total_s: float,
        key_prefix: str,
        loop_factory: Callable[[], asyncio.AbstractEventLoop] | None,
    ) -> None:
        ctx = mp.get_context("spawn")
        self.n = n
        self.conns: list[Connection] = []
        self.procs: list[Any] = []
        for k in range(n):
            parent, child = ctx.Pipe()
            p = ctx.Process(
                target=_child,
                args=(child, url, region, spec.model_dump(mode="json"), total_s, n, k, key_prefix, loop_factory),
                daemon=True,
            )
            p.start()
            self.conns.append(parent)
            self.procs.append(p)
        self.stats = GeneratorStats()

    def wait_ready(self, timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        for c in self.conns:
            if not c.poll(max(0.0, deadline - time.monotonic())):
                raise TimeoutError("traffic workers did not start")
            c.recv()

    def go(self, origin: float) -> None:
        for c in self.conns:
            c.send(("go", origin))

    def stop(self) -> None:
        for c in self.conns:
            with contextlib.suppress(OSError, ValueError):
                c.send("stop")

    async def collect(self, sink: Callable[[Sample], None]) -> GeneratorStats:
        """Feed every worker's samples to sink until all are done. One reader thread per worker
        does the blocking receives, so a busy event loop never leaves a worker stuck on a full pipe."""
        loop = asyncio.get_running_loop()
        finished: list[asyncio.Future[None]] = [loop.create_future() for _ in self.conns]

        def deliver(batch: list[SampleRow]) -> None:
            for row in batch:
                sink(Sample(*row))

        def account(payload: dict[str, Any], k: int) -> None:
            self.stats.add(payload)
            if not finished[k].done():
                finished[k].set_result(None)

        def gone(k: int) -> None:
            if not finished[k].done():
                finished[k].set_result(None)

        def reader(k: int) -> None:
            c = self.conns[k]
            try:
                while True:
                    kind, payload = c.recv()
                    if kind == "samples":
                        loop.call_soon_threadsafe(deliver, payload)
                    elif kind == "done":
                        loop.call_soon_threadsafe(account, payload, k)
                        return
            except (EOFError, OSError):
                loop.call_soon_threadsafe(gone, k)

        threads = [
            threading.Thread(target=reader, args=(k,), daemon=True, name=f"traffic-worker-{k}") for k in range(self.n)
        ]
        for t in threads:
            t.start()
        await asyncio.gather(*finished)
        return self.stats

    def close(self) -> None:
        for p in self.procs:
            p.join(timeout=5)
            if p.is_alive():
                p.kill()
                p.join()
