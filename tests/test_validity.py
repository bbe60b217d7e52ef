"""The stopwatch checks itself: a load generator that fell behind makes a drill inconclusive."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from failover_drill.measure.timeline import Phase, Timeline
from failover_drill.measure.validity import MAX_LATE_SHARE, judge_measurement
from failover_drill.traffic.samples import Sample
from tests.conftest import FAST, ROOT, Fleet, run_cli


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


HOG = "import time\nend = time.monotonic() + 120\nwhile time.monotonic() < end:\n    pass\n"


@pytest.mark.slow
def test_a_drill_beside_cpu_hogs_is_inconclusive_not_the_meshs_failure(fleet: Fleet, tmp_path: Path) -> None:
    """Four busy loops on this 2-core machine starve the drill's generator (seen: 69% of requests
    late at 500 req/s); it must say inconclusive with exit 4, never pass or fail the mesh."""
    hogs = [subprocess.Popen([sys.executable, "-c", HOG], cwd=ROOT) for _ in range(4)]
    try:
        out = run_cli(
            "drill",
            "--fault",
            "zone-loss",
            "--rate",
            "500",
            *FAST,
            state=fleet.state,
            runs=tmp_path / "runs",
            reruns_if_inconclusive=0,
        )
    finally:
        for h in hogs:
            h.kill()
            h.wait()
    r = json.loads((tmp_path / "runs" / "latest" / "result.json").read_text())
    assert out.returncode == 4, out.stdout + out.stderr
    assert r["verdict"]["inconclusive"] and not r["verdict"]["passed"]
    assert not r["measurement"]["valid"]
    assert "INCONCLUSIVE" in out.stdout and "load generator fell behind" in out.stdout
    busy = [p["cpu_busy_pct"] for p in r["measurement"]["phases"].values() if p["cpu_busy_pct"] is not None]
    assert busy and max(busy) > 90  # the CPU figures say why
