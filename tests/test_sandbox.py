"""The sandbox platform with real processes: up, status and down from other shells, bad input,
and no process left behind."""

from __future__ import annotations

import json
import socket
import urllib.request
from pathlib import Path

import pytest

from failover_drill.faults.model import parse_fault
from tests.conftest import MANIFESTS_DIR, Fleet, processes_under, run_cli


def post(url: str, key: str, region: str) -> tuple[int, dict[str, str], dict[str, object]]:
    req = urllib.request.Request(
        url + "/v1/payments",
        data=b'{"amount_cents": 1234, "currency": "EUR"}',
        method="POST",
        headers={"Idempotency-Key": key, "x-client-region": region, "content-type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=5) as resp:
        return resp.status, dict(resp.headers), json.loads(resp.read())


def test_fleet_serves_each_region_at_home_and_is_idempotent(fleet: Fleet) -> None:
    url = fleet.platform.entrypoint()
    for region in ("us-east1", "eu-west1", "asia-southeast1"):
        status, headers, body = post(url, f"t-home-{region}", region)
        assert status == 201 and headers["x-served-region"] == region
        assert headers["x-served-zone"] == f"{region}-a"  # the gateway's own zone is priority 0
        assert str(body["payment_id"]).startswith("pay_")
        again = post(url, f"t-home-{region}", region)
        assert again[0] == 200 and again[2]["payment_id"] == body["payment_id"] and again[2]["replayed"] is True
    charges = {c.key: c for c in fleet.platform.ledger()}
    assert charges["t-home-eu-west1"].region == "eu-west1" and charges["t-home-eu-west1"].amount_cents == 1234


def test_status_from_another_process(fleet: Fleet) -> None:
    out = run_cli("status", "--json", state=fleet.state)
    assert out.returncode == 0, out.stderr
    st = json.loads(out.stdout)
    assert st["up"] and st["mesh"] == "istio"
    kinds = [c["kind"] for c in st["components"]]
    assert kinds.count("replica") == 18 and kinds.count("gateway") == 3 and kinds.count("frontdoor") == 1
    assert all(c["state"] == "running" for c in st["components"])
    # Issue 15 point 4: the app port and the admin port apart, and each Envoy's Prometheus stats.
    envoys = [c for c in st["components"] if c["kind"] in ("gateway", "frontdoor")]
    assert all(c["admin_port"] and c["admin_port"] != c["port"] for c in envoys)
    assert all(c["admin_port"] is None and c["metrics"] is None for c in st["components"] if c not in envoys)
    for c in envoys:
        with urllib.request.urlopen(c["metrics"], timeout=5) as r:
            assert "envoy_cluster_upstream_rq" in r.read().decode(), c["name"]
    table = run_cli("status", state=fleet.state, env={"COLUMNS": "200"})
    assert "admin port" in table.stdout and "Envoy Prometheus stats:" in table.stdout
    assert envoys[0]["metrics"] in table.stdout


def test_a_revert_right_behind_a_kill_restarts_every_process(fleet: Fleet) -> None:
    """A SIGKILL takes effect when the kernel next runs the process. A revert straight behind the
    kill must find every process dead and restart it, never SIGCONT a dying one and call the
    fault reverted: CI once saw two replicas left stopped under a closed ledger that way."""
    platform = fleet.platform
    platform.wait_steady("us-east1")
    for _ in range(3):
        for fault in (
            parse_fault({"kind": "region-loss", "target": "us-east1"}),
            parse_fault({"kind": "zone-loss", "target": "eu-west1-b"}),
        ):
            plan = platform.plan_fault(fault)
            platform.inject(fault, plan)
            states = {c["name"]: c["state"] for c in platform.status().components}
            assert all(states[name] == "stopped" for name in plan["processes"]), states
            platform.revert(fault, plan)
            # At once, not eventually: the revert returned, so every process must be up now.
            states = {c["name"]: c["state"] for c in platform.status().components}
            assert all(state == "running" for state in states.values()), states
    platform.wait_steady("us-east1")


def test_internal_fault_endpoint_is_not_routed_from_outside(fleet: Fleet) -> None:
    req = urllib.request.Request(
        fleet.platform.entrypoint() + "/_drill/faults",
        data=b'{"fail_pct": 100}',
        method="POST",
        headers={"x-client-region": "us-east1"},
    )
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=5)
    assert e.value.code == 404


def test_up_and_down_via_cli_leave_nothing_running(tmp_path: Path) -> None:
    state = tmp_path / "state"
    up = run_cli("up", state=state)
    assert up.returncode == 0, up.stderr
    assert len(processes_under(state)) >= 25
    down = run_cli("down", state=state)
    assert down.returncode == 0, down.stderr
    assert processes_under(state) == []
    again = run_cli("down", state=state)
    assert again.returncode == 0 and "not up" in again.stderr


def test_port_already_taken(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        topo = tmp_path / "topo.yaml"
        topo.write_text(f"regions:\n  - name: us-east1\nmanifests: {MANIFESTS_DIR}\nsandbox:\n  base_port: {port}\n")
        out = run_cli("up", "--topology", str(topo), state=tmp_path / "state")
    assert out.returncode == 3
    assert f"port {port} (frontdoor) is already in use" in out.stderr and "base_port" in out.stderr
    assert processes_under(tmp_path / "state") == []


def test_missing_envoy_binary(tmp_path: Path) -> None:
    out = run_cli("up", state=tmp_path / "state", env={"FAILOVER_DRILL_ENVOY": str(tmp_path / "no-envoy")})
    assert out.returncode == 3
    assert "FAILOVER_DRILL_ENVOY" in out.stderr and "is not a runnable Envoy binary" in out.stderr
    assert processes_under(tmp_path / "state") == []


def test_malformed_topology(tmp_path: Path) -> None:
    topo = tmp_path / "topo.yaml"
    topo.write_text("regions:\n  - name: US East\n")
    out = run_cli("drill", "--topology", str(topo), state=tmp_path / "state", runs=tmp_path / "runs")
    assert out.returncode == 2
    assert f"{topo}:2" in out.stderr and "regions.0.name" in out.stderr
    assert processes_under(tmp_path / "state") == [] and not (tmp_path / "runs").exists()


def test_unknown_region(tmp_path: Path) -> None:
    out = run_cli("drill", "--region", "mars-1", state=tmp_path / "state", runs=tmp_path / "runs")
    assert out.returncode == 2 and "unknown region 'mars-1'" in out.stderr and "us-east1" in out.stderr
    assert processes_under(tmp_path / "state") == []


def test_unknown_fault(tmp_path: Path) -> None:
    out = run_cli("drill", "--fault", "meteor", state=tmp_path / "state", runs=tmp_path / "runs")
    assert out.returncode == 2 and "unknown fault 'meteor'" in out.stderr
