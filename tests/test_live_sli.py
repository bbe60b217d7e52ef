"""Live SLIs (measure/live_sli.py): the drill feeds them as samples complete, and a real HTTP client
reads /metrics and /analysis while the drill runs (in-memory platform: real traffic over a real
socket to its in-process front door, which fails payments while a fault is on)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from failover_drill.config.topology import load_topology
from failover_drill.drill import Drill
from failover_drill.faults.model import Fault
from failover_drill.measure.live_sli import ALL, LiveSli, SliServer, parse_window
from failover_drill.platforms.ports import allocate
from failover_drill.traffic.samples import DROPPED, OK, Sample

from .conftest import FAST, ROOT, Fleet, run_cli
from .memory_platform import MemoryPlatform
from .test_drill_logic import TOPOLOGY, scenario


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def sample(ok: bool, version: str = "stable", region: str = "us-east1", lat_ms: float = 10.0) -> Sample:
    return Sample(0, 0.0, lat_ms, 0.0, 200 if ok else 503, OK if ok else "http_503", region, "z", version=version)


def test_success_ratio_burn_rate_and_p99_per_region_and_version() -> None:
    clock = FakeClock()
    live = LiveSli(slo=0.999, clock=clock)
    for i in range(100):
        live.add(sample(True, lat_ms=10.0 + i))  # stable: all good, latencies 10..109 ms
    for i in range(10):
        live.add(sample(i < 5, version="canary"))  # canary: half fail
    live.add(Sample(1, 0.0, 0.0, 0.0, 0, DROPPED))  # never sent: not the service's failure
    stable = live.sli("us-east1", "stable", 60)
    assert (stable.requests, stable.errors, stable.success_ratio, stable.burn_rate) == (100, 0, 1.0, 0.0)
    assert stable.p99_ms is not None and 108 * 0.95 <= stable.p99_ms <= 109 * 1.05
    canary = live.sli("us-east1", "canary", 60)
    assert canary.success_ratio == 0.5 and canary.burn_rate == pytest.approx(500.0)
    both = live.sli("us-east1", ALL, 60)
    assert both.requests == 110 and both.success_ratio == pytest.approx(105 / 110)
    # 4.5% errors in one second burn at 45x over it, yet no page: the rest of the hour and of the
    # five minutes counts as clean (the report's rule), as a production service's history would be.
    assert both.burn_rate == pytest.approx(45.45, rel=0.01) and not live.page_alert()
    # Older than the window: forgotten by it, kept for longer windows.
    clock.t += 120
    assert live.sli("us-east1", "canary", 60).requests == 0
    assert live.sli("us-east1", "canary", 60).success_ratio is None
    assert live.sli("us-east1", "canary", 300).requests == 10


def test_the_page_alert_needs_a_burn_sustained_as_the_report_judges_it() -> None:
    """14.4x over both 1 h and 5 min, with the unobserved part of each window clean at the rate
    observed: the live alert (what --freeze-deploys acts on) and the scorecard's agree."""
    clock = FakeClock()
    live = LiveSli(slo=0.999, clock=clock)

    def second(errors: int) -> None:
        for i in range(10):
            live.add(sample(i >= errors))
        clock.t += 1

    for _ in range(300):
        second(0)
    for n in range(1, 200):
        second(3)  # 30% errors
        # the 5 min window alone would page at once; the hour's 0.3 * n / 3600 / 0.001 >= 14.4 takes n >= 173
        assert live.page_alert() == (n >= 173), n
    assert live.observed_s() == 500  # seconds 1000 to 1499, the last one still empty


def test_windows_parse_or_say_why() -> None:
    assert parse_window("30s") == 30 and parse_window("5m") == 300 and parse_window("1h") == 3600
    for bad in ("", "5", "-1m", "7h", "1d"):
        with pytest.raises(ValueError):
            parse_window(bad)


