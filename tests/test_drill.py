"""End-to-end drills against real sandbox fleets: real Envoy, real replicas, real faults."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from failover_drill.faults.ledger import FaultLedger
from failover_drill.recovery import ledger_path
from tests.conftest import FAST, REGION_LOSS_DRILL, ROOT, Fleet, processes_under, run_cli
from tests.schema_check import assert_valid_result

pytestmark = pytest.mark.slow
CONTRACT = {
    "scenario": None,
    "platform": None,
    "mesh": None,
    "fault": {"kind", "target", "injected_at_s", "reverted_at_s"},
    "traffic": {"requests", "ok", "failed", "rate_rps"},
    "failover": {"ttd_s", "ttr_s", "shift_s", "failback_s", "recovered"},
    "error_budget": {"slo", "bad_requests", "budget_consumed_pct", "peak_burn_rate"},
    "latency_ms": {"baseline", "fault", "recovery"},
    "served_by": {"baseline", "fault", "recovery"},
    "payments": {"acknowledged", "lost", "duplicated"},
    "verdict": {"passed", "reasons"},
}


def latest(runs: Path) -> dict[str, Any]:
    return json.loads((runs / "latest" / "result.json").read_text())


def all_running(fleet: Fleet) -> bool:
    return all(c["state"] == "running" for c in fleet.platform.status().components)


def test_region_loss_fails_over_and_back(fleet: Fleet, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    out = run_cli(*REGION_LOSS_DRILL, state=fleet.state, runs=runs)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "failover time:" in out.stdout
    r = latest(runs)
    for key, sub in CONTRACT.items():
        assert key in r
        if sub:
            assert sub <= set(r[key]), key
    assert_valid_result(r)  # a real drill's result.json against the JSON Schema shipped in the package
    assert r["fault"]["kind"] == "region-loss" and r["fault"]["target"] == "us-east1"
    # The fleet was up before the drill (the shared fixture's), so it neither brought it up nor down.
    timing = r["timing"]
    assert timing["up_s"] is None and timing["down_s"] is None and timing["measured_s"] >= 1 + 2 + 10 + 10
    assert "wall time: measured" in out.stdout
    assert r["served_by"]["baseline"] == {"us-east1": 1.0}
    assert r["served_by"]["fault"].get("us-east1", 0) == 0 and sum(r["served_by"]["fault"].values()) > 0.99
    fo = r["failover"]
    # Back home once the restarted region passes the front door's health checks again.
    assert fo["return_s"] is not None and fo["return_s"] < 8
    # From its return on, home serves >= 90% (the definition): the recovery phase's share agrees.
    # (Not "the majority": a return 5-8 s into a 10 s phase is within bounds on a busy machine.)
    home = r["served_by"]["recovery"].get("us-east1", 0)
    assert home >= 0.9 * 0.95 * (10 - fo["return_s"]) / 10, (home, fo["return_s"])
    # A killed gateway refuses connections at once: users see it immediately, and the front door's
    # health checks (2 s x 2 in the BackendConfig) move traffic within about 2-6 s.
    assert fo["ttd_s"] is not None and fo["ttd_s"] < 0.1
    assert fo["recovered"] and 1.0 < fo["ttr_s"] < 8.0
    # The mesh's first sign is the first failed probe; the front door ejects after the second
    # (2 s apart), and clients recover then: detection precedes TTR by at most one threshold.
    assert fo["mesh_detected_s"] is not None
    assert -0.5 < fo["ttr_s"] - fo["mesh_detected_s"] <= 2 * 2.0 + 0.5
    # Refused connections, plus the odd in-flight response cut when the gateway died.
    errors = r["traffic"]["errors"]
    assert errors.get("upstream_connect", 0) > 0.9 * sum(errors.values())
    assert set(errors) <= {"upstream_connect", "no_healthy_upstream", "reset"}
    assert r["payments"]["reconciled"] and r["payments"]["lost"] == 0 and r["payments"]["duplicated"] == 0
    # Reconciliation covers every payment the drill made, warm-up included: it is all real money.
    samples = [json.loads(x) for x in (runs / "latest" / "journal.jsonl").read_text().splitlines() if '"t":"s"' in x]
    assert r["payments"]["acknowledged"] == sum(1 for x in samples if x["ack"]) > r["traffic"]["ok"]
    # Failover to eu-west1 adds its RTT (90 ms in the topology) to every request.
    assert r["latency_ms"]["fault"]["p50"] > 85 and r["latency_ms"]["baseline"]["p50"] < 40
    html = (runs / "latest" / "report.html").read_text()
    assert "data:image/png;base64," in html and "Verdict: PASSED" in html
    assert "Failover time (TTR)" in (runs / "latest" / "report.md").read_text()
    assert all_running(fleet)  # revert restarted every process of the region
    assert FaultLedger(ledger_path(fleet.state)).open_entries() == []

    # report rebuilds the same numbers from the journal alone
    run_dir = (runs / "latest").resolve()
    (run_dir / "result.json").unlink()
    rebuilt = run_cli("report", str(run_dir), state=fleet.state)
    assert rebuilt.returncode == 0, rebuilt.stderr
    again = json.loads((run_dir / "result.json").read_text())
    assert again["failover"] == r["failover"] and again["traffic"] == r["traffic"]
    assert_valid_result(again)

    # a corrupt and a truncated line are skipped with a warning naming them
    journal = run_dir / "journal.jsonl"
    lines = journal.read_text().splitlines()
    lines.insert(5, "{not json")
    journal.write_text("\n".join(lines) + '\n{"t":"s","q":99999,"s":1.0')
    rebuilt = run_cli("report", str(run_dir), state=fleet.state, env={"FAILOVER_DRILL_LOG": "warning"})
    assert rebuilt.returncode == 0, rebuilt.stderr
    # (logs are JSON lines when stderr is not a terminal)
    warned = [json.loads(x)["line"] for x in rebuilt.stderr.splitlines() if "journal line skipped" in x]
    assert warned == [6, len(lines) + 1], rebuilt.stderr
    assert json.loads((run_dir / "result.json").read_text())["journal"]["skipped_lines"] == [6, len(lines) + 1]


def test_zone_loss_under_istio_defaults_shows_the_ejection_trap(fleet: Fleet, tmp_path: Path) -> None:
    """Istio as shipped: outlier detection's 10% cap never ejects, retries stay in the dead zone's
    priority, so every request routed to the zone fails until readiness (5 s x 3) removes it."""
    runs = tmp_path / "runs"
    out = run_cli(
        "drill",
        "--region",
        "eu-west1",
        "--fault",
        "zone-loss",
        *FAST,
        "--set",
        "phases.fault_s=10",
        state=fleet.state,
        runs=runs,
    )
    r = latest(runs)
    assert out.returncode == 1, out.stdout + out.stderr
    assert r["fault"]["target"] == "eu-west1-a"
    assert not r["failover"]["recovered"] and r["failover"]["ttr_s"] is None
    assert r["traffic"]["failed"] > 0.8 * r["traffic"]["rate_rps"] * 10 * 0.8
    assert not any(e["kind"] == "outlier_eject" for e in r["platform_events"])
    assert "did not recover" in " ".join(r["verdict"]["reasons"])
    assert all_running(fleet)


def test_zone_loss_under_tuned_istio_fails_over_within_a_second(tuned_fleet: Fleet, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    out = run_cli(
        "drill",
        "--region",
        "eu-west1",
        "--fault",
        "zone-loss",
        *FAST,
        "--set",
        "phases.fault_s=8",
        "--mesh",
        "istio-tuned",
        state=tuned_fleet.state,
        runs=runs,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    r = latest(runs)
    assert r["mesh"] == "istio-tuned"
    assert r["failover"]["recovered"] and r["failover"]["ttr_s"] < 1.0
    assert r["traffic"]["failed"] < 0.01 * r["traffic"]["requests"]
    zones = r["served_by_zone"]
    # (a per-try timeout on a slow baseline request may retry into zone b: that is the tuned policy)
    assert zones["baseline"]["eu-west1-a"] > 0.98
    assert zones["fault"].get("eu-west1-a", 0) == 0
    # the mesh ejected the dead hosts itself (outlier detection), and retries hid most failures
    assert any(e["kind"] == "outlier_eject" for e in r["platform_events"])


def _start_drill(fleet: Fleet, runs: Path, *extra: str) -> subprocess.Popen[str]:
    cmd = [sys.executable, "-m", "failover_drill.cli", "drill", "--runs-dir", str(runs), *FAST, *extra]
    env = {**os.environ, "FAILOVER_DRILL_STATE": str(fleet.state)}
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_active(fleet: Fleet, proc: subprocess.Popen[str], timeout: float = 60) -> None:
    ledger = FaultLedger(ledger_path(fleet.state))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(e.state == "active" for e in ledger.open_entries()):
            return
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.1)
    raise AssertionError("fault never became active")


def _wait(cond: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.1)
    return False


def _watchdogs(state: Path) -> list[int]:
    return [int(p.split(":")[0]) for p in processes_under(state) if "failover_drill.watchdog" in p]


def test_sigkilled_drill_is_reverted_by_the_watchdog(fleet: Fleet, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    proc = _start_drill(fleet, runs, "--fault", "region-loss", "--mode", "freeze", "--set", "phases.fault_s=30")
    _wait_active(fleet, proc)
    frozen = [c["name"] for c in fleet.platform.status().components if c["state"] == "frozen"]
    assert "gateway-us-east1" in frozen
    proc.kill()
    proc.wait()
    assert _wait(lambda: all_running(fleet), 10), fleet.platform.status().components
    # The watchdog thaws what it finds frozen first (reality before records), then closes the
    # ledger entry: the entry may still be open for a moment after the processes run again.
    ledger = FaultLedger(ledger_path(fleet.state))
    assert _wait(lambda: ledger.open_entries() == [], 10), ledger.open_entries()
    assert _wait(lambda: _watchdogs(fleet.state) == [], 5)
    # the killed drill's journal still makes a report
    run_dir = next(p for p in runs.iterdir() if p.is_dir())
    out = run_cli("report", str(run_dir), state=fleet.state)
    assert out.returncode == 0, out.stderr
    r = json.loads((run_dir / "result.json").read_text())
    assert not r["complete"] and r["fault"]["kind"] == "region-loss" and r["traffic"]["requests"] > 0
    assert "did not finish" in " ".join(r["verdict"]["reasons"])


def test_recover_after_drill_and_watchdog_both_died(fleet: Fleet, tmp_path: Path) -> None:
    proc = _start_drill(fleet, tmp_path / "runs", "--fault", "region-loss", "--set", "phases.fault_s=30")
    _wait_active(fleet, proc)
    for pid in _watchdogs(fleet.state):
        os.kill(pid, signal.SIGKILL)
    proc.kill()
    proc.wait()
    time.sleep(0.5)
    assert not all_running(fleet)  # nobody reverted the killed region
    out = run_cli("recover", state=fleet.state)
    assert out.returncode == 0, out.stderr
    assert "reverted: region-loss us-east1" in out.stdout
    assert _wait(lambda: all_running(fleet), 10)
    again = run_cli("recover", state=fleet.state)
    assert again.returncode == 0 and "nothing to recover" in again.stdout


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_reverts_then_exits_130(fleet: Fleet, tmp_path: Path, sig: signal.Signals) -> None:
    fleet.platform.wait_steady("us-east1")
    proc = _start_drill(
        fleet, tmp_path / "runs", "--fault", "zone-loss", "--region", "us-east1", "--set", "phases.fault_s=30"
    )
    _wait_active(fleet, proc)
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 130, stderr
    assert "interrupted" in stderr
    assert all_running(fleet)
    assert FaultLedger(ledger_path(fleet.state)).open_entries() == []
    journal = next((tmp_path / "runs").glob("*/journal.jsonl")).read_text()
    assert '"kind":"fault_reverted"' in journal


def test_a_second_drill_on_a_fleet_in_use_is_refused_naming_the_owner(fleet: Fleet, tmp_path: Path) -> None:
    """Two drills on one state dir: the second used to inject into the first's fleet and both passed."""
    first = _start_drill(fleet, tmp_path / "runs1", "--fault", "zone-loss", "--set", "phases.fault_s=8")
    _wait_active(fleet, first)
    second = run_cli("drill", "--fault", "region-loss", *FAST, state=fleet.state, runs=tmp_path / "runs2")
    assert second.returncode == 3, second.stdout + second.stderr
    assert f"in use by drill zone-loss-us-east1 (pid {first.pid}" in second.stderr
    assert not (tmp_path / "runs2").exists()  # refused before anything ran
    down = run_cli("down", state=fleet.state)
    assert down.returncode == 3 and "cannot take it down" in down.stderr, down.stderr
    out, err = first.communicate(timeout=120)
    r = latest(tmp_path / "runs1")
    # The first drill ran undisturbed to its own verdict (Istio as shipped does not recover from a
    # zone loss within the phase: exit 1 is that verdict, not the second drill's doing). Exit 4 is
    # this machine starving its stopwatch, which the drill must then have said; what this test is
    # about (the second drill left the fleet alone) is checked below either way.
    assert first.returncode in (0, 1) or (first.returncode == 4 and r["verdict"]["inconclusive"]), out + err
    # ... and its fleet stayed up under it: payments reconciled, none lost (it used to end with
    # "could not reconcile payments: the sandbox is not up").
    assert r["complete"] and r["payments"]["reconciled"] and r["payments"]["lost"] == 0
    # once the first is done, the fleet is free again
    assert run_cli("recover", state=fleet.state).returncode == 0
