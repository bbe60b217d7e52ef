"""Installing the mesh across the kind clusters, as the upstream guides do it (FACTS.md):

- Istio multi-primary, multi-network: one root CA and one intermediate per cluster (`cacerts`),
  meshID / clusterName / network per cluster, an east-west gateway on 15443 (AUTO_PASSTHROUGH)
  with a MetalLB LoadBalancer address, remote secrets in both directions with the API server's
  address on the kind network (not 127.0.0.1); the ingress gateway serves TLS with a leaf from
  the same CA (the edge secret), which the front door validates as it does on the sandbox;
- Cilium Cluster Mesh: unique cluster name and id, non-overlapping pod CIDRs (kind config), the
  first cluster's `cilium-ca` copied to the others before install, kube-proxy replaced by Cilium
  (kind runs without kube-proxy, so the ingress NodePort is Cilium's and uses the global
  service's remote backends), `clustermesh enable` with a NodePort apiserver (a port per
  cluster), `clustermesh connect` for every pair.
"""

from __future__ import annotations

import base64
import datetime as dt
import gzip
import ipaddress
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path
from typing import Any

import yaml

from failover_drill.config.topology import Topology
from failover_drill.errors import PlatformError
from failover_drill.platforms.kind import api
from failover_drill.platforms.kind.api import apply, kubectl
from failover_drill.platforms.kind.cluster_config import (
    API_SERVER_PORT,
    INGRESS_NODE_PORT,
    ClusterNames,
    all_nodes,
    names,
    on_control_plane,
)
from failover_drill.platforms.kind.commands import AnyStep, ApiStep, KubeFor, Runner, Step
from failover_drill.platforms.kind.workload import EDGE_SECRET
from failover_drill.platforms.pki import Issued, MeshCA
from failover_drill.toolchain.pins import load_pins

ISTIO_VERSION = "1.24.1"
# 1.17 is the first Cilium with MCS-API support (clustermesh.enableMCSAPISupport; deprecated in
# 1.19 for clustermesh.mcsapi.enabled, removed in 1.20): 1.16.4 had no such value.
CILIUM_VERSION = "1.17.6"
# cilium-cli v0.16 is the first release line maintained for Cilium 1.15 and newer (its README).
CILIUM_CLI_MIN = "0.16.0"
METALLB_VERSION = "0.14.8"
METALLB_MANIFEST = (
    f"https://raw.githubusercontent.com/metallb/metallb/v{METALLB_VERSION}/config/manifests/metallb-native.yaml"
)
MESH_ID = "failover-drill"
# Nothing rotates the edge certificate on kind: long enough for any fleet's life, short of the intermediate's.
EDGE_CERT_DAYS = 30


@dataclass(frozen=True)
class Image:
    """An image the mesh runs, as its pinned release names it: repository, tag and, where the
    release pins one, the digest of the image (its multi-platform index) that tag stood for."""

    repository: str
    tag: str
    digest: str | None = None

    @property
    def ref(self) -> str:
        """By tag: how the clusters refer to it once `kind load`ed (a digest reference would not
        find an imported image, whose manifest is not the registry's)."""
        return f"{self.repository}:{self.tag}"


