"""The kwok platform end to end: real Kubernetes control planes (built from source by the
toolchain), kwok nodes, real replicas on their pods' IPs, gateways fed by the real EndpointSlices.

Needs go (the binaries are built on first use, then cached outside the repo) and root (the pods'
network namespace); skipped with the reason elsewhere. A build that fails is a failure, not a skip.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import psutil
import pytest
import yaml

from failover_drill.faults.ledger import FaultLedger, ledger_path
from failover_drill.platforms.kwok.netns import can_create
from tests.conftest import ROOT, inconclusive_verdict, processes_under, run_cli

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(3600),  # a cold build of the control plane takes tens of minutes
    pytest.mark.skipif(shutil.which("go") is None, reason="needs the go command to build Kubernetes from source"),
    pytest.mark.skipif(can_create() is not None, reason=f"the pods' network namespace: {can_create()}"),
]


def kwok_topology(tmp_path: Path, grace_s: float, mesh: str = "cilium") -> Path:
    data = yaml.safe_load((ROOT / "clusters" / "topology.yaml").read_text())
    data["mesh"] = mesh
    data["manifests"] = str(ROOT / "clusters" / "manifests" / "payment-gateway")
    # Short, as a test needs: a node lease renewed every second, the node monitor checking every second.
    data["kwok"] = {"node_monitor_grace_period_s": grace_s, "node_monitor_period_s": 1, "node_lease_duration_s": 4}
    path = tmp_path / f"kwok-{grace_s:g}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def kwok_drill(topo: Path, state: Path, runs: Path, *args: str, timeout: float = 300) -> tuple[dict[str, Any], str]:
    """A drill on kwok that must end passed or failed with a stopwatch it can trust: its result
    and what it printed."""
    out = run_cli(
        "drill", "--platform", "kwok", "--topology", str(topo), *args, state=state, runs=runs, timeout=timeout
    )
    assert out.returncode in (0, 1), out.stdout + out.stderr
    result: dict[str, Any] = json.loads((runs / "latest" / "result.json").read_text())
    assert result["platform"] == "kwok" and result["measurement"]["valid"], result["measurement"]
    return result, out.stdout


def control_plane_revert_start(run_dir: Path) -> float:
    """When the drill began restarting the region's API server: the journal's revert event is the
    midpoint of the revert, with its spread."""
    for line in (run_dir / "journal.jsonl").read_text().splitlines():
        rec = json.loads(line)
        if rec.get("kind") == "fault_reverted" and rec["fault"]["kind"] == "control-plane-loss":
            return float(rec["at"]) - float(rec["took_ms"]) / 2000
    raise AssertionError(f"no control-plane-loss revert in {run_dir}/journal.jsonl")


def zone_loss_drill(tmp_path: Path, grace_s: float) -> dict[str, Any]:
    state = tmp_path / f"state-{grace_s:g}"
    result, _ = kwok_drill(
        kwok_topology(tmp_path, grace_s), state, tmp_path / f"runs-{grace_s:g}", "--fault", "zone-loss",
        "--set", "phases.warmup_s=1", "--set", "phases.baseline_s=4", "--set", "phases.fault_s=30",
        "--set", "phases.recovery_s=12", "--set", "limits.rto_s=60",
        timeout=600,
    )  # fmt: skip
    # The drill brought the fleet up, so it took it down: nothing left running, no namespace.
    assert processes_under(state) == []
    assert "fd-" not in subprocess.run(["ip", "netns", "list"], check=False, capture_output=True, text=True).stdout
    return result


def test_zone_loss_ttr_follows_the_node_monitor_grace_period(tmp_path: Path) -> None:
    """Readiness-driven failover (the cilium profile: no outlier detection) on Kubernetes' own
    timing: the lost zone's node stops heartbeating, the real node lifecycle controller marks it
    NotReady after node-monitor-grace-period and its pods not ready, the EndpointSlice controller
    drops them, the gateway follows. Two grace periods 8 s apart give TTRs about 8 s apart."""
    short = zone_loss_drill(tmp_path, 6.0)
    long = zone_loss_drill(tmp_path, 14.0)
    for r, grace in ((short, 6.0), (long, 14.0)):
        fo = r["failover"]
        assert fo["recovered"], fo
        # Kubernetes saw it at about the grace period (lastTransitionTime has whole seconds) ...
        assert fo["node_not_ready_s"] is not None and grace - 1.5 <= fo["node_not_ready_s"] <= grace + 4, fo
        # ... then the endpoints left the mesh, and users recovered after that.
        assert fo["endpoints_removed_s"] is not None and fo["endpoints_removed_s"] >= fo["node_not_ready_s"] - 1
        assert fo["ttr_s"] >= fo["endpoints_removed_s"] - 1.5, fo
        events = {e["kind"] for e in r["platform_events"]}
        assert {"node_not_ready", "not_ready"} <= events
        assert r["payments"]["lost"] == 0
    diff = long["failover"]["ttr_s"] - short["failover"]["ttr_s"]
    assert 8.0 - 3.0 <= diff <= 8.0 + 3.0, (short["failover"], long["failover"])


# Short phases for the faults that are not a loss of pods (no grace period to wait out).
SHORT_PHASES = [
    "--set", "phases.warmup_s=1", "--set", "phases.baseline_s=3", "--set", "phases.recovery_s=8",
    "--set", "slo.stability_s=2", "--no-plot",
]  # fmt: skip


def test_partition_brownout_cert_expiry_and_control_plane_loss_on_kwok(tmp_path: Path) -> None:
    """The faults that are not a loss of pods, on one kwok fleet (Istio as shipped), each drilled
    the way tests/test_faults.py drills it on the sandbox, with the same signatures: a partition
    times out and fails over, a brownout fails only what retries cannot hide, an expired leaf is
    refused by TLS and fails over, and with the region's real kube-apiserver stopped nobody marks a
    lost zone's node NotReady. After each, the fault ledger is empty and `recover` has nothing to do."""
    state = tmp_path / "state"
    topo = kwok_topology(tmp_path, 6.0, mesh="istio")
    up = run_cli("up", "--platform", "kwok", "--topology", str(topo), state=state, timeout=600)
    assert up.returncode == 0, up.stdout + up.stderr
    try:

        def nothing_left() -> None:
            assert FaultLedger(ledger_path(state)).open_entries() == []
            again = run_cli("recover", state=state, timeout=120)
            assert again.returncode == 0 and again.stdout.strip() == "nothing to recover", again.stdout

        r, out = kwok_drill(
            topo, state, tmp_path / "runs-p", "--fault", "partition", "--set", "phases.fault_s=10", *SHORT_PHASES
        )
        errors = r["traffic"]["errors"]
        assert errors.get("timeout", 0) > 0.9 * sum(errors.values()), errors  # dropped, not refused
        assert r["failover"]["recovered"] and r["served_by"]["fault"].get("eu-west1", 0) > 0.5, out
        assert any(e["kind"] == "health_check_eject" and e["region"] == "us-east1" for e in r["platform_events"])
        nothing_left()

        r, out = kwok_drill(
            topo, state, tmp_path / "runs-b", "--fault", "brownout", "--target", "us-east1", "--fail-pct", "20",
            "--set", "phases.fault_s=4", *SHORT_PHASES,
        )  # fmt: skip
        failed, total = r["traffic"]["failed"], r["traffic"]["requests"]
        # Istio's default retries (503 is retriable) hide most of it: 20% per try -> ~0.8% after 3
        assert 0 < failed < 0.05 * total and r["traffic"]["errors"] == {"http_503": failed}, (failed, total, out)
        nothing_left()

        r, out = kwok_drill(
            topo, state, tmp_path / "runs-c", "--fault", "cert-expiry", "--set", "faults.0.cert=leaf",
            "--set", "phases.fault_s=8", *SHORT_PHASES,
        )  # fmt: skip
        assert r["traffic"]["errors"].get("tls", 0) > 0, (r["traffic"]["errors"], out)
        assert r["failover"]["recovered"] and r["served_by"]["fault"].get("eu-west1", 0) > 0.3, out
        assert r["fault"]["details"][0]["expired_at_s"] < r["fault"]["injected_at_s"]
        nothing_left()

        scenario = tmp_path / "cp-loss.yaml"
        scenario.write_text(
            "name: cp-loss-then-zone-loss\nregion: us-east1\n"
            "faults:\n"
            "  - {kind: control-plane-loss, target: us-east1}\n"
            "  - {kind: zone-loss, target: us-east1-a, at_s: 1}\n"
            "phases: {fault_s: 14}\n"
        )
        r, out = kwok_drill(topo, state, tmp_path / "runs-cp", "--scenario", str(scenario), *SHORT_PHASES)
        # The node lifecycle controller works through the region's API server: stopped, nothing
        # marks the lost zone's node NotReady, though 14 s is more than twice the 6 s grace period.
        # The bound is the moment the API server starts coming back, not the end of the fault phase:
        # both faults end together and the zone is still lost while the control plane returns, and
        # then the controller rightly marks the node NotReady.
        cp_back = control_plane_revert_start(tmp_path / "runs-cp" / "latest")
        assert cp_back < r["phases"]["recovery"]["start_s"]
        assert not any(
            e["kind"] in ("node_not_ready", "not_ready") and e["region"] == "us-east1" and e["at"] < cp_back
            for e in r["platform_events"]
        ), (cp_back, r["platform_events"])
        assert r["fault"]["kind"] == "control-plane-loss+zone-loss"
        assert r["payments"]["lost"] == 0, r["payments"]
        nothing_left()
    finally:
        down = run_cli("down", "--platform", "kwok", state=state, timeout=300)
    assert down.returncode == 0, down.stdout + down.stderr
    assert processes_under(state) == []
    assert "fd-" not in subprocess.run(["ip", "netns", "list"], check=False, capture_output=True, text=True).stdout


