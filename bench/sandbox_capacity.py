"""The sandbox's own clean capacity: front door -> gateway -> replica with payments recorded,
stepped up until it stops being clean (every request ok, p99 < 100 ms, send lag p99 < 10 ms).
Above that rate a drill measures the laptop, not the mesh. The figure is saved where drills read
it (<state>/capacity.json) so they can warn. Prints JSON."""

from __future__ import annotations

import asyncio
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

from failover_drill.clock import MonotonicClock
from failover_drill.config.scenario import RetryPolicy
from failover_drill.config.topology import load_topology
from failover_drill.drill import event_loop_factory
from failover_drill.platforms.sandbox.platform import SandboxPlatform
from failover_drill.traffic.client import PaymentClient
from failover_drill.traffic.generator import OpenLoopGenerator
from failover_drill.traffic.samples import Sample
from failover_drill.traffic.schedule import Schedule

STEP_S = 5.0
RATES = [100, 200, 300, 400, 500, 600, 700, 800, 1000, 1200]


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q / 100 * len(xs)))] if xs else float("nan")


async def step(url: str, rate: float) -> dict[str, Any]:
    samples: list[Sample] = []
    client = PaymentClient(url, "us-east1", 2.0, RetryPolicy())
    clock = MonotonicClock()
    gen = OpenLoopGenerator(
        client, Schedule.constant(rate, STEP_S), clock, samples.append, key_prefix=f"cap{rate}-{time.time()}"
    )
    await gen.run(clock.now() + 0.2)
    await client.aclose()
    return {
        "rate": rate,
        "ok": sum(s.ok for s in samples),
        "sent": len(samples),
        "p99_ms": round(pct([s.lat_ms for s in samples], 99), 1),
        "lag_p99_ms": round(pct([s.lag_ms for s in samples], 99), 2),
    }


def main() -> None:
    state = Path(os.environ.get("FAILOVER_DRILL_STATE", ".failover-drill")).resolve()
    bench_state = state / "bench"
    p = SandboxPlatform(bench_state / "sandbox", load_topology())
    p.up()
    steps = []
    best = 0
    try:
        for rate in RATES:
            with asyncio.Runner(loop_factory=event_loop_factory()) as r:
                res = r.run(step(p.entrypoint(), rate))
            res["clean"] = res["ok"] == res["sent"] and res["p99_ms"] < 100 and res["lag_p99_ms"] < 10
            steps.append(res)
            if not res["clean"]:
                break
            best = rate
    finally:
        p.down()
    out = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cpus",
        "python": sys.version.split()[0],
        "max_clean_rate_rps": best,
        "steps": steps,
    }
    state.mkdir(parents=True, exist_ok=True)
    (state / "capacity.json").write_text(json.dumps(out, indent=2))
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