# Cilium 1.17.6's Helm chart (values.yaml of cilium-1.17.6.tgz as published to helm.cilium.io, from
# v1.17.6 = cilium/cilium@ee3ca4a7e998): each image's repository, tag and digest. The agent (and its
# init containers), the generic operator and clustermesh-apiserver (also its etcd and kvstoremesh
# containers) carry the release's tag; the standalone Envoy DaemonSet (on for new installs) and
# certgen are versioned apart. certgen runs the clustermesh-apiserver-generate-certs Job and
# CronJob, since `cilium clustermesh enable` sets clustermesh.apiserver.tls.auto.method=cronJob.
# Hubble's relay and UI are off (the chart's default), so their images are not needed.
CILIUM_IMAGES = {
    "agent": Image(
        "quay.io/cilium/cilium",
        f"v{CILIUM_VERSION}",
        "sha256:544de3d4fed7acba72758413812780a4972d47c39035f2a06d6145d8644a3353",
    ),
    # The chart's repository is quay.io/cilium/operator; it appends -generic (no cloud IPAM here).
    "operator": Image(
        "quay.io/cilium/operator-generic",
        f"v{CILIUM_VERSION}",
        "sha256:91ac3bf7be7bed30e90218f219d4f3062a63377689ee7246062fa0cc3839d096",
    ),
    "clustermesh-apiserver": Image(
        "quay.io/cilium/clustermesh-apiserver",
        f"v{CILIUM_VERSION}",
        "sha256:f619e97432db427e1511bf91af3be8ded418c53a353a09629e04c5880659d1df",
    ),
    "envoy": Image(
        "quay.io/cilium/cilium-envoy",
        "v1.33.4-1752151664-7c2edb0b44cf95f326d628b837fcdd845102ba68",
        "sha256:318eff387835ca2717baab42a84f35a83a5f9e7d519253df87269f80b9ff0171",
    ),
    "certgen": Image(
        "quay.io/cilium/certgen",
        "v0.2.1",
        "sha256:ab6b1928e9c5f424f6b0f51c68065b9fd85e2f8d3e5f21fbd1a3cb27e6fb9321",
    ),
}


def mesh_images(mesh: str) -> list[Image]:
    """Every image the mesh runs on a node or in a cluster, named as its pinned release names it,
    so `up` pulls each once on the host and `kind load`s it into each cluster instead of every
    node pulling it from a public registry (rate limits). Istio's default profile runs pilot
    (istiod) and proxyv2 (gateways, sidecars and their init containers), and MetalLB's manifest its
    controller and a speaker per node, all named by tag; Cilium's chart names each of its images
    by tag and digest (CILIUM_IMAGES)."""
    if mesh.startswith("cilium"):
        return list(CILIUM_IMAGES.values())
    return [
        Image("docker.io/istio/pilot", ISTIO_VERSION),
        Image("docker.io/istio/proxyv2", ISTIO_VERSION),
        Image("quay.io/metallb/controller", f"v{METALLB_VERSION}"),
        Image("quay.io/metallb/speaker", f"v{METALLB_VERSION}"),
    ]


def pull_steps(images: list[Image]) -> list[Step]:
    """Pull each image once on the host, under the name the clusters use (its tag). An image whose
    release pins a digest is pulled by that digest, so the host gets what the chart was released
    with even if the tag moved since, and tagged as the chart names it."""
    steps = []
    for image in images:
        if image.digest is None:
            steps.append(
                Step(f"pull {image.ref} once on the host", ("docker", "pull", image.ref), timeout_s=900, attempts=3)
            )
            continue
        pinned = f"{image.repository}@{image.digest}"
        steps += [
            Step(
                f"pull {image.ref} once on the host (by its pinned digest)",
                ("docker", "pull", pinned),
                timeout_s=900,
                attempts=3,
            ),
            Step(
                f"name it {image.ref}, as the clusters refer to it", ("docker", "tag", pinned, image.ref), timeout_s=30
            ),
        ]
    return steps


def mcs_crd_urls() -> list[str]:
    """The MCS API CRDs at the version pinned in the toolchain (the tests' API servers get the same
    files from that module's source): GitHub serves the tag's files without go."""
    src = load_pins().crd_source("mcs-api")
    return [f"https://raw.githubusercontent.com/kubernetes-sigs/mcs-api/{src.version}/{f}" for f in src.files]


def node_ip_step(node: str) -> Step:
    return Step(
        f"read the kind-network address of {node}",
        ("docker", "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", node),
        timeout_s=30,
    )


# -- Istio -------------------------------------------------------------------------------------


def cacerts_secret(ca: MeshCA, region: str) -> dict[str, Any]:
    """Istio's plug-in CA secret: the region's intermediate signs workload certs, one root for all."""
    cert, key = ca.intermediate_pem(region)
    root = ca.root_pem().decode()
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "cacerts", "namespace": "istio-system"},
        "type": "Opaque",
        "stringData": {
            "ca-cert.pem": cert,
            "ca-key.pem": key,
            "root-cert.pem": root,
            "cert-chain.pem": cert + root,
        },
    }