def test_a_real_client_reads_metrics_and_analysis_during_a_drill(tmp_path: Path) -> None:
    platform = MemoryPlatform()
    live = LiveSli(slo=0.999)
    seen: dict[str, Any] = {}
    with SliServer(live) as server:

        def on_inject(fault: Fault) -> None:
            # Mid-drill, from another thread, as a controller's AnalysisRun would ask.
            with httpx.Client(timeout=5) as http:
                seen["analysis"] = http.get(
                    f"{server.url}/analysis", params={"region": "us-east1", "version": "stable", "window": "1m"}
                ).json()
                seen["metrics"] = http.get(f"{server.url}/metrics").text

        platform.on_inject = on_inject
        sc = scenario([{"kind": "zone-loss", "target": "us-east1-a"}])
        drill = Drill(
            sc,
            load_topology(TOPOLOGY),
            state_dir=tmp_path / "state",
            runs_dir=tmp_path / "runs",
            platform=platform,
            sli=live,
        )
        drill.run()
        with httpx.Client(timeout=5) as http:
            after = http.get(f"{server.url}/analysis", params={"region": "us-east1", "version": "stable"}).json()
            bad = http.get(f"{server.url}/analysis", params={"window": "forever"})
            missing = http.get(f"{server.url}/analysis", params={"version": "canary"})
            typo = http.get(f"{server.url}/analysis", params={"region": "us-east", "version": "stable"})
            metrics = http.get(f"{server.url}/metrics").text
    during = seen["analysis"]
    assert during["requests"] > 0 and during["success_ratio"] == 1.0  # the baseline, before the fault
    assert during["failover"]["phase"] == "baseline"
    assert 'failover_drill_success_ratio{region="us-east1",version="stable",window="5m"} 1.0' in seen["metrics"]
    # After: the fault's 503s count against the version that served them (the front door said "stable").
    assert after["errors"] > 0 and after["success_ratio"] < 1.0 and after["burn_rate"] > 1.0
    assert after["p99_ms"] is not None and after["failover"]["phase"] == "recovery"
    assert bad.status_code == 400 and "30s, 5m or 1h" in bad.json()["error"]
    # A series never seen is not a quiet one: 404, naming what the drill has seen.
    assert missing.status_code == 404 and "no payments seen" in missing.json()["error"]
    assert "canary" not in missing.json()["versions_seen"] and "stable" in missing.json()["versions_seen"]
    assert typo.status_code == 404 and "us-east1" in typo.json()["regions_seen"]
    assert 'failover_drill_burn_rate{region="us-east1",version="stable",window="1m"}' in metrics
    assert 'failover_drill_phase{phase="recovery"} 1.0' in metrics


@pytest.mark.slow
def test_failover_drill_drill_serves_live_slis_while_it_runs(fleet: Fleet, tmp_path: Path) -> None:
    """Through the CLI on a real sandbox fleet: `--sli-port` serves /analysis and /metrics for as
    long as the drill runs (what an AnalysisRun's web / prometheus provider reads), then stops."""
    port = allocate(["sli"])["sli"]
    cmd = [sys.executable, "-m", "failover_drill.cli", "drill", "--runs-dir", str(tmp_path / "runs"), *FAST,
           "--fault", "zone-loss", "--region", "us-east1", "--sli-port", str(port)]  # fmt: skip
    env = {**os.environ, "FAILOVER_DRILL_STATE": str(fleet.state)}
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    seen: dict[str, Any] = {}
    try:
        deadline = time.monotonic() + 60
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                got = httpx.get(f"{url}/analysis", params={"region": "us-east1", "window": "30s"}, timeout=2).json()
            except httpx.HTTPError:
                time.sleep(0.2)
                continue
            if got["requests"] and got["failover"]["phase"] == "fault":
                seen = got
                seen["metrics"] = httpx.get(f"{url}/metrics", timeout=2).text
                break
            time.sleep(0.2)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode in (0, 1, 4), out + err
    assert f"live SLIs: {url}/metrics" in err
    assert seen, "no analysis with requests was served during the fault phase"
    assert seen["success_ratio"] is not None and seen["failover"]["faults"], seen
    assert 'failover_drill_success_ratio{region="us-east1"' in seen["metrics"]
    with pytest.raises(httpx.ConnectError):  # the endpoint lives exactly as long as the drill
        httpx.get(f"{url}/healthz", timeout=2)


def test_a_taken_sli_port_is_refused_before_anything_runs(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        out = run_cli("drill", "--sli-port", str(port), state=tmp_path / "state", runs=tmp_path / "runs")
    assert out.returncode == 3, out.stdout + out.stderr
    assert f"cannot serve live SLIs on 127.0.0.1:{port}" in out.stderr and "--sli-port" in out.stderr
    assert not (tmp_path / "runs").exists() and not (tmp_path / "state" / "sandbox").exists()


def test_the_endpoints_serve_what_the_manifest_check_expects() -> None:
    """config/sli_contract.py is what AnalysisTemplates are checked against before a platform
    installs them: the real server, read by a real client, serves exactly that."""
    from prometheus_client.parser import text_string_to_metric_families

    from failover_drill.config.sli_contract import ANALYSIS_FIELDS, METRIC_WINDOWS, METRICS

    live = LiveSli(slo=0.999)
    live.add(sample(True))
    live.add(sample(False, version="canary"))
    with SliServer(live) as sli:
        analysis = httpx.get(f"{sli.url}/analysis?region=us-east1&version=canary&window=1m").json()
        text = httpx.get(f"{sli.url}/metrics").text
    assert set(analysis) == ANALYSIS_FIELDS
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert set(families) == set(METRICS)
    for name, fam in families.items():
        for s in fam.samples:
            assert set(s.labels) == METRICS[name], (name, s.labels)
            if "window" in s.labels:
                assert s.labels["window"] in METRIC_WINDOWS
    assert {s.labels["window"] for s in families["failover_drill_success_ratio"].samples} == set(METRIC_WINDOWS)
