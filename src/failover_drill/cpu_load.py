"""How busy the machine and this process were (psutil's system CPU times, os.times()): the
figures that explain a load generator falling behind (another tenant's CPU, the host's steal,
or its own)."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

import psutil


@dataclass(frozen=True)
class CpuTimes:
    busy: float  # seconds not idle, waiting on I/O or stolen, all cores
    steal: float  # seconds the hypervisor gave to someone else
    total: float
    own_s: float  # this process's user + system seconds, every thread
    wall: float


@dataclass(frozen=True)
class CpuShare:
    busy_pct: float  # of all cores
    steal_pct: float
    own_pct: float  # of one core
    span_s: float  # the wall time between the two readings


def read() -> CpuTimes | None:
    try:
        ct = psutil.cpu_times()
    except (OSError, psutil.Error):
        return None
    idle = ct.idle + getattr(ct, "iowait", 0.0)
    steal = getattr(ct, "steal", 0.0)
    # user, nice, system, idle, iowait, irq, softirq, steal: guest time is already in user/nice.
    total = sum(getattr(ct, f, 0.0) for f in ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal"))
    t = os.times()
    return CpuTimes(busy=total - idle - steal, steal=steal, total=total, own_s=t.user + t.system, wall=time.monotonic())


def share(before: CpuTimes, after: CpuTimes) -> CpuShare | None:
    total = after.total - before.total
    wall = after.wall - before.wall
    if total <= 0 or wall <= 0:
        return None
    return CpuShare(
        busy_pct=round(100.0 * (after.busy - before.busy) / total, 1),
        steal_pct=round(100.0 * (after.steal - before.steal) / total, 1),
        own_pct=round(100.0 * (after.own_s - before.own_s) / wall, 1),
        span_s=round(wall, 3),
    )