def edge_secret(leaf: Issued) -> dict[str, Any]:
    """The ingress gateway's serving certificate (Gateway credentialName): istiod pushes a changed
    secret to the gateway over SDS, so replacing it is how a certificate fault reaches the edge."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": EDGE_SECRET, "namespace": "istio-system"},
        "type": "kubernetes.io/tls",
        "stringData": {"tls.crt": leaf.cert_pem.decode(), "tls.key": leaf.key_pem.decode()},
    }


def edge_leaf(ca: MeshCA, region: str) -> Issued:
    return ca.issue_leaf(region, valid_for=dt.timedelta(days=EDGE_CERT_DAYS))


def istio_operator(topo: Topology, n: ClusterNames) -> dict[str, Any]:
    zones = len(topo.region(n.region).zones)
    spread_by_zone = {
        "podAntiAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": [
                {
                    "labelSelector": {"matchLabels": {"istio": "ingressgateway"}},
                    "topologyKey": "topology.kubernetes.io/zone",
                }
            ]
        }
    }
    return {
        "apiVersion": "install.istio.io/v1alpha1",
        "kind": "IstioOperator",
        "spec": {
            "values": {
                "global": {
                    "meshID": MESH_ID,
                    "multiCluster": {"clusterName": n.region},
                    "network": n.network,
                }
            },
            "components": {
                # istiod and the east-west gateway on the zone-less control-plane node: on a random
                # zone worker a zone loss took the region's mesh control plane (or its cross-network
                # entry) with it one time in three, and TTR varied between runs.
                "pilot": {"k8s": on_control_plane()},
                "ingressGateways": [
                    {
                        # One ingress pod per zone: a zone loss must not take the region's entry with it.
                        "name": "istio-ingressgateway",
                        "enabled": True,
                        "k8s": {
                            "replicaCount": zones,
                            "affinity": spread_by_zone,
                            "service": {
                                "type": "NodePort",
                                "ports": [
                                    {"name": "status-port", "port": 15021, "targetPort": 15021},
                                    {"name": "https", "port": 443, "targetPort": 8443, "nodePort": INGRESS_NODE_PORT},
                                ],
                            },
                        },
                    },
                    {
                        "name": "istio-eastwestgateway",
                        "enabled": True,
                        "label": {
                            "istio": "eastwestgateway",
                            "app": "istio-eastwestgateway",
                            "topology.istio.io/network": n.network,
                        },
                        "k8s": {
                            **on_control_plane(),
                            "env": [{"name": "ISTIO_META_REQUESTED_NETWORK_VIEW", "value": n.network}],
                            "service": {
                                "type": "LoadBalancer",
                                "ports": [
                                    {"name": "status-port", "port": 15021, "targetPort": 15021},
                                    {"name": "tls", "port": 15443, "targetPort": 15443},
                                    {"name": "tls-istiod", "port": 15012, "targetPort": 15012},
                                    {"name": "tls-webhook", "port": 15017, "targetPort": 15017},
                                ],
                            },
                        },
                    },
                ],
            },
        },
    }


def eastwest_gateway() -> dict[str, Any]:
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "Gateway",
        "metadata": {"name": "cross-network-gateway", "namespace": "istio-system"},
        "spec": {
            "selector": {"istio": "eastwestgateway"},
            "servers": [
                {
                    "port": {"number": 15443, "name": "tls", "protocol": "TLS"},
                    "tls": {"mode": "AUTO_PASSTHROUGH"},
                    "hosts": ["*.local"],
                }
            ],
        },
    }


def metallb_block(kind_subnets: str, index: int) -> ipaddress.IPv4Network:
    """Cluster `index`'s /28 from the top of the kind Docker network, away from node addresses:
    its MetalLB pool, where its east-west gateway's LoadBalancer address comes from."""
    v4 = [ipaddress.IPv4Network(s.strip(), strict=False) for s in kind_subnets.split() if "." in s]
    if not v4:
        raise PlatformError(
            f"the Docker network 'kind' has no IPv4 subnet ({kind_subnets.strip()!r})",
            hint="recreate it: docker network rm kind (kind recreates it with IPv4)",
        )
    net = v4[0]
    blocks = list(net.subnets(new_prefix=28)) if net.prefixlen <= 24 else []
    if len(blocks) < index + 2:
        raise PlatformError(f"the kind network {net} is too small for a MetalLB pool per cluster")
    return blocks[-(index + 1)]


