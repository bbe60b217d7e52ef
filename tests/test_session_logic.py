"""The step-by-step session (the Chaos Toolkit and game-day core) against the in-memory platform
(tests/memory_platform.py): the same fault runner and ledger as a drill, real traffic over a real
socket to the in-process front door, no fleet. The Chaos Toolkit tests run it on real fleets."""

from __future__ import annotations

import json
import time
import warnings
from pathlib import Path

import pytest

from failover_drill.clock import MonotonicClock
from failover_drill.config.scenario import build_scenario
from failover_drill.config.topology import load_topology
from failover_drill.errors import FaultError
from failover_drill.faults.ledger import FaultLedger, ledger_path
from failover_drill.faults.model import parse_fault
from failover_drill.platforms.base import LedgerCharge
from failover_drill.recovery import revert_open_faults
from failover_drill.session import Session

from .memory_platform import MemoryPlatform
from .schema_check import assert_valid_result

TOPOLOGY = Path(__file__).resolve().parents[1] / "clusters" / "topology.yaml"
QUICK = {"traffic.rate_rps": 100, "traffic.timeout_s": 0.5, "traffic.retry.attempts": 1}


class CountingClock(MonotonicClock):
    def __init__(self) -> None:
        self.calls = 0

    def now(self) -> float:
        self.calls += 1
        return super().now()


def session(tmp_path: Path, platform: MemoryPlatform, clock: CountingClock | None = None) -> Session:
    return Session(
        build_scenario(None, overrides=QUICK),
        load_topology(TOPOLOGY),
        state_dir=tmp_path / "state",
        runs_dir=tmp_path / "runs",
        platform=platform,
        clock=clock,
    )


def ledger(tmp_path: Path) -> FaultLedger:
    return FaultLedger(ledger_path(tmp_path / "state"))


def wait_window(s: Session, pred: object, within_s: float = 10.0) -> dict[str, object]:
    deadline = time.monotonic() + within_s
    while True:
        w = s.window(0.5)
        if w["requests"] and pred(w):  # type: ignore[operator]
            return w
        assert time.monotonic() < deadline, w
        time.sleep(0.1)


def test_a_session_injects_through_the_ledger_measures_and_reverts(tmp_path: Path) -> None:
    platform, clock = MemoryPlatform(), CountingClock()
    s = session(tmp_path, platform, clock)
    try:
        run_dir = s.start()
        wait_window(s, lambda w: w["success_ratio"] == 1.0)
        done = s.inject(parse_fault({"kind": "region-loss", "target": "us-east1"}))
        (entry,) = ledger(tmp_path).open_entries()
        assert entry.id == done["entry"] and entry.state == "active" and entry.owner_pid > 0
        wait_window(s, lambda w: w["success_ratio"] == 0.0)  # the front door fails while it is on
        assert s.revert() == ["region-loss us-east1"]
        assert ledger(tmp_path).open_entries() == []
        wait_window(s, lambda w: w["success_ratio"] == 1.0)
    finally:
        result = s.stop()
    assert result is not None and clock.calls > 100  # the session ran on the clock it was given
    assert [v for v, _ in platform.calls if v != "plan"] == ["inject", "revert"]
    assert not platform.is_up()  # it brought the platform up, so it took it down
    assert result["fault"]["kind"] == "region-loss" and result["fault"]["reverted_at_s"] is not None

    # injected inside the planned 2 s warm-up: the warm-up ends there, no phase runs backwards
    assert all(p["start_s"] <= p["end_s"] for p in result["phases"].values()), result["phases"]
    assert result["phases"]["fault"]["start_s"] == result["fault"]["injected_at_s"]
    assert result["traffic"]["failed"] > 0 and result["payments"]["lost"] == 0
    assert_valid_result(result)
    assert json.loads((run_dir / "result.json").read_text())["traffic"] == result["traffic"]


