"""Argo Rollouts in every kind cluster: the controller and its CRDs from the release that the
kwok platform builds from source (one pin, toolchain/pins.toml), installed as its docs say
(`kubectl create namespace argo-rollouts; kubectl apply -n argo-rollouts -f install.yaml`), one
controller per cluster (Argo Rollouts has no multi-cluster controller)."""

from __future__ import annotations

from failover_drill.config.topology import Topology
from failover_drill.platforms.kind import api
from failover_drill.platforms.kind.cluster_config import names
from failover_drill.platforms.kind.commands import AnyStep
from failover_drill.toolchain.pins import load_pins

NAMESPACE = "argo-rollouts"
CONTROLLER = "argo-rollouts"  # the Deployment's name in install.yaml


def version() -> str:
    return load_pins().component("rollouts-controller").version


def install_url(v: str | None = None) -> str:
    return f"https://github.com/argoproj/argo-rollouts/releases/download/{v or version()}/install.yaml"


def install_steps(topo: Topology) -> list[AnyStep]:
    v = version()
    steps: list[AnyStep] = []
    for n in names(topo).values():
        ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}
        steps += [
            api.apply(n.context, f"{n.region}: namespace {NAMESPACE}", [ns]),
            api.apply_urls(
                n.context, f"{n.region}: Argo Rollouts {v} (controller and CRDs)", [install_url(v)], namespace=NAMESPACE
            ),
            api.wait_rollout(n.context, f"{n.region}: wait for the Argo Rollouts controller", NAMESPACE, CONTROLLER),
        ]
    return steps