def metallb_pool(kind_subnets: str, index: int) -> list[dict[str, Any]]:
    """A /28 per cluster from the top of the kind Docker network, away from node addresses."""
    hosts = list(metallb_block(kind_subnets, index).hosts())
    return [
        {
            "apiVersion": "metallb.io/v1beta1",
            "kind": "IPAddressPool",
            "metadata": {"name": "failover-drill", "namespace": "metallb-system"},
            "spec": {"addresses": [f"{hosts[0]}-{hosts[-1]}"]},
        },
        {
            "apiVersion": "metallb.io/v1beta1",
            "kind": "L2Advertisement",
            "metadata": {"name": "failover-drill", "namespace": "metallb-system"},
            "spec": {"ipAddressPools": ["failover-drill"]},
        },
    ]


def istio_steps(topo: Topology, state: Path, run: Runner) -> list[AnyStep]:
    """Steps to install Istio multi-primary; `run` answers the queries (addresses) in between."""
    all_names = names(topo)
    ca = MeshCA(state / "pki")
    if not (state / "pki" / "root-cert.pem").exists():
        ca.create(list(all_names))
    steps: list[AnyStep] = []
    subnets = run.run(
        Step(
            "read the kind Docker network's subnets",
            ("docker", "network", "inspect", "kind", "-f", "{{range .IPAM.Config}}{{.Subnet}} {{end}}"),
            timeout_s=30,
        )
    )
    for n in all_names.values():
        ctx = n.context
        op_file = state / f"istio-{n.region}.yaml"
        op_file.parent.mkdir(parents=True, exist_ok=True)
        op_file.write_text(yaml.safe_dump(istio_operator(topo, n), sort_keys=False))
        steps += [
            api.apply_urls(ctx, f"{n.region}: install MetalLB", [METALLB_MANIFEST]),
            api.wait_pods_ready(ctx, f"{n.region}: wait for MetalLB", "metallb-system", "app=metallb", 180),
            apply(ctx, f"{n.region}: MetalLB address pool", metallb_pool(subnets, n.index)),
            apply(
                ctx,
                f"{n.region}: istio-system with the shared root CA (cacerts)",
                [
                    {
                        "apiVersion": "v1",
                        "kind": "Namespace",
                        "metadata": {"name": "istio-system", "labels": {"topology.istio.io/network": n.network}},
                    },
                    cacerts_secret(ca, n.region),
                ],
            ),
            Step(
                f"{n.region}: install Istio {ISTIO_VERSION} (meshID {MESH_ID}, network {n.network})",
                ("istioctl", "install", "-y", "--context", ctx, "-f", str(op_file)),
                timeout_s=600,
                attempts=2,
            ),
            apply(ctx, f"{n.region}: east-west gateway (15443 AUTO_PASSTHROUGH)", [eastwest_gateway()]),
            apply(
                ctx,
                f"{n.region}: the ingress gateway's certificate ({EDGE_SECRET})",
                [edge_secret(edge_leaf(ca, n.region))],
            ),
        ]
    # Remote secrets: every istiod watches every other API server, at its kind-network address.
    cp_ip = {n.region: run.run(node_ip_step(n.control_plane)).strip() for n in all_names.values()}
    for a, b in ((a, b) for a in all_names.values() for b in all_names.values() if a != b):
        steps.append(remote_secret_step(a, b, cp_ip[a.region]))
    return steps


def remote_secret_step(a: ClusterNames, b: ClusterNames, a_server_ip: str, why: str = "") -> AnyStep:
    """b's istiod watches a's API server at its kind-network address (not 127.0.0.1)."""
    return api.apply_output_of(
        b.context,
        f"{b.region} discovers endpoints in {a.region} (remote secret{why})",
        (
            "istioctl",
            "create-remote-secret",
            "--context",
            a.context,
            "--name",
            a.region,
            "--server",
            f"https://{a_server_ip}:{API_SERVER_PORT}",
        ),
    )