def test_an_inject_that_fails_is_written_to_the_ledger_and_stop_reverts_it(tmp_path: Path) -> None:
    """A session used to leave an inject error out of the ledger (issue 12: the Drill had it)."""
    platform = MemoryPlatform()
    platform.fail_inject = FaultError("the fleet said no")
    s = session(tmp_path, platform)
    try:
        s.start()
        with pytest.raises(FaultError, match="the fleet said no"):
            s.inject(parse_fault({"kind": "zone-loss", "target": "us-east1-a"}))
        (entry,) = ledger(tmp_path).open_entries()
        assert entry.error == "the fleet said no"
    finally:
        s.stop()
    assert ledger(tmp_path).open_entries() == []  # the half-done inject was reverted all the same
    assert [v for v, _ in platform.calls if v != "plan"] == ["inject", "revert"]


def test_a_fault_reverted_by_another_process_still_ends_in_the_journal(tmp_path: Path) -> None:
    """`recover` (or the watchdog) reverted it first: the session's revert finds no open entry,
    and the journal must still close the fault, or its phase would never end."""
    platform = MemoryPlatform()
    s = session(tmp_path, platform)
    try:
        s.start()
        s.inject(parse_fault({"kind": "region-loss", "target": "us-east1"}))
        report = revert_open_faults(tmp_path / "state", platform=platform)
        assert report.reverted == ["region-loss us-east1"]
        assert s.revert() == ["region-loss us-east1"]
    finally:
        result = s.stop()
    assert [v for v, _ in platform.calls if v != "plan"] == ["inject", "revert"]  # reverted once
    assert result is not None and result["fault"]["reverted_at_s"] is not None


class SlowLedgerPlatform(MemoryPlatform):
    """Reading the ledgers takes half a second (as three SQLite ledgers of a busy fleet can),
    while traffic keeps being acknowledged and the journal keeps being flushed (every 0.2 s)."""

    def ledger(self) -> list[LedgerCharge]:
        charges = super().ledger()
        time.sleep(0.5)
        return charges


def test_payments_reconciled_under_traffic_are_never_lost_by_the_read_order(tmp_path: Path) -> None:
    """Issue 15 point 7: the probe read the ledgers, then the journal, so payments acknowledged in
    between looked lost (one run reported 10). Read the other way round, none can be."""
    s = session(tmp_path, SlowLedgerPlatform())
    try:
        s.start()
        wait_window(s, lambda w: w["success_ratio"] == 1.0)
        for _ in range(3):
            r = s.payments_now()
            assert r.acknowledged > 0 and r.lost == 0 and r.duplicated == 0, vars(r)
    finally:
        result = s.stop()
    assert result is not None and result["payments"]["lost"] == 0


def _verdicts_around_a_fault(tmp_path: Path) -> list[str]:
    s = Session(
        build_scenario(None, overrides={**QUICK, "slo.stability_s": 1.0}),
        load_topology(TOPOLOGY),
        state_dir=tmp_path / "state",
        runs_dir=tmp_path / "runs",
        platform=MemoryPlatform(),
    )
    try:
        s.start()
        verdicts = [s.verdict_now()]
        wait_window(s, lambda w: w["success_ratio"] == 1.0)
        s.inject(parse_fault({"kind": "region-loss", "target": "us-east1"}))
        wait_window(s, lambda w: w["success_ratio"] == 0.0)
        verdicts.append(s.verdict_now())
        s.revert()
        verdicts.append(s.verdict_now())  # asked right after the revert
        return verdicts
    finally:
        s.stop()


def test_the_verdict_probe_judges_only_once_there_is_something_to_judge(tmp_path: Path) -> None:
    """Before any fault there is nothing to judge; while the memory front door fails everything,
    the fault phase fails; asked right after the revert, the probe waits until the recovery is
    measurable, so failback passes and only the fault phase's failure stands. A verdict the
    machine made inconclusive (this 2-core machine starved the stopwatch) is run again, at most
    twice, as a drill is (tests/conftest.py run_cli)."""
    for attempt in range(3):
        verdicts = _verdicts_around_a_fault(tmp_path / str(attempt))
        if not any(v.startswith("inconclusive:") for v in verdicts) or attempt == 2:
            break
        warnings.warn(f"verdict rerun {attempt + 1}/2: {verdicts}", stacklevel=1)
    before, during, after = verdicts
    assert before == "passed: no fault injected yet"
    assert during.startswith("failed: the service did not recover while the fault was on"), during
    assert after.startswith("failed: the service did not recover while the fault was on"), after
    assert "failback" not in after and "settle" not in after, after
