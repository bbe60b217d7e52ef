"""The stopwatch checks itself: a load generator that fell behind makes a drill inconclusive."""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from failover_drill.measure.timeline import Phase, Timeline
from failover_drill.measure.validity import MAX_LATE_SHARE, judge_measurement
from failover_drill.traffic.samples import Sample
from tests.conftest import REGION_LOSS_DRILL, ROOT, Fleet, run_cli


def timeline(lag_ms: float, late_every: int) -> Timeline:
    tl = Timeline()
    tl.set_phases([Phase("baseline", 0, 5), Phase("fault", 5, 10), Phase("recovery", 10, 15)])
    for i in range(1500):
        lag = lag_ms if late_every and i % late_every == 0 else 0.4
        tl.add(Sample(i, i / 100, 3.0 + lag, lag, 200, "ok", "us-east1", "us-east1-a"))
    tl.seal_all()
    return tl


def test_a_punctual_generator_is_valid() -> None:
    v = judge_measurement(timeline(30.0, 100), {})  # 1% late: a busy moment, not a starved stopwatch
    assert v.valid and v.reasons == []
    assert v.phases["fault"]["late"] == 5 and v.phases["fault"]["p50_ms"] < 1


def test_a_late_generator_makes_the_drill_inconclusive_and_says_why() -> None:
    cpu = {"fault": {"busy_pct": 99.0, "steal_pct": 4.0, "own_pct": 35.0}}
    v = judge_measurement(timeline(40.0, 5), cpu)  # 20% of requests 40 ms late
    assert not v.valid
    assert MAX_LATE_SHARE < 0.2 and len(v.reasons) == 3  # every phase named
    fault = next(r for r in v.reasons if "fault phase" in r)
    assert "20.0% of requests left more than 10 ms late" in fault
    assert "99% busy" in fault and "4% stolen" in fault and "not the mesh" in fault


def test_a_long_lag_tail_alone_is_enough() -> None:
    v = judge_measurement(timeline(400.0, 40), {})  # 2.5% late, but 400 ms behind
    assert not v.valid and re.search(r"send-lag p99 (39\d|40\d)(\.\d+)? ms", v.reasons[0]), v.reasons


HOG = (
    "import os, sys, time\n"
    "os.sched_setaffinity(0, {int(sys.argv[1])})\n"
    "end = time.monotonic() + 150\n"
    "while time.monotonic() < end:\n"
    "    pass\n"
)


@contextlib.contextmanager
def starved_cpu(hogs_on_drill_cpu: int = 6, hogs_elsewhere: int = 2) -> Iterator[None]:
    """Busy loops on every CPU, most of them on the CPU this process (and so the drill it starts)
    is pinned to. Each loop runs in its own session: with the kernel's autogroup scheduling (on
    here) loops sharing the drill's session would split one group's share among themselves and
    starve nothing, which is how four unpinned loops once let a drill pass at 500 req/s."""
    cpus = sorted(os.sched_getaffinity(0))
    mine = cpus[0]
    targets = [mine] * hogs_on_drill_cpu + [c for c in cpus[1:] for _ in range(hogs_elsewhere)]
    hogs = [subprocess.Popen([sys.executable, "-c", HOG, str(c)], cwd=ROOT, start_new_session=True) for c in targets]
    os.sched_setaffinity(0, {mine})
    try:
        yield
    finally:
        os.sched_setaffinity(0, cpus)
        for h in hogs:
            h.kill()
            h.wait()


@pytest.mark.slow
def test_a_drill_beside_cpu_hogs_is_inconclusive_not_the_meshs_failure(fleet: Fleet, tmp_path: Path) -> None:
    """The region-loss drill that passes on a quiet machine (test_drill.py::
    test_region_loss_fails_over_and_back runs the same arguments), here pinned to one CPU beside
    six busy loops, with two on every other CPU: the drill's process waits behind six others for
    each slice of its CPU, its generator falls behind, and it must say inconclusive with exit 4,
    never pass or fail the mesh."""
    with starved_cpu():
        out = run_cli(
            *REGION_LOSS_DRILL,
            state=fleet.state,
            runs=tmp_path / "runs",
            reruns_if_inconclusive=0,
            timeout=300,
        )
    r = json.loads((tmp_path / "runs" / "latest" / "result.json").read_text())
    assert out.returncode == 4, out.stdout + out.stderr
    assert r["verdict"]["inconclusive"] and not r["verdict"]["passed"]
    assert not r["measurement"]["valid"]
    assert "INCONCLUSIVE" in out.stdout and "load generator fell behind" in out.stdout
    busy = [p["cpu_busy_pct"] for p in r["measurement"]["phases"].values() if p["cpu_busy_pct"] is not None]
    assert busy and max(busy) > 90  # the CPU figures say why