def connect_step(a: ClusterNames, b: ClusterNames, why: str = "") -> Step:
    return Step(
        f"connect {a.region} <-> {b.region}{why}",
        ("cilium", "clustermesh", "connect", "--context", a.context, "--destination-context", b.context),
        timeout_s=300,
        attempts=2,
    )


def repair_moved_steps(topo: Topology, moved: dict[str, str]) -> list[AnyStep]:
    """Restarted node containers that came back at other addresses (moved: node -> new address)
    leave the other clusters pointing at the old ones: Istio's remote secrets name the control
    plane's address, Cilium's Cluster Mesh configuration the clustermesh-apiserver's node addresses.
    The secrets of a moved control plane are made again with its new address; a Cilium region
    with a moved node is connected again with every other region."""
    all_names = names(topo)
    regions = [n for n in all_names.values() if any(node in moved for node in all_nodes(topo, n.region))]
    steps: list[AnyStep] = []
    connected: set[frozenset[str]] = set()
    for a in regions:
        for b in (b for b in all_names.values() if b is not a):
            if topo.mesh.startswith("cilium"):
                if frozenset((a.region, b.region)) not in connected:
                    connected.add(frozenset((a.region, b.region)))
                    steps.append(connect_step(a, b, f", {a.region}'s nodes moved"))
            elif a.control_plane in moved:
                steps.append(remote_secret_step(a, b, moved[a.control_plane], f", {a.control_plane} moved"))
    return steps


# -- Cilium ------------------------------------------------------------------------------------


def cilium_values() -> dict[str, Any]:
    """Helm values beside the --set ones (which plans show): clustermesh-apiserver on the zone-less
    control-plane node, so a zone loss does not take the region's Cluster Mesh endpoint with it;
    and every image of the chart's that `up` loads into each cluster (CILIUM_IMAGES) named by the
    same repository and tag, not by digest: the chart names them tag@digest by default, and a
    digest reference does not find an image that `kind load` imported (its manifest is not the
    registry's), so every node would pull it again. Naming each one here from the same records
    the pull and load steps use keeps what the pods ask for and what was loaded from drifting
    apart. The operator's repository is the chart's, which appends -generic to it."""

    def by_tag(component: str, repository: bool = True) -> dict[str, Any]:
        image = CILIUM_IMAGES[component]
        named = {"repository": image.repository} if repository else {}
        return {"image": {**named, "tag": image.tag, "useDigest": False}}

    return {
        **by_tag("agent"),
        "operator": by_tag("operator", repository=False),
        "envoy": by_tag("envoy"),
        "certgen": by_tag("certgen"),
        "clustermesh": {"apiserver": {**on_control_plane(), **by_tag("clustermesh-apiserver")}},
    }


# The Helm release cilium-cli installs Cilium as (kube-system); Helm keeps each revision of it in a
# Secret labelled owner=helm, name=<release>, status and version (the revision).
CILIUM_RELEASE = "cilium"
HELM_RELEASE_SELECTOR = f"owner=helm,name={CILIUM_RELEASE}"


def helm_release_state(secrets: list[dict[str, Any]]) -> str:
    """`<status> <chart version> <revision>` of a Helm release's newest revision, from the Secrets
    Helm stores its revisions in; "" when there is none. The chart version is read from the
    revision's record (base64 of gzipped JSON, base64 again as Secret data); "?" when unreadable."""
    revisions = [s for s in secrets if ((s.get("metadata") or {}).get("labels") or {}).get("version", "").isdigit()]
    if not revisions:
        return ""
    newest = max(revisions, key=lambda s: int(s["metadata"]["labels"]["version"]))
    labels = newest["metadata"]["labels"]
    chart = "?"
    try:
        record = gzip.decompress(base64.b64decode(base64.b64decode((newest.get("data") or {})["release"])))
        chart = str(json.loads(record)["chart"]["metadata"]["version"])
    except (KeyError, TypeError, ValueError, OSError):
        pass
    return f"{labels.get('status', 'unknown')} {chart} {labels['version']}\n"


