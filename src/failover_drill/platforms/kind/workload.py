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

NAMESPACE = "payments"
APP = "payment-gateway"
SERVICE_HOST = f"{APP}.{NAMESPACE}.svc.cluster.local"
IMAGE = "failover-drill/payment-gateway:dev"
FRONT_DOOR_ONLY = {"MultiClusterService", "BackendConfig"}
ISTIO_GROUPS = ("networking.istio.io/", "security.istio.io/")
EDGE_SECRET = "payment-gateway-edge"  # in istio-system, beside the ingress gateway that serves it


def _find(objects: list[dict[str, Any]], kind: str, name: str = APP) -> dict[str, Any] | None:
    for o in objects:
        if o.get("kind") == kind and (o.get("metadata") or {}).get("name") == name:
            return o
    return None


def zone_deployments(base: dict[str, Any], topo: Topology, region: str) -> list[dict[str, Any]]:
    out = []
    for zone in topo.region(region).zone_names():
        d = copy.deepcopy(base)
        suffix = zone.removeprefix(f"{region}-")
        d["metadata"]["name"] = f"{APP}-{suffix}"
        d["metadata"].setdefault("labels", {})["zone"] = zone
        d["spec"]["replicas"] = topo.replicas_per_zone
        d["spec"]["selector"] = {"matchLabels": {"app": APP, "zone": zone}}
        pod = d["spec"]["template"]
        pod["metadata"].setdefault("labels", {})["zone"] = zone
        spec = pod["spec"]
        spec.pop("topologySpreadConstraints", None)
        spec["nodeSelector"] = {"topology.kubernetes.io/zone": zone}
        for c in spec["containers"]:
            if c.get("image") == IMAGE:
                c["args"] = [
                    *c.get("args", []),
                    "--host",
                    "0.0.0.0",
                    "--region",
                    region,
                    "--zone",
                    zone,
                    "--name",
                    "$(POD_NAME)",
                ]
        out.append(d)
    return out


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
    """Every object to apply in one region's cluster, in apply order."""
    profile = topo.mesh
    istio = profile.startswith("istio")
    objects = load_objects(topo.manifests_dir(), profile)
    out: list[dict[str, Any]] = []
    for obj in objects:
        kind = obj["kind"]
        if kind in FRONT_DOOR_ONLY:
            continue
        if not istio and obj["apiVersion"].startswith(ISTIO_GROUPS):
            continue
        if kind == "Namespace" and not istio:
            ns = copy.deepcopy(obj)
            ns["metadata"].get("labels", {}).pop("istio-injection", None)
            out.append(ns)
        elif kind == "Deployment" and obj["metadata"]["name"] == APP:
            out.extend(zone_deployments(obj, topo, region))
        else:
            out.append(obj)
    out.extend(istio_ingress(objects) if istio else [cilium_ingress(objects)])
    order = {"Namespace": 0, "Service": 1, "ServiceExport": 2, "Deployment": 3}
    return sorted(out, key=lambda o: order.get(o["kind"], 4))
