"""The payment-gateway objects every Kubernetes platform applies: the repo's manifests (base +
mesh-profile overlay, the same files the sandbox translates), made concrete for one region, with
one Deployment per zone pinned by nodeSelector, so "replicas per zone" holds exactly and a zone
loss takes down a known set of pods; each replica is told its region and zone, which it returns
in x-served-region / x-served-zone. GKE kinds (MultiClusterService, BackendConfig) are played by
the front door and not applied."""

from __future__ import annotations

import copy
from typing import Any

from failover_drill.config.manifests import load_objects
from failover_drill.config.topology import Topology

NAMESPACE = "payments"
APP = "payment-gateway"
SERVICE_HOST = f"{APP}.{NAMESPACE}.svc.cluster.local"
IMAGE = "failover-drill/payment-gateway:dev"
FRONT_DOOR_ONLY = {"MultiClusterService", "BackendConfig"}
ISTIO_GROUPS = ("networking.istio.io/", "security.istio.io/")


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


def region_objects(topo: Topology, region: str) -> list[dict[str, Any]]:
    """Every payment-gateway object of one region's cluster, without an ingress, in apply order.
    Istio's kinds are left out for a Cilium profile (and the namespace's injection label)."""
    profile = topo.mesh
    istio = profile.startswith("istio")
    out: list[dict[str, Any]] = []
    for obj in load_objects(topo.manifests_dir(), profile):
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
    return sort_for_apply(out)


def sort_for_apply(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    order = {"Namespace": 0, "Service": 1, "ServiceExport": 2, "Deployment": 3}
    return sorted(objects, key=lambda o: order.get(o["kind"], 4))