def cilium_release_step(n: ClusterNames) -> ApiStep:
    """Whether Cilium's Helm release exists in the cluster already (a second `up`), and in what state."""

    def call(kube_for: KubeFor, _: str | None) -> str:
        return helm_release_state(
            kube_for(n.context).list_objects("v1", "Secret", "kube-system", label_selector=HELM_RELEASE_SELECTOR)
        )

    # kubectl shows each revision's status and number; the call also reads the newest one's chart version.
    fmt = 'jsonpath={range .items[*]}{.metadata.labels.status} {.metadata.labels.version}{"\\n"}{end}'
    argv = kubectl(n.context, "-n", "kube-system", "get", "secrets", "-l", HELM_RELEASE_SELECTOR, "-o", fmt)
    return ApiStep(
        f"{n.region}: is Cilium installed already (its Helm release)", n.context, argv, call, timeout_s=30, attempts=3
    )


def cilium_install_steps(n: ClusterNames, values: Path, run: Runner) -> list[Step]:
    """Install Cilium in the region's cluster, or, where its Helm release exists already (a second
    `up` after a stop: `cilium install` refuses a release that exists), upgrade it in place to the
    same version with the same values. --reuse-values keeps what `clustermesh enable` and
    `clustermesh connect` added to the release (they run again after, and merge: enable upgrades
    with the values reused, connect sets each remote cluster by name). An install that never
    finished (pending-install) is uninstalled and made again; any other operation left pending
    is refused, with how to end it."""
    settings = (
        "--version",
        CILIUM_VERSION,
        "--set",
        f"cluster.name={n.region}",
        "--set",
        f"cluster.id={n.index}",
        "--set",
        "ipam.mode=kubernetes",
        # kind runs without kube-proxy here (cluster_config): Cilium serves every Service,
        # reaching the API server directly, not through the kubernetes Service.
        "--set",
        "kubeProxyReplacement=true",
        "--set",
        f"k8sServiceHost={n.control_plane}",
        "--set",
        f"k8sServicePort={API_SERVER_PORT}",
        "--set",
        "clustermesh.enableMCSAPISupport=true",
        "--set",
        f"clustermesh.apiserver.service.nodePort={n.clustermesh_node_port}",
        "--values",
        str(values),
    )
    install = Step(
        f"{n.region}: install Cilium {CILIUM_VERSION} (cluster.id {n.index})",
        ("cilium", "install", "--context", n.context, *settings),
        timeout_s=600,
    )
    found = run.run(cilium_release_step(n)).split()
    # Nothing there (a plan shows the fresh fleet's install), or a release uninstalled with its history kept.
    if len(found) != 3 or found[0] == "uninstalled":
        return [install]
    status, chart, revision = found
    if status == "pending-install":
        return [
            Step(
                f"{n.region}: remove the Cilium install that never finished (revision {revision}, pending-install)",
                ("cilium", "uninstall", "--context", n.context, "--wait"),
                timeout_s=600,
            ),
            install,
        ]
    if status.startswith("pending-") or status == "uninstalling":
        raise PlatformError(
            f"{n.context}: Cilium's Helm release is {status} (revision {revision}): an operation on it never finished",
            hint=f"end it (`helm rollback {CILIUM_RELEASE} -n kube-system --kube-context {n.context}`, or "
            f"`cilium uninstall --context {n.context}`), then run `failover-drill up --platform kind` again",
        )
    return [
        Step(
            f"{n.region}: Cilium is installed already (chart {chart}, {status}): upgrade it in place to "
            f"{CILIUM_VERSION} with the same values (cluster.id {n.index})",
            ("cilium", "upgrade", "--context", n.context, *settings, "--reuse-values"),
            timeout_s=600,
        )
    ]