def test_kwok_up_refuses_without_what_it_needs(tmp_path: Path) -> None:
    """A port already taken by another program: one clear message, exit 3, nothing left running."""
    import socket

    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    port = busy.getsockname()[1]
    data = yaml.safe_load(kwok_topology(tmp_path, 6.0).read_text())
    data["sandbox"] = {"base_port": port, "envoy_concurrency": 1}
    topo = tmp_path / "busy.yaml"
    topo.write_text(yaml.safe_dump(data))
    state = tmp_path / "state-busy"
    try:
        out = run_cli("up", "--platform", "kwok", "--topology", str(topo), state=state, timeout=300)
    finally:
        busy.close()
    assert out.returncode == 3, out.stdout + out.stderr
    assert "Traceback" not in out.stderr and str(port) in out.stderr
    assert processes_under(state) == []
    assert "fd-" not in subprocess.run(["ip", "netns", "list"], check=False, capture_output=True, text=True).stdout


def test_kwok_up_refuses_a_pod_network_another_fleet_holds(tmp_path: Path) -> None:
    """Another kwok fleet's pod range already routed on this host: one clear message, exit 3,
    nothing started, and the other fleet's namespace untouched."""
    from failover_drill.platforms.kwok.netns import PodNetwork

    other = PodNetwork(tmp_path / "other-fleet")
    other.create()
    try:
        state = tmp_path / "state-second"
        out = run_cli("up", "--platform", "kwok", "--topology", str(kwok_topology(tmp_path, 6.0)), state=state)
        assert out.returncode == 3, out.stdout + out.stderr
        assert "10.240.0.0/12 is already routed" in out.stderr and "Traceback" not in out.stderr
        assert processes_under(state) == []
        assert other.exists()  # the other fleet's namespace is left alone
    finally:
        other.delete()
    assert not other.exists()


