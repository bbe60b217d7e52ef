"""Recovery that trusts reality over records (issue 16, point 3): with the fault ledger torn or
lost, `recover` still finds what faults left on the live fleet (stopped or dead processes, Envoy
runtime overrides, replica fault switches, lapsed certificates) and repairs it."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from cryptography import x509

from failover_drill.faults.ledger import FaultLedger
from failover_drill.faults.model import parse_fault
from failover_drill.platforms import processes as procs
from failover_drill.platforms.envoy import admin
from failover_drill.platforms.envoy.leftovers import runtime_leftovers
from failover_drill.recovery import ledger_path
from tests.conftest import FAST, ROOT, Fleet, assert_healthy, processes_under, run_cli

pytestmark = pytest.mark.slow


def _states(fleet: Fleet) -> dict[str, str]:
    return {c["name"]: c["state"] for c in fleet.platform.status().components}


def _runtime(port: int) -> dict[str, object]:
    return json.loads(admin.request(f"http://127.0.0.1:{port}/runtime")[1])  # type: ignore[no-any-return]


def test_recover_resumes_frozen_replicas_when_the_ledger_is_torn(fleet: Fleet, tmp_path: Path) -> None:
    """The issue's case: a freeze fault active, the drill and its watchdog SIGKILLed, the ledger
    torn; `recover` used to say "nothing to recover" while the replicas stayed frozen."""
    fleet.platform.wait_steady("us-east1")
    cmd = [sys.executable, "-m", "failover_drill.cli", "drill", "--runs-dir", str(tmp_path / "runs"), *FAST]
    cmd += ["--fault", "zone-loss", "--target", "us-east1-a", "--mode", "freeze", "--set", "phases.fault_s=30"]
    env = {**os.environ, "FAILOVER_DRILL_STATE": str(fleet.state)}
    drill = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ledger = ledger_path(fleet.state)
    deadline = time.monotonic() + 60
    while not any(e.state == "active" for e in FaultLedger(ledger).open_entries()):
        assert drill.poll() is None and time.monotonic() < deadline, drill.communicate()
        time.sleep(0.1)
    for line in processes_under(fleet.state):
        if "failover_drill.watchdog" in line:
            os.kill(int(line.split(":")[0]), signal.SIGKILL)
    drill.kill()
    drill.wait()
    ledger.write_text('[{"id": "5f0c1e", "platform": "sandb')  # torn mid-write
    frozen = sorted(n for n, s in _states(fleet).items() if s == "frozen")
    assert frozen == ["payment-gateway-us-east1-a-0", "payment-gateway-us-east1-a-1"]

    out = run_cli("recover", state=fleet.state)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "nothing to recover" not in out.stdout
    assert "the fault ledger was torn: set aside" in out.stdout
    for name in frozen:
        assert f"repaired: resumed {name}" in out.stdout, out.stdout
    assert all(s == "running" for s in _states(fleet).values())
    again = run_cli("recover", state=fleet.state)
    assert again.returncode == 0 and again.stdout.strip() == "nothing to recover", again.stdout + again.stderr
    fleet.platform.wait_steady("us-east1")


def test_recover_repairs_every_kind_of_leftover_without_any_ledger(fleet: Fleet) -> None:
    """Faults injected straight through the platform and never written down: a killed region, a
    jittered link delay, a black-holed front door, a brownout, an expired intermediate, and a stray
    process of the fleet that its state does not name."""
    platform = fleet.platform
    platform.wait_steady("us-east1")
    layout = platform.layout()
    for fault in (
        parse_fault({"kind": "region-loss", "target": "asia-southeast1"}),
        parse_fault({"kind": "link-latency", "target": "us-east1", "delay_ms": 200, "jitter_pct": 20}),
        parse_fault({"kind": "blackout"}),
        parse_fault({"kind": "brownout", "target": "eu-west1-b", "fail_pct": 40}),
        parse_fault({"kind": "cert-expiry", "target": "eu-west1", "cert": "intermediate"}),
    ):
        platform.inject(fault, platform.plan_fault(fault))
    stray = procs.ProcSpec(
        name="stray", kind="replica", argv=[sys.executable, "-c", "import time; time.sleep(300)"], log=os.devnull
    )
    procs.spawn(stray, fleet=platform.state_dir)
    ledger_path(fleet.state).unlink(missing_ok=True)
    assert runtime_leftovers(_runtime(layout.frontdoor_admin_port))  # the blackout is on

    try:
        out = run_cli("recover", state=fleet.state)
        assert out.returncode == 0, out.stdout + out.stderr
        text = out.stdout
        assert "repaired: stopped 1 stray process(es) of this fleet" in text
        assert "repaired: restarted gateway-asia-southeast1" in text
        assert "repaired: restarted control-plane-asia-southeast1" in text
        assert "repaired: frontdoor: reset 1 runtime override(s)" in text and "blackout" in text
        # four sources into us-east1, each a delay and four jitter layers
        assert "repaired: gateway-us-east1: reset 20 runtime override(s)" in text
        assert "repaired: payment-gateway-eu-west1-b-0: cleared fault switches fail_pct=40" in text
        assert "repaired: gateway-eu-west1: re-issued its intermediate and leaf certificate" in text

        # Reality, not the report: every leftover is gone.
        assert not procs.alive(stray)
        assert_healthy(fleet)
        for port in [layout.frontdoor_admin_port, *[g.admin_port for g in layout.gateways.values()]]:
            assert runtime_leftovers(_runtime(port)) == {}
        for rep in layout.replicas:
            switches = json.loads(admin.request(f"http://127.0.0.1:{rep.port}/_drill/faults")[1])
            assert not any(switches.values()), (rep.name, switches)
        sds = json.loads((layout.sds_dir("eu-west1") / "cert.json").read_text())
        chain = sds["resources"][0]["tls_certificate"]["certificate_chain"]["inline_string"].encode()
        now = dt.datetime.now(dt.UTC)
        assert all(c.not_valid_after_utc > now for c in x509.load_pem_x509_certificates(chain))
        platform.wait_steady("us-east1")
        req = urllib.request.Request(platform.entrypoint() + "/healthz", headers={"x-client-region": "eu-west1"})
        with urllib.request.urlopen(req, timeout=5) as resp:
            assert resp.status == 200  # the black hole at the front door is gone

        again = run_cli("recover", state=fleet.state)
        assert again.returncode == 0 and again.stdout.strip() == "nothing to recover", again.stdout + again.stderr
    finally:
        procs.stop_all([stray])


def test_runtime_left_as_a_normal_revert_leaves_it_is_not_a_leftover() -> None:
    """A revert writes the baseline into the admin layer (0% with a 1 ms delay for jitter layers,
    abort 0% for a blackout): the same effect as the config, so nothing to repair."""

    def entry(static: str, admin_value: str) -> dict[str, object]:
        return {"final_value": admin_value or static, "layer_values": [static, admin_value]}

    reverted = {
        "layers": ["static", "admin"],
        "entries": {
            "link.a.b.delay_percent": entry("100", "100"),
            "link.a.b.delay_ms": entry("90", "90"),
            "link.a.b.jitter0.delay_percent": entry("", "0"),
            "link.a.b.jitter0.delay_ms": entry("", "1"),
            "blackout.abort_percent": entry("", "0"),
            "blackout.http_status": entry("", "503"),
            "upstream.healthy_panic_threshold": entry("", "0"),  # not a fault key: never touched
        },
    }
    assert runtime_leftovers(reverted) == {}
    reverted["entries"]["link.a.b.delay_ms"] = entry("90", "3600000")  # type: ignore[index]
    reverted["entries"]["fault.http.abort.abort_percent"] = entry("", "5")  # type: ignore[index]
    found = runtime_leftovers(reverted)
    assert sorted(found) == ["fault.http.abort", "link.a.b"]
    assert found["link.a.b"][0] == ["link.a.b.delay_percent", "link.a.b.delay_ms"]


def test_pod_tools_read_and_clear_a_real_replicas_switches(fleet: Fleet, capsys: pytest.CaptureFixture[str]) -> None:
    """What kind's `recover` runs by an exec into each pod (platforms/kind/pod_tools.py),
    run here against a real replica: the switches it reads are the ones the replica applies."""
    from failover_drill.platforms.kind import pod_tools

    rep = fleet.platform.layout().replicas[0]
    port = str(rep.port)
    try:
        assert pod_tools.main(["set-faults", port, '{"fail_pct": 40}']) == 0
        capsys.readouterr()
        assert pod_tools.main(["get-faults", port]) == 0
        on = {k: v for k, v in json.loads(capsys.readouterr().out).items() if v}
        assert on == {"fail_pct": 40}
    finally:
        assert pod_tools.main(["set-faults", port, "{}"]) == 0
    capsys.readouterr()
    assert pod_tools.main(["get-faults", port]) == 0
    assert not any(json.loads(capsys.readouterr().out).values())
    assert pod_tools.main(["get-faults"]) == 2  # usage, not a traceback
