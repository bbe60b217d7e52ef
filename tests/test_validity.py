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
from failover_drill.report.records import CpuRecord
from failover_drill.report.result import Replay
from failover_drill.traffic.samples import Sample
from tests.conftest import REGION_LOSS_DRILL, ROOT, Fleet, _fleet


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
    "end = time.monotonic() + 30\n"
    "while time.monotonic() < end:\n"
    "    pass\n"
)
DRILL_NICE = 19


def _lowly_on(pid: int, cpu: int) -> None:
    """One CPU, and the lowest priority any user may give, for the drill's process and for its
    session's autogroup: with autogroup scheduling (on by default) CPU is shared between sessions
    first, so the process's own nice would count only against itself. Set as soon as it starts;
    its children inherit all three."""
    os.sched_setaffinity(pid, {cpu})
    os.setpriority(os.PRIO_PROCESS, pid, DRILL_NICE)
    with contextlib.suppress(FileNotFoundError):  # a kernel without autogroup: the nice alone counts
        Path(f"/proc/{pid}/autogroup").write_text(f"{DRILL_NICE}\n")


@contextlib.contextmanager
def busy_loops(cpus: list[int], per_cpu: int = 2) -> Iterator[None]:
    """Busy loops at ordinary priority, per_cpu on each CPU, each in a session of its own."""
    hogs = [
        subprocess.Popen([sys.executable, "-c", HOG, str(c)], cwd=ROOT, start_new_session=True)
        for c in cpus
        for _ in range(per_cpu)
    ]
    try:
        yield
    finally:
        for h in hogs:
            h.kill()
            h.wait()


def starved_drill(args: list[str], state: Path, runs: Path) -> tuple[int, str]:
    """Runs the drill at the lowest priority, pinned to one CPU, and once its baseline phase
    starts, puts two busy loops at ordinary priority on every CPU until its fault phase is over
    (30 s at most: starved, the drill gets there late). The drill's share of its CPU is then about
    15/(2*1024+15) of a core, under 1%, while its generator needs about 9% to keep its schedule, so
    it falls behind whatever the scheduler's favour for processes waking from sleep. Loops at the
    drill's own priority do not do it: a light generator waking on time got its 9% beside six of
    them, and a drill passed in clean-clone CI.
    Returns the exit code and everything the drill printed."""
    cpus = sorted(os.sched_getaffinity(0))
    cmd = [sys.executable, "-m", "failover_drill.cli", *args, "--runs-dir", str(runs)]
    env = {**os.environ, "FAILOVER_DRILL_STATE": str(state)}
    printed: list[str] = []
    with subprocess.Popen(
        cmd, cwd=ROOT, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        start_new_session=True,
    ) as drill:  # fmt: skip
        assert drill.stdout is not None
        _lowly_on(drill.pid, cpus[0])
        lines = iter(drill.stdout)  # progress lines arrive as they happen (stderr, flushed)
        try:
            for line in lines:
                printed.append(line)
                if "phase baseline" in line:
                    break
            with busy_loops(cpus):
                for line in lines:
                    printed.append(line)
                    if "phase recovery" in line:
                        break
            printed.extend(lines)
            rc = drill.wait(timeout=300)
        finally:
            if drill.poll() is None:
                drill.terminate()  # the drill reverts its fault on SIGTERM
                drill.wait(timeout=60)
    return rc, "".join(printed)


@pytest.fixture
def own_fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    """A fleet for this test alone: the region it restarts inherits the drill's CPU pin and nice,
    which must not slow the tests that share the session's fleet."""
    yield from _fleet(tmp_path_factory, "istio")


@pytest.mark.slow
def test_a_drill_beside_cpu_hogs_is_inconclusive_not_the_meshs_failure(own_fleet: Fleet, tmp_path: Path) -> None:
    """The region-loss drill that passes on a quiet machine (test_drill.py::
    test_region_loss_fails_over_and_back runs the same arguments), here starved of CPU from its
    baseline to the end of its fault phase (starved_drill says how): its generator falls behind,
    and it must say inconclusive with exit 4, never pass or fail the mesh."""
    rc, printed = starved_drill(REGION_LOSS_DRILL, own_fleet.state, tmp_path / "runs")
    r = json.loads((tmp_path / "runs" / "latest" / "result.json").read_text())
    assert rc == 4, printed
    assert r["verdict"]["inconclusive"] and not r["verdict"]["passed"]
    assert not r["measurement"]["valid"]
    assert "INCONCLUSIVE" in printed and "load generator fell behind" in printed
    busy = [p["cpu_busy_pct"] for p in r["measurement"]["phases"].values() if p["cpu_busy_pct"] is not None]
    assert busy and max(busy) > 90  # the CPU figures say why


def test_a_starved_drills_long_cpu_sample_speaks_for_every_phase_it_spans(tmp_path: Path) -> None:
    """A starved drill samples the CPU late: its one record may span the baseline, the fault and
    part of the recovery. It must count for each phase by the time it spans there (it was once
    filed under the phase it ended in, and a starved fault phase came out with no figures)."""
    lines = (ROOT / "tests" / "data" / "run-region-loss" / "journal.jsonl").read_text().splitlines()
    kept = [line for line in lines if '"t":"cpu"' not in line]
    journal = tmp_path / "journal.jsonl"
    journal.write_text("\n".join(kept) + "\n")
    phases = {p.name: p for p in Replay(journal).timeline.phases}
    recovery = phases["recovery"]
    starved = CpuRecord(recovery.start + 1.0, 99.0, 0.0, 2.0, span_s=recovery.start + 1.0 - phases["baseline"].start)
    quiet = CpuRecord(recovery.start + 2.0, 20.0, 0.0, 9.0, span_s=1.0)
    journal.write_text("\n".join([*kept, json.dumps(starved.to_json()), json.dumps(quiet.to_json())]) + "\n")
    cpu = Replay(journal).cpu_by_phase()
    assert cpu["baseline"]["busy_pct"] == 99.0 and cpu["fault"]["busy_pct"] == 99.0
    assert cpu["fault"]["own_pct"] == 2.0
    assert cpu["recovery"]["busy_pct"] == round((99.0 * 1.0 + 20.0 * 1.0) / 2.0, 1)
    legacy = CpuRecord.from_json({"t": "cpu", "at": 3.0, "busy": 50.0, "steal": 0.0, "own": 9.0})
    assert legacy.span_s == 1.0  # journals from before the span was recorded