def _stopped_marked(state: Path) -> list[str]:
    """Processes of fleets under `state` that are stopped (SIGSTOP): what a freeze leaves."""
    out = []
    for p in psutil.process_iter():
        with contextlib.suppress(psutil.Error):
            mine = p.environ().get("FAILOVER_DRILL_FLEET", "").startswith(str(state))
            if mine and p.status() == psutil.STATUS_STOPPED:
                out.append(f"{p.pid} {p.environ().get('FAILOVER_DRILL_PROCESS', p.name())}")
    return out


def test_recover_resumes_a_frozen_zone_when_drill_watchdog_and_ledger_are_all_gone(tmp_path: Path) -> None:
    """A freeze zone-loss on kwok, then the drill and its watchdog SIGKILLed and the fault ledger
    torn: nothing records the fault, yet the zone's kwok, kubelet agent and pods stay stopped.
    `recover` must find them on the live fleet and resume them (reality over records)."""
    state = tmp_path / "state"
    topo = str(kwok_topology(tmp_path, 6.0))
    env = {**os.environ, "FAILOVER_DRILL_STATE": str(state)}
    up = run_cli("up", "--platform", "kwok", "--topology", topo, state=state, timeout=600)
    assert up.returncode == 0, up.stdout + up.stderr
    drill = subprocess.Popen(
        [sys.executable, "-m", "failover_drill.cli", "drill", "--platform", "kwok", "--topology", topo,
         "--runs-dir", str(tmp_path / "runs"), "--fault", "zone-loss", "--mode", "freeze",
         "--set", "phases.warmup_s=1", "--set", "phases.baseline_s=2", "--set", "phases.fault_s=120"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        ledger = FaultLedger(ledger_path(state))
        deadline = time.monotonic() + 120
        while not any(e.state == "active" for e in ledger.open_entries()):
            assert drill.poll() is None, drill.communicate()[1]
            assert time.monotonic() < deadline, "fault never became active"
            time.sleep(0.2)
        for line in processes_under(state):
            if "failover_drill.watchdog" in line:
                os.kill(int(line.split(":")[0]), signal.SIGKILL)
        drill.kill()
        drill.wait()
        frozen = _stopped_marked(state)
        assert frozen, "the freeze stopped nothing"
        ledger_path(state).write_text('[{"id": "torn')  # the ledger torn mid-write
        out = run_cli("recover", state=state, timeout=120)
        assert out.returncode == 0, out.stdout + out.stderr
        assert "resumed" in out.stdout, out.stdout
        assert _stopped_marked(state) == [], out.stdout
        _leave_faults_unrecorded(state / "kwok")
        out = run_cli("recover", state=state, timeout=180)
        assert out.returncode == 0, out.stdout + out.stderr
        for repaired in (
            "started us-east1's kube-scheduler again",
            "restarted kubelet-eu-west1-c",
            "cleared fault switches fail_pct=50",
            "gateway-us-east1: re-issued its leaf certificate",
            "runtime override(s) to the config's baseline",
        ):
            assert repaired in out.stdout, out.stdout
        again = run_cli("recover", state=state, timeout=120)
        assert again.returncode == 0 and again.stdout.strip() == "nothing to recover", again.stdout + again.stderr
    finally:
        if drill.poll() is None:
            drill.kill()
            drill.wait()
        down = run_cli("down", "--platform", "kwok", state=state, timeout=300)
    assert down.returncode == 0, down.stdout + down.stderr
    assert processes_under(state) == []


def test_a_chaos_toolkit_experiment_runs_on_kwok_with_one_setting(tmp_path: Path) -> None:
    """FAILOVER_DRILL_PLATFORM=kwok is the one change that moves an experiment from the sandbox to
    real control planes: the chaos CLI brings the kwok fleet up, loses a region, reverts it, finds
    the steady state again, and takes the fleet down (nothing left running, no namespace)."""
    # A run whose verdict the machine made inconclusive (the region's data plane restarting beside
    # the generator on 2 cores; the verdict says so and the run deviates) is run once more.
    for attempt in range(2):
        state = tmp_path / f"state-{attempt}"
        env = {
            **os.environ,
            "FAILOVER_DRILL_PLATFORM": "kwok",
            "FAILOVER_DRILL_STATE": str(state),
            "FAILOVER_DRILL_RUNS": str(tmp_path / "runs"),
        }
        chaos = Path(sys.executable).with_name("chaos")
        journal = tmp_path / f"journal-{attempt}.json"
        out = subprocess.run(
            [str(chaos), "--no-log-file", "run", "--journal-path", str(journal),
             str(ROOT / "experiments" / "region-loss.json")],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600, check=False,
        )  # fmt: skip
        j = json.loads(journal.read_text()) if journal.exists() else {}
        verdict = inconclusive_verdict(j)
        if attempt == 0 and verdict is not None:
            warnings.warn(f"kwok experiment rerun 1/1: {verdict[:300]}", stacklevel=1)
            continue
        break
    # Whatever the verdict, nothing is left behind by either attempt.
    assert FaultLedger(ledger_path(state)).open_entries() == []
    assert processes_under(tmp_path) == []
    assert "fd-" not in subprocess.run(["ip", "netns", "list"], check=False, capture_output=True, text=True).stdout
    if verdict is not None:
        # Twice the drill said the machine starved its stopwatch (the region's control plane and
        # data plane restarting on the same 2 cores): the tool's right answer, not a pass or a fail.
        pytest.skip(f"this machine starved the kwok experiment's stopwatch twice: {verdict[:300]}")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert j["status"] == "completed" and j["deviated"] is False, json.dumps(j["run"], default=str)[:2000]
    summary = j["failover_drill"]
    assert summary["platform"] == "kwok" and summary["payments"]["lost"] == 0, summary
    assert summary["failover"]["recovered"], summary["failover"]


def _leave_faults_unrecorded(home: Path) -> None:
    """Faults straight through the platform, with no ledger entry, as a crashed drill leaves them:
    a region's scheduler and a zone's kubelet agent killed (what a region or zone loss kills), a
    brownout on a zone's replicas, a lapsed gateway certificate, a link delay in Envoy's runtime."""
    from failover_drill.faults.model import parse_fault
    from failover_drill.platforms.kwok.control_plane import ControlPlane
    from failover_drill.platforms.kwok.platform import KwokPlatform

    platform = KwokPlatform(home)
    for fields in (
        {"kind": "brownout", "target": "us-east1-b", "fail_pct": 50},
        {"kind": "cert-expiry", "target": "us-east1", "cert": "leaf"},
        {"kind": "link-latency", "target": "eu-west1", "delay_ms": 200},
    ):
        fault = parse_fault(fields)
        platform.inject(fault, platform.plan_fault(fault))
    data = platform._load()
    assert data is not None
    scheduler = ControlPlane.load(platform.cp_spec("us-east1", data)).process("kube-scheduler")
    os.kill(scheduler.pid, signal.SIGKILL)
    kubelet = next(p for p in data["processes"] if p["name"] == "kubelet-eu-west1-c")
    os.kill(kubelet["pid"], signal.SIGKILL)
    deadline = time.monotonic() + 10
    while any(psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
              for pid in (scheduler.pid, kubelet["pid"])):  # fmt: skip
        assert time.monotonic() < deadline, "the killed processes did not exit"
        time.sleep(0.05)
