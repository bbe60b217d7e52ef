"""How busy the machine and this process were, from /proc/stat and os.times(): the figures that
explain a load generator falling behind (another tenant's CPU, the host's steal, or its own)."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class CpuTimes:
    busy: int  # jiffies not idle or waiting on I/O, all cores
    steal: int  # jiffies the hypervisor gave to someone else
    total: int
    own_s: float  # this process's user + system seconds, every thread
    wall: float


@dataclass(frozen=True)
class CpuShare:
    busy_pct: float  # of all cores
    steal_pct: float
    own_pct: float  # of one core


def read() -> CpuTimes | None:
    try:
        with open("/proc/stat", encoding="ascii") as fh:
            fields = fh.readline().split()[1:]
    except OSError:
        return None
    values = [int(v) for v in fields]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    steal = values[7] if len(values) > 7 else 0
    total = sum(values[:8])
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
    )
