"""The drill's own logic against an in-memory platform (tests/memory_platform.py): what it injects and
reverts in which order, what the fault ledger holds when an inject fails, and Ctrl-C. Real traffic
crosses a real socket to the in-process front door; no fleet is started."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from failover_drill.config.scenario import Scenario, build_scenario
from failover_drill.config.topology import load_topology
from failover_drill.drill import Drill
from failover_drill.errors import FaultError, Interrupted
from failover_drill.faults.ledger import FaultLedger, ledger_path
from failover_drill.faults.model import Fault
from failover_drill.measure.live_sli import LiveSli
from failover_drill.report.rundir import write_reports

from .memory_platform import MemoryPlatform
from .schema_check import assert_valid_result

TOPOLOGY = Path(__file__).resolve().parents[1] / "clusters" / "topology.yaml"
QUICK = {
    "phases.warmup_s": 0.0,
    "phases.baseline_s": 0.1,
    "phases.fault_s": 0.3,
    "phases.recovery_s": 0.1,
    "slo.stability_s": 0.1,
    "traffic.rate_rps": 50,
    "traffic.timeout_s": 0.5,
}


def scenario(faults: list[dict[str, object]]) -> Scenario:
    sc = build_scenario(None, overrides=QUICK)
    data = sc.model_dump(mode="json")
    data["faults"] = faults
    return Scenario.model_validate(data)


def run(tmp_path: Path, sc: Scenario, platform: MemoryPlatform, sli: LiveSli | None = None) -> Drill:
    # No plot: drawing it is report code (tests/test_drill.py draws real ones), not the drill's logic.
    return Drill(
        sc,
        load_topology(TOPOLOGY),
        state_dir=tmp_path / "state",
        runs_dir=tmp_path / "runs",
        platform=platform,
        plot=False,
        sli=sli,
    )


def test_a_compound_schedule_injects_and_reverts_in_time_order(tmp_path: Path) -> None:
    platform = MemoryPlatform()
    sc = scenario(
        [
            {"kind": "link-latency", "target": "eu-west1", "delay_ms": 50, "at_s": 0.0, "duration_s": 0.3},
            {"kind": "zone-loss", "target": "us-east1-a", "at_s": 0.1, "duration_s": 0.1},
        ]
    )
    outcome = run(tmp_path, sc, platform).run()
    verbs = [(v, label) for v, label in platform.calls if v != "plan"]
    assert verbs == [
        ("inject", "link-latency *->eu-west1"),
        ("inject", "zone-loss us-east1-a"),
        ("revert", "zone-loss us-east1-a"),
        ("revert", "link-latency *->eu-west1"),
    ]
    # every plan was computed before its inject, and nothing is left open in the ledger
    assert platform.calls.index(("plan", "zone-loss us-east1-a")) < platform.calls.index(
        ("inject", "zone-loss us-east1-a")
    )
    assert FaultLedger(ledger_path(tmp_path / "state")).open_entries() == []
    assert not platform.active and not platform.is_up()  # the drill brought it up, so it took it down
    result = json.loads((outcome.run_dir / "result.json").read_text())
    assert result["traffic"]["failed"] > 0  # the in-process front door failed while a fault was on
    assert_valid_result(result)  # the contract: the JSON Schema shipped in the package


def test_a_drill_without_its_plot_says_how_to_draw_it_and_report_draws_it(tmp_path: Path) -> None:
    """--no-plot (Drill(plot=False)): the tests above skip the plot, which is report code."""
    outcome = run(tmp_path, scenario([{"kind": "region-loss", "target": "us-east1"}]), MemoryPlatform()).run()
    # Issue 20: where the drill's time went, in result.json and in the journal it is rebuilt from
    timing = outcome.result["timing"]
    assert timing["up_s"] is not None and timing["down_s"] is not None  # the drill brought the fleet up
    assert timing["measured_s"] >= sum(QUICK[f"phases.{p}_s"] for p in ("warmup", "baseline", "fault", "recovery"))
    parts = timing["up_s"] + timing["steady_check_s"] + timing["reports_s"] + timing["down_s"]
    assert abs(timing["overhead_s"] - parts) < 0.002
    html = (outcome.run_dir / "report.html").read_text()
    assert "data:image/png" not in html and f"failover-drill report runs/{outcome.run_dir.name}" in html
    assert write_reports(outcome.run_dir) == outcome.result  # the same figures, now with the plot
    assert "data:image/png;base64," in (outcome.run_dir / "report.html").read_text()


def test_an_inject_that_fails_is_written_to_the_ledger_and_still_reverted(tmp_path: Path) -> None:
    platform = MemoryPlatform()
    platform.fail_inject = FaultError("the fleet said no")
    with pytest.raises(FaultError, match="the fleet said no"):
        run(tmp_path, scenario([{"kind": "region-loss", "target": "us-east1"}]), platform).run()
    entries = json.loads(ledger_path(tmp_path / "state").read_text())
    assert len(entries) == 1
    (entry,) = entries
    assert entry["error"] == "the fleet said no"  # the ledger says why, for `recover` and for people
    assert entry["state"] == "reverted"  # a half-done inject is reverted all the same
    assert [v for v, _ in platform.calls] == ["plan", "inject", "revert"]


def test_ctrl_c_during_the_fault_reverts_it_and_says_interrupted(tmp_path: Path) -> None:
    platform = MemoryPlatform()

    def interrupt(_: Fault) -> None:
        os.kill(os.getpid(), signal.SIGINT)

    platform.on_inject = interrupt
    sc = scenario([{"kind": "region-loss", "target": "us-east1"}])
    with pytest.raises(Interrupted, match="faults reverted"):
        run(tmp_path, sc, platform).run()
    assert [v for v, _ in platform.calls] == ["plan", "inject", "revert"]
    assert not platform.active
    assert FaultLedger(ledger_path(tmp_path / "state")).open_entries() == []
    (run_dir,) = (tmp_path / "runs").glob("2*")
    result = json.loads((run_dir / "result.json").read_text())
    assert result["complete"] is False  # partial results are written, and say they are partial
    assert_valid_result(result)  # a partial result keeps the contract too


def test_the_live_line_names_the_fault_phase_as_soon_as_the_fault_is_injected(tmp_path: Path) -> None:
    """Issue 15 point 15: the live phase line lagged the injection by a ticker period (~0.2 s)."""
    seen: list[tuple[float, str, str]] = []
    drill = Drill(
        scenario([{"kind": "zone-loss", "target": "us-east1-a"}]),
        load_topology(TOPOLOGY),
        state_dir=tmp_path / "state",
        runs_dir=tmp_path / "runs",
        platform=MemoryPlatform(),
        plot=False,
        progress=lambda view: seen.append((time.monotonic(), view.phase, view.message)),
    )
    drill.run()
    said = next(i for i, (_, _, msg) in enumerate(seen) if msg.startswith("injected"))
    t_said = seen[said][0]
    t_fault = next(t for t, phase, _ in seen[said:] if phase == "fault")
    assert t_fault - t_said < 0.05, seen[said : said + 3]


def test_a_late_sli_endpoint_listens_where_the_platform_says_the_controllers_reach(tmp_path: Path) -> None:
    """--sli-port without --sli-host on kind: the drill serves its SLIs once the fleet is up, on
    the address the platform names (kind's: the host on the kind network; here 127.0.0.2, a
    loopback address that is not 127.0.0.1), on the port asked for; a real HTTP client reads them."""
    import socket
    import urllib.request

    platform = MemoryPlatform()
    platform.controllers_reach = "127.0.0.2"
    with socket.socket() as s:
        s.bind(("127.0.0.2", 0))
        port = s.getsockname()[1]
    seen: dict[str, object] = {}

    def look(_: Fault) -> None:
        with urllib.request.urlopen(f"http://127.0.0.2:{port}/metrics", timeout=5) as resp:
            seen["status"], seen["body"] = resp.status, resp.read().decode()

    platform.on_inject = look
    sc = scenario([{"kind": "region-loss", "target": "us-east1"}])
    drill = run(tmp_path, sc, platform, sli=LiveSli(slo=sc.slo.ratio))
    drill.sli_port = port
    drill.run()
    assert drill.sli_url == f"http://127.0.0.2:{port}"
    assert seen["status"] == 200 and "failover_drill_success_ratio" in str(seen["body"]), seen
