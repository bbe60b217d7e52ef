"""How many requests a second this machine serves cleanly through the sandbox, estimated in a
fraction of a second at `up` when `make bench` has not measured it.

The estimate is the CPU one payment costs end to end (client, front door, gateway, replica and
its ledger write), measured over a short closed-loop burst, against the cores there are: an open
loop keeps its schedule while the fleet and the generator leave the CPUs some room
(bench/sandbox_capacity.py measures the real figure; README's benchmark table has both). Drills
warn near it; without it a drill beyond the machine would blame the mesh for the laptop.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import aiohttp
import psutil

REQUESTS = 300
WARMUP = 40  # connections opening, caches warming: not what a steady drill pays per request
CONCURRENCY = 8
# The share of the CPUs a fleet and its generator can use before the generator falls behind its
# schedule (send lag past 10 ms): calibrated against bench/sandbox_capacity.py on this project's
# 2-vCPU machine (README), and kept on the low side: an estimate that warns early costs a
# sentence, one that warns late costs a wrong answer.
USABLE_CPU_SHARE = 0.5
ESTIMATE_FILE = "capacity-estimate.json"
BENCH_FILE = "capacity.json"


@dataclass(frozen=True)
class CapacityEstimate:
    clean_rps: int
    cpu_ms_per_request: float
    cores: int
    requests: int
    processes: int
    measured_at: str
    seconds: float


@dataclass
class _Outcome:
    ok: int = 0
    cpu_s: float = 0.0
    wall_s: float = 0.0
    error: BaseException | None = None


def _cpu_s(procs: list[psutil.Process]) -> float:
    total = 0.0
    for p in procs:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.Error:
            continue
    return total


async def _burst(url: str, region: str, n: int, prefix: str) -> int:
    """n payments, CONCURRENCY at a time, through plain aiohttp (what the generator's transport
    sends, the platforms layer being below traffic/): how many were answered 2xx."""
    ok = 0
    next_i = 0
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http:

        async def one_lane() -> None:
            nonlocal ok, next_i
            while next_i < n:
                i = next_i
                next_i += 1
                headers = {"idempotency-key": f"{prefix}-{i}", "x-client-region": region}
                async with http.post(url + "/v1/payments", data=b'{"amount_cents": 100}', headers=headers) as r:
                    await r.read()
                    ok += 200 <= r.status < 300

        await asyncio.gather(*(one_lane() for _ in range(CONCURRENCY)))
    return ok


def measure(url: str, region: str, pids: list[int]) -> CapacityEstimate:
    """A closed-loop burst through the front door; the CPU of the fleet's processes and of this
    one over its steady part, per request. Runs its event loop in a thread of its own, so it can be
    called from code that is inside one."""
    me = psutil.Process()
    procs = [me]
    for pid in pids:
        try:
            procs.append(psutil.Process(pid))
        except psutil.Error:
            continue
    out = _Outcome()
    prefix = f"capacity-probe-{int(time.time())}"

    def run() -> None:
        try:
            asyncio.run(_burst(url, region, WARMUP, prefix + "-w"))
            cpu0, t0 = _cpu_s(procs), time.monotonic()
            out.ok = asyncio.run(_burst(url, region, REQUESTS, prefix))
            out.cpu_s, out.wall_s = _cpu_s(procs) - cpu0, time.monotonic() - t0
        except BaseException as e:  # handed to the caller's thread
            out.error = e

    th = threading.Thread(target=run, name="capacity-probe", daemon=True)
    th.start()
    th.join(60)
    if out.error is not None:
        raise out.error
    if th.is_alive() or out.ok != REQUESTS:
        raise RuntimeError(f"the capacity probe's burst did not complete ({out.ok}/{REQUESTS} answered)")
    # The rate follows from the figure the file keeps (rounded), so the file agrees with itself: from
    # the unrounded one, a rounding of 0.0005 ms moved the rate by more than one request a second.
    cpu_ms = round(out.cpu_s / REQUESTS * 1000, 3)
    cores = os.cpu_count() or 1
    return CapacityEstimate(
        clean_rps=int(cores * USABLE_CPU_SHARE / (cpu_ms / 1000)) if cpu_ms > 0 else 0,
        cpu_ms_per_request=cpu_ms,
        cores=cores,
        requests=REQUESTS,
        processes=len(procs) - 1,
        measured_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        seconds=round(out.wall_s, 2),
    )


def save(home: Path, est: CapacityEstimate) -> None:
    home.mkdir(parents=True, exist_ok=True)
    tmp = home / f".{ESTIMATE_FILE}.{os.getpid()}"
    tmp.write_text(json.dumps(asdict(est), indent=2))
    os.replace(tmp, home / ESTIMATE_FILE)


def known(home: Path) -> tuple[int, str] | None:
    """(clean req/s, where the figure comes from): `make bench`'s measurement first, else the
    estimate taken at an earlier `up`; None when neither is there (or readable)."""
    for name, source in ((BENCH_FILE, "measured by `make bench`"), (ESTIMATE_FILE, "estimated at `up`")):
        try:
            data = json.loads((home / name).read_text())
            rps = int(data["max_clean_rate_rps"] if name == BENCH_FILE else data["clean_rps"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if rps > 0:
            return rps, source
    return None
