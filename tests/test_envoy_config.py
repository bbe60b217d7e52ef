"""Generated Envoy config is accepted by the real Envoy binary, and endpoint priorities follow the
mesh's rules (Istio locality priorities, Cilium affinity local)."""

from __future__ import annotations

import itertools
import subprocess
from pathlib import Path

import pytest

from failover_drill.config.manifests import load_policy
from failover_drill.platforms.envoy.binary import resolve_envoy
from failover_drill.platforms.envoy.config import gateway_bootstrap, jitter_steps_ms
from failover_drill.platforms.envoy.eds import endpoint_groups
from failover_drill.platforms.envoy.layout import plan_layout
from failover_drill.platforms.sandbox.platform import SandboxPlatform
from tests.conftest import ROOT, topology

MANIFESTS = ROOT / "clusters" / "manifests" / "payment-gateway"


@pytest.mark.parametrize("profile", ["istio", "istio-tuned", "cilium", "cilium-tuned"])
def test_envoy_validates_generated_bootstraps(profile: str, tmp_path: Path) -> None:
    envoy, _ = resolve_envoy()
    layout = plan_layout(topology(), tmp_path)
    policy = load_policy(MANIFESTS, profile)
    SandboxPlatform(tmp_path).prepare_files(layout, policy)
    for f in sorted(layout.envoy_dir().glob("*.json")):
        assert_envoy_accepts(envoy, f)


def assert_envoy_accepts(envoy: Path, config: Path) -> None:
    """The real Envoy binary validates the bootstrap (--mode validate)."""
    out = subprocess.run(
        [str(envoy), "--mode", "validate", "-c", str(config), "--disable-hot-restart"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_istio_locality_priorities(tmp_path: Path) -> None:
    layout = plan_layout(topology(), tmp_path)
    ready = layout.region_replicas("us-east1")
    groups, local = endpoint_groups(layout, "us-east1", "istio", True, ready, {"eu-west1": 6, "asia-southeast1": 6})
    prios = [(g["priority"], g.get("zone") or g["region"]) for g in groups]
    assert prios == [(0, "us-east1-a"), (1, "us-east1-b"), (1, "us-east1-c"), (2, "eu-west1"), (3, "asia-southeast1")]
    remote = next(g for g in groups if g["region"] == "eu-west1")
    assert remote["endpoints"] == [(layout.gateways["eu-west1"].eastwest_port, 6, True)]
    assert all(g["priority"] == 0 for g in local) and sum(len(g["endpoints"]) for g in local) == 6


def test_istio_priorities_renumber_without_gaps(tmp_path: Path) -> None:
    layout = plan_layout(topology(), tmp_path)
    ready = [r for r in layout.region_replicas("us-east1") if r.zone != "us-east1-a"]
    groups, _ = endpoint_groups(layout, "us-east1", "istio", True, ready, {"eu-west1": 0, "asia-southeast1": 6})
    assert [(g["priority"], g.get("zone") or g["region"]) for g in groups] == [
        (0, "us-east1-b"),
        (0, "us-east1-c"),
        (1, "asia-southeast1"),
    ]


def test_cilium_affinity_local_is_all_or_nothing(tmp_path: Path) -> None:
    layout = plan_layout(topology(), tmp_path)
    one_left = layout.region_replicas("us-east1")[:1]
    groups, _ = endpoint_groups(layout, "us-east1", "cilium", False, one_left, {"eu-west1": 6, "asia-southeast1": 6})
    assert [g["region"] for g in groups] == ["us-east1"]
    groups, _ = endpoint_groups(layout, "us-east1", "cilium", False, [], {"eu-west1": 6, "asia-southeast1": 6})
    assert {g["region"] for g in groups} == {"eu-west1", "asia-southeast1"} and all(g["priority"] == 0 for g in groups)


def test_istio_default_outlier_and_retry_translation(tmp_path: Path) -> None:
    layout = plan_layout(topology(), tmp_path)
    cfg = gateway_bootstrap(layout, "us-east1", load_policy(MANIFESTS, "istio"))
    cluster = cfg["static_resources"]["clusters"][0]
    od = cluster["outlier_detection"]
    assert od["max_ejection_percent"] == 10 and od["consecutive_5xx"] == 5 and od["interval"] == "10.000s"
    hcm = cfg["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    routes = hcm["route_config"]["virtual_hosts"][0]["routes"]
    route = next(r for r in routes if r["match"].get("headers"))
    assert route["route"]["retry_policy"]["num_retries"] == 2
    assert "retry_priority" not in route["route"]["retry_policy"]
    assert route["route"]["timeout"] == "0s"  # Istio sets no route timeout by default
    thresholds = cluster["circuit_breakers"]["thresholds"][0]
    assert thresholds["max_retries"] == 4294967295


def test_jitter_steps_make_an_even_spread() -> None:
    steps = jitter_steps_ms(60)
    assert sum(steps) == 120
    # each step on for half the requests, independently: 16 equally likely delays, evenly spaced
    totals = sorted(sum(st for st, on in zip(steps, f"{i:04b}", strict=True) if on == "1") for i in range(16))
    assert totals[0] == 0 and totals[-1] == 120
    gaps = {b - a for a, b in itertools.pairwise(totals)}
    assert gaps == {8}