def cilium_steps(topo: Topology, state: Path, run: Runner) -> Iterator[AnyStep]:
    """Cilium in every cluster and Cluster Mesh across them, each step safe to repeat: a generator,
    so whether Cilium is there already is asked when its turn comes."""
    all_names = list(names(topo).values())
    first = all_names[0]
    values = state / "cilium-values.yaml"
    values.parent.mkdir(parents=True, exist_ok=True)
    values.write_text(yaml.safe_dump(cilium_values(), sort_keys=False))
    for n in all_names:
        if n is not first:
            # Cluster Mesh needs one CA: copy the first cluster's before Cilium generates its own.
            yield api.copy_secret(
                first.context,
                n.context,
                "kube-system",
                "cilium-ca",
                f"{n.region}: share {first.region}'s cilium-ca",
            )
        yield from cilium_install_steps(n, values, run)
        after: list[AnyStep] = [
            Step(f"{n.region}: wait for Cilium", ("cilium", "status", "--context", n.context, "--wait"), timeout_s=600),
            # kind created the nodes without waiting (no CNI until now): they turn Ready here.
            api.wait_nodes_ready(
                n.context, f"{n.region}: wait for every node Ready", 1 + len(topo.region(n.region).zones)
            ),
            # Safe to repeat: a Helm upgrade of the release with its values reused and the same
            # clustermesh values set again.
            Step(
                f"{n.region}: enable Cluster Mesh",
                ("cilium", "clustermesh", "enable", "--context", n.context, "--service-type", "NodePort"),
                timeout_s=300,
            ),
            Step(
                f"{n.region}: wait for the clustermesh-apiserver",
                ("cilium", "clustermesh", "status", "--context", n.context, "--wait"),
                timeout_s=600,
            ),
        ]
        yield from after
    # Safe to repeat: connect reads each release's clustermesh.config.clusters and sets the other
    # cluster's entry by name (replaced, not appended), then upgrades with those values.
    for a, b in combinations(all_names, 2):
        yield connect_step(a, b)


# -- every cluster sees the others ------------------------------------------------------------------
ISTIO_SYNC_ATTEMPTS = 30  # 2, 4, ... 10 s apart: about 5 minutes


def remote_clusters_synced(expected: list[str]) -> Callable[[str], str | None]:
    """Reads `istioctl remote-clusters` (NAME SECRET STATUS ISTIOD [REVISION], the local cluster
    with no secret): None once every expected cluster is `synced` at every istiod listed."""

    def check(out: str) -> str | None:
        status: dict[str, set[str]] = {}
        for line in out.splitlines()[1:]:
            tokens = line.split()
            if tokens:
                known = [t for t in tokens[1:] if t in {"synced", "syncing", "timeout", "closed", "failed"}]
                status.setdefault(tokens[0], set()).add(known[0] if known else "unknown")
        late = [f"{c} ({'/'.join(sorted(status.get(c, {'absent'})))})" for c in expected if status.get(c) != {"synced"}]
        return f"not synced yet: {', '.join(late)}" if late else None

    return check


def remote_sync_steps(topo: Topology) -> list[Step]:
    """On every context, wait until its mesh control plane sees every other cluster: istiod has
    synced each remote secret (`istioctl remote-clusters`, istiod's debug/clusterz), or every Cilium
    agent is connected to every remote cluster (`cilium clustermesh status --wait`). Run at the end
    of `up` and before each drill's baseline, which otherwise measured a mesh still discovering."""
    all_names = list(names(topo).values())
    steps = []
    for n in all_names:
        others = [o.region for o in all_names if o is not n]
        if topo.mesh.startswith("cilium"):
            steps.append(
                Step(
                    f"{n.region}: wait until every Cilium agent is connected to {', '.join(others)}",
                    ("cilium", "clustermesh", "status", "--context", n.context, "--wait"),
                    timeout_s=600,
                )
            )
        else:
            steps.append(
                Step(
                    f"{n.region}: wait until istiod has synced {', '.join(others)}",
                    ("istioctl", "remote-clusters", "--context", n.context),
                    timeout_s=60,
                    attempts=ISTIO_SYNC_ATTEMPTS,
                    until=remote_clusters_synced(others),
                )
            )
    return steps


def mcs_crd_steps(topo: Topology) -> list[AnyStep]:
    urls = mcs_crd_urls()
    return [api.apply_urls(n.context, f"{n.region}: MCS API CRDs", urls) for n in names(topo).values()]
