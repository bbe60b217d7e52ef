"""The kwok platform's istiod (mesh_agent.Split) reads the payment-gateway VirtualService as
Argo Rollouts writes it into the gateway's weighted-clusters route; real Envoy accepts that route.
(Gateways following the weights with the real controller: tests/test_kwok_rollouts.py.)"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from failover_drill.config.manifests import load_policy
from failover_drill.platforms.envoy.binary import resolve_envoy
from failover_drill.platforms.envoy.config import CANARY_CLUSTER, SPLIT_RUNTIME_PREFIX, gateway_bootstrap
from failover_drill.platforms.envoy.dataplane import prepare_files
from failover_drill.platforms.envoy.layout import plan_layout
from failover_drill.platforms.kwok.mesh_agent import Split
from tests.conftest import ROOT, topology
from tests.test_envoy_config import assert_envoy_accepts


def vs(*route: tuple[str, int]) -> dict[str, Any]:
    return {
        "spec": {
            "hosts": ["payment-gateway"],
            "http": [{"name": "primary", "route": [{"destination": {"host": h}, "weight": w} for h, w in route]}],
        }
    }


def test_the_route_argo_rollouts_writes_becomes_the_split() -> None:
    got = Split.of(vs(("payment-gateway-stable", 66), ("payment-gateway-canary", 34)))
    assert got == Split("payment-gateway-stable", 66, "payment-gateway-canary", 34)
    assert got.runtime() == {
        f"{SPLIT_RUNTIME_PREFIX}.payment-gateway": 66,
        f"{SPLIT_RUNTIME_PREFIX}.{CANARY_CLUSTER}": 34,
    }
    # In either order, with the hosts' full names, a weight left out counting as 0 (Istio's).
    fq = vs(("payment-gateway-canary.payments.svc.cluster.local", 80), ("payment-gateway-stable.payments", 20))
    assert Split.of(fq) == Split("payment-gateway-stable", 20, "payment-gateway-canary", 80)
    bare = vs(("payment-gateway-stable", 100), ("payment-gateway-canary", 0))
    del bare["spec"]["http"][0]["route"][1]["weight"]
    assert Split.of(bare) == Split("payment-gateway-stable", 100, "payment-gateway-canary", 0)
    # Hosts named otherwise: the second is the canary (Argo Rollouts' examples' order).
    assert Split.of(vs(("pg-blue", 90), ("pg-green", 10))) == Split("pg-blue", 90, "pg-green", 10)


def test_no_virtual_service_or_no_two_way_route_is_no_split() -> None:
    assert Split.of(None) is None
    assert Split.of({"spec": {"http": []}}) is None
    assert Split.of(vs(("payment-gateway", 100))) is None
    # Weights that add up to nothing send all to stable, as the route's defaults do.
    assert Split("a", 0, "a-canary", 0).runtime()[f"{SPLIT_RUNTIME_PREFIX}.payment-gateway"] == 100


def test_envoy_accepts_the_split_gateway(tmp_path: Path) -> None:
    """The Istio gateway with its users' routes split between the stable and canary clusters,
    validated by the real Envoy binary; without the split, no canary cluster at all."""
    envoy, _ = resolve_envoy()
    layout = plan_layout(topology(), tmp_path)
    policy = load_policy(ROOT / "clusters" / "manifests" / "payment-gateway", "istio")
    prepare_files(layout, policy, canary_split=True)
    for f in sorted(layout.envoy_dir().glob("gateway-*.json")):
        assert_envoy_accepts(envoy, f)
    split = gateway_bootstrap(layout, "us-east1", policy, canary_split=True)
    plain = gateway_bootstrap(layout, "us-east1", policy)
    ingress = split["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    users = ingress["route_config"]["virtual_hosts"][0]["routes"][-1]["route"]
    assert users["weighted_clusters"]["runtime_key_prefix"] == SPLIT_RUNTIME_PREFIX
    assert [c["name"] for c in users["weighted_clusters"]["clusters"]] == ["payment-gateway", CANARY_CLUSTER]
    assert CANARY_CLUSTER in [c["name"] for c in split["static_resources"]["clusters"]]
    assert CANARY_CLUSTER not in [c["name"] for c in plain["static_resources"]["clusters"]]
