"""The payment-gateway manifests one kind cluster gets: the repo's manifests (base + mesh-profile
overlay, the same files the sandbox translates), made concrete for one region.

- one Deployment per zone, pinned by nodeSelector, so "replicas per zone" holds exactly and a
  zone loss takes down a known set of pods; each replica is told its region and zone, which it
  returns in x-served-region / x-served-zone;
- an ingress on NodePort 30080 (Istio: an ingress gateway serving TLS with the edge secret +
  Gateway/VirtualService; Cilium: a plain-HTTP global NodePort Service with the profile's
  annotations) that kind maps to a host port, where the front door (the MultiClusterService)
  reaches the region;
- GKE kinds (MultiClusterService, BackendConfig) are not applied: the host's front-door Envoy
  plays them, with the BackendConfig's health-check timing.
"""

from __future__ import annotations

import copy
from typing import Any

from failover_drill.config.manifests import load_objects
from failover_drill.config.topology import Topology
from failover_drill.errors import ConfigError
from failover_drill.platforms.kind.cluster_config import INGRESS_NODE_PORT
from failover_drill.platforms.kube.workload import (
    APP,
    NAMESPACE,
    SERVICE_HOST,
    _find,
    region_objects,
    sort_for_apply,
)

EDGE_SECRET = "payment-gateway-edge"  # in istio-system, beside the ingress gateway that serves it


def istio_ingress(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    gateway = {
        "apiVersion": "networking.istio.io/v1",
        "kind": "Gateway",
        "metadata": {"name": APP, "namespace": NAMESPACE},
        "spec": {
            "selector": {"istio": "ingressgateway"},
            "servers": [
                {
                    "port": {"number": 443, "name": "https", "protocol": "HTTPS"},
                    "hosts": ["*"],
                    "tls": {"mode": "SIMPLE", "credentialName": EDGE_SECRET},
                }
            ],
        },
    }
    route: dict[str, Any] = {"route": [{"destination": {"host": SERVICE_HOST, "port": {"number": 80}}}]}
    # The profile's retry/timeout policy applies at the ingress hop too, as it would in the mesh.
    mesh_vs = _find(objects, "VirtualService")
    if mesh_vs:
        first = (mesh_vs["spec"].get("http") or [{}])[0]
        for key in ("timeout", "retries"):
            if key in first:
                route[key] = copy.deepcopy(first[key])
    vs = {
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": {"name": f"{APP}-ingress", "namespace": NAMESPACE},
        "spec": {"hosts": ["*"], "gateways": [APP], "http": [route]},
    }
    return [gateway, vs]


def cilium_ingress(objects: list[dict[str, Any]]) -> dict[str, Any]:
    svc = _find(objects, "Service")
    if svc is None:
        raise ConfigError(
            "the manifests have no payment-gateway Service", hint="see clusters/manifests/payment-gateway"
        )
    ingress = copy.deepcopy(svc)
    ingress["metadata"]["name"] = f"{APP}-ingress"
    ingress["spec"]["type"] = "NodePort"
    ingress["spec"]["ports"] = [{"name": "http", "port": 80, "targetPort": "http", "nodePort": INGRESS_NODE_PORT}]
    return ingress


def cluster_objects(topo: Topology, region: str) -> list[dict[str, Any]]:
    """Every object to apply in one region's cluster, in apply order: the region's workload and
    the ingress the front door reaches it through."""
    objects = load_objects(topo.manifests_dir(), topo.mesh)
    ingress = istio_ingress(objects) if topo.mesh.startswith("istio") else [cilium_ingress(objects)]
    return sort_for_apply([*region_objects(topo, region), *ingress])
