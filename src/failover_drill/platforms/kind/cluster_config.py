"""One kind cluster per region: a control-plane node plus one worker per zone, labelled with the
topology's region and zone so Istio and Cilium see real localities (FACTS.md, kind).

Names are fixed by kind: nodes are `<cluster>-control-plane`, `<cluster>-worker`,
`<cluster>-worker2`, ... in the order the config lists them; the zone order gives the mapping.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from failover_drill.config.topology import Region, Topology
from failover_drill.errors import ConfigError

KIND_NODE_IMAGE = "kindest/node:v1.31.2"
# The kind release whose default node image is KIND_NODE_IMAGE (kind v0.25.0's release notes:
# "The default node image is now Kubernetes v1.31.2"); node images are built per kind release.
KIND_VERSION = "0.25.0"
# The ingress NodePort every cluster exposes; kind maps it to a host port per region.
INGRESS_NODE_PORT = 30080
# The API server inside each cluster, as Cilium's agents reach it without kube-proxy: the
# control-plane container's name on the kind network (Docker's DNS) and kubeadm's port.
API_SERVER_PORT = 6443
# clustermesh-apiserver's NodePort, one per cluster (Cilium's default, 32379, + index - 1): with
# kube-proxy replacement, a NodePort that is the same in two meshed clusters is served by the
# local backend even when the remote node's address is dialled (cilium/cilium#24692), so agents
# would connect to their own clustermesh-apiserver instead of the remote one.
CLUSTERMESH_NODE_PORT_BASE = 32379
CONTROL_PLANE_ROLE = "node-role.kubernetes.io/control-plane"


def on_control_plane() -> dict[str, Any]:
    """nodeSelector and tolerations that put a pod on the region's control-plane node: it belongs to
    no zone, so a zone loss leaves what runs there (the mesh's control plane, in-region traffic)."""
    return {
        "nodeSelector": {CONTROL_PLANE_ROLE: ""},
        "tolerations": [{"key": CONTROL_PLANE_ROLE, "operator": "Exists", "effect": "NoSchedule"}],
    }


DEFAULT_HOST_PORT_BASE = 31080


@dataclass(frozen=True)
class ClusterNames:
    region: str
    index: int  # 1-based: Cilium cluster.id, subnet octet

    @property
    def cluster(self) -> str:
        return f"fd-{self.region}"

    @property
    def context(self) -> str:
        return f"kind-{self.cluster}"

    @property
    def control_plane(self) -> str:
        return f"{self.cluster}-control-plane"

    def worker(self, position: int) -> str:
        """Worker at 0-based position in the config."""
        return f"{self.cluster}-worker" + ("" if position == 0 else str(position + 1))

    @property
    def network(self) -> str:
        return f"network-{self.region}"

    def host_port(self, base: int = DEFAULT_HOST_PORT_BASE) -> int:
        return base + self.index - 1

    @property
    def clustermesh_node_port(self) -> int:
        return CLUSTERMESH_NODE_PORT_BASE + self.index - 1


def names(topo: Topology) -> dict[str, ClusterNames]:
    if len(topo.regions) > 200:
        raise ConfigError("kind supports at most 200 regions here (pod subnets 10.<n>.0.0/16)", field="regions")
    return {r.name: ClusterNames(r.name, i) for i, r in enumerate(topo.regions, start=1)}


def zone_nodes(topo: Topology, region: str) -> dict[str, list[str]]:
    """zone name -> node container names (one worker per zone)."""
    n = names(topo)[region]
    return {zone: [n.worker(i)] for i, zone in enumerate(topo.region(region).zone_names())}


def all_nodes(topo: Topology, region: str) -> list[str]:
    return [names(topo)[region].control_plane, *[w for ws in zone_nodes(topo, region).values() for w in ws]]


def kind_config(topo: Topology, region: Region, host_port_base: int = DEFAULT_HOST_PORT_BASE) -> dict[str, Any]:
    n = names(topo)[region.name]
    cilium = topo.mesh.startswith("cilium")
    labels = {"topology.kubernetes.io/region": region.name}
    workers = [
        {
            "role": "worker",
            "image": KIND_NODE_IMAGE,
            "labels": {**labels, "topology.kubernetes.io/zone": zone},
        }
        for zone in region.zone_names()
    ]
    networking: dict[str, Any] = {
        # Cilium Cluster Mesh needs non-overlapping pod CIDRs (Cilium's own kind recipe).
        "podSubnet": f"10.{n.index}.0.0/16",
        "serviceSubnet": f"172.20.{n.index}.0/24",
    }
    if cilium:
        networking["disableDefaultCNI"] = True
        # No kube-proxy: Cilium's kube-proxy replacement serves Services, the ingress NodePort
        # included, so a global service's remote backends are what a Cilium drill measures.
        networking["kubeProxyMode"] = "none"
    return {
        "kind": "Cluster",
        "apiVersion": "kind.x-k8s.io/v1alpha4",
        "name": n.cluster,
        "networking": networking,
        "nodes": [
            {
                "role": "control-plane",
                "image": KIND_NODE_IMAGE,
                "labels": labels,
                # The front door on the host reaches the region through this port; the control plane
                # node is in no zone, so a zone loss leaves the region's entry up (as a cloud LB's would).
                "extraPortMappings": [
                    {
                        "containerPort": INGRESS_NODE_PORT,
                        "hostPort": n.host_port(host_port_base),
                        "listenAddress": "127.0.0.1",
                        "protocol": "TCP",
                    }
                ],
            },
            *workers,
        ],
    }
