"""The kind platform's Kubernetes API operations against a real API server.

Docker and kind cannot run here, but the kind platform's API work (server-side applies, rollout
waits, scaling, secret replacement, pod listings) goes through the kube layer, which talks to any
API server. A real control plane from the kwok platform (etcd, kube-apiserver, controller manager,
scheduler, kwok playing one node per zone) stands in for the region's kind cluster under the
context name kind gives it (`kind-fd-us-east1`), with the Istio and MCS CRDs from the pinned
sources. The kind platform's own steps run against it; commands with no API (docker, tc,
istioctl) stay recorded, not run. Exec into the pods (their fault switches, the traffic workers'
start files) is the one kube-layer call answered by a stand-in, PodsBehindDocker: a kind pod's
container runs under Docker, behind the boundary (Kube.exec itself runs against a real API server
and kwok in test_kube_exec.py). kwok plays the zones' nodes; the region's
control-plane node, where in-region traffic Jobs run, is played by the tests themselves (its pods
set Running or Failed, and its kubelet's log endpoint served), so the API server's own pods/log
stream and the garbage collector's work on a deleted Job are what the kind platform meets.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509

from failover_drill import toolchain
from failover_drill.config.topology import Topology
from failover_drill.errors import PlatformError
from failover_drill.faults.model import Fault, parse_fault
from failover_drill.platforms.kind.cluster_config import names
from failover_drill.platforms.kind.commands import AnyStep, ApiStep, RecordingRunner, Step, run_step
from failover_drill.platforms.kind.platform import KindPlatform
from failover_drill.platforms.kind.workload import EDGE_SECRET
from failover_drill.platforms.kube.client import ExecResult, Kube, KubeContexts
from failover_drill.platforms.kube.workload import APP, NAMESPACE
from failover_drill.platforms.kwok import ControlPlane
from tests.conftest import topology
from tests.control_planes import NEEDS_GO, REGION, started_plane, until
from tests.test_kind import PodsBehindDocker, node_answers

pytestmark = NEEDS_GO

ARGO_NS = "argo-rollouts"
NODE_CAPACITY = {"cpu": "1k", "memory": "1Ti", "pods": "1M", "ephemeral-storage": "1Ti"}


@dataclass
class Cluster:
    """us-east1's "kind cluster": a real API server reached by kind's context name."""

    topo: Topology
    kubeconfig: Path
    kubes: KubeContexts
    state: Path

    @property
    def context(self) -> str:
        return names(self.topo)[REGION].context

    @property
    def kube(self) -> Kube:
        return self.kubes(self.context)

    def platform(self) -> tuple[KindPlatform, RecordingRunner]:
        """The kind platform as `drill` opens it: API steps run on this cluster, commands recorded,
        exec into the pods answered by PodsBehindDocker (rec.kubes)."""
        rec = RecordingRunner(kubes=PodsBehindDocker(self.kubes))
        return KindPlatform(self.state, self.topo, runner=rec, kubeconfig=self.kubeconfig), rec


@pytest.fixture(scope="module")
def plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    # kwok plays the zones' nodes (labelled type=kwok); the control-plane node is the tests' to play.
    yield from started_plane(tmp_path_factory, "kwok-cp", pod_cidr="10.244.0.0/16", kwok_node_selector="type=kwok")


@pytest.fixture(scope="module")
def cluster(plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    topo = topology("istio")
    ctx = names(topo)[REGION].context
    # The control plane's kubeconfig with its context named as kind names the region's cluster's.
    cfg = yaml.safe_load(plane.kubeconfig.read_text())
    for c in cfg["contexts"]:
        c["name"] = ctx
    cfg["current-context"] = ctx
    home = tmp_path_factory.mktemp("kind-kube")
    kubeconfig = home / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump(cfg))
    kubeconfig.chmod(0o600)
    kubes = KubeContexts(kubeconfig)
    kube = kubes(ctx)
    # What `up` gets from MCS's release and `istioctl install`: the CRDs, here from the pinned sources.
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    crds = [
        doc
        for path in toolchain.crd_files(["istio", "mcs-api"])
        for doc in yaml.load_all(path.read_text(), Loader=loader)
        if doc and doc.get("kind") == "CustomResourceDefinition"
    ]
    kube.apply(crds)
    kube.wait_crds([c["metadata"]["name"] for c in crds])
    # What `up` applies from Argo Rollouts' release URL: the same install.yaml from the pinned source,
    # whose namespaced objects name no namespace (`kubectl apply -n argo-rollouts`).
    (install,) = toolchain.component_files("rollouts-controller")
    argo = [d for d in yaml.load_all(install.read_text(), Loader=loader) if d]
    kube.apply([{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ARGO_NS}}])
    kube.apply(argo, namespace=ARGO_NS)
    kube.wait_crds([d["metadata"]["name"] for d in argo if d["kind"] == "CustomResourceDefinition"])
    # One node per zone, labelled as the kind config labels each zone's worker; kwok plays them.
    kube.apply(
        [
            {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {
                    "name": f"kwok-{zone}",
                    "labels": {
                        "topology.kubernetes.io/region": REGION,
                        "topology.kubernetes.io/zone": zone,
                        "type": "kwok",
                    },
                    "annotations": {"kwok.x-k8s.io/node": "fake"},
                },
                # What a kind node reports (kwok keeps a status given at registration): the Argo
                # Rollouts controller asks for ephemeral-storage, which kwok's default leaves out.
                "status": {"capacity": NODE_CAPACITY, "allocatable": NODE_CAPACITY},
            }
            for zone in topo.region(REGION).zone_names()
        ]
    )
    try:
        yield Cluster(topo, kubeconfig, kubes, home / "state")
    finally:
        kubes.close()


def _api_steps_of_up(c: Cluster) -> list[ApiStep]:
    """The API steps `up` makes in us-east1, in order, as `up_steps` yields them. Left out: those
    that download published manifests (MetalLB's release; the MCS CRDs and Argo Rollouts' release,
    installed above from the pinned sources instead), MetalLB's pool and wait (no MetalLB here) and
    the remote secrets (their input is istioctl's output)."""
    rec = RecordingRunner(answers=node_answers(c.topo))
    platform = KindPlatform(c.state, c.topo, runner=rec)
    steps: list[AnyStep] = rec.record(platform.up_steps(rec))
    return [
        s
        for s in steps
        if isinstance(s, ApiStep)
        and s.context == c.context
        and s.pipe_from is None
        and not any(a.startswith("https://") for a in s.argv)
        and "metallb" not in s.shell().lower()
    ]


@pytest.fixture(scope="module")
def up_applied(cluster: Cluster) -> list[ApiStep]:
    steps = _api_steps_of_up(cluster)
    for step in steps:
        run_step(step, cluster.kubes)
    return steps


def F(**fields: Any) -> Fault:
    return parse_fault(fields)


def _secret_chain(kube: Kube) -> tuple[dict[str, Any], list[x509.Certificate]]:
    secret = kube.get("v1", "Secret", EDGE_SECRET, "istio-system")
    assert secret is not None
    pem = base64.b64decode(secret["data"]["tls.crt"])
    return secret, x509.load_pem_x509_certificates(pem)


def test_up_applies_the_regions_objects_and_waits_for_every_zone(cluster: Cluster, up_applied: list[ApiStep]) -> None:
    titles = [s.title for s in up_applied]
    assert f"{REGION}: payment-gateway (istio)" in titles
    assert any("cacerts" in t for t in titles) and any(EDGE_SECRET in t for t in titles)
    waits = [s for s in up_applied if "rollout" in s.argv]
    # one per zone and the Argo Rollouts controller's, and each returned: completed on the API server
    assert len(waits) == 4
    kube = cluster.kube
    # the region's workload (kube/workload.py) and the kind ingress (kind/workload.py), as the API server holds them
    for api_version, kind, name in [
        ("v1", "Service", APP),
        ("multicluster.x-k8s.io/v1alpha1", "ServiceExport", APP),
        ("networking.istio.io/v1", "DestinationRule", APP),
        ("security.istio.io/v1", "PeerAuthentication", "default"),
        ("networking.istio.io/v1", "Gateway", APP),
        ("networking.istio.io/v1", "VirtualService", f"{APP}-ingress"),
    ]:
        assert kube.get(api_version, kind, name, NAMESPACE) is not None, (kind, name)
    gateway = kube.get("networking.istio.io/v1", "Gateway", APP, NAMESPACE)
    assert gateway is not None and gateway["spec"]["servers"][0]["tls"]["credentialName"] == EDGE_SECRET
    for zone in cluster.topo.region(REGION).zone_names():
        d = kube.get("apps/v1", "Deployment", f"{APP}-{zone.removeprefix(REGION + '-')}", NAMESPACE)
        assert d is not None and d["spec"]["template"]["spec"]["nodeSelector"] == {"topology.kubernetes.io/zone": zone}
        assert d["status"]["availableReplicas"] == cluster.topo.replicas_per_zone
        pods = kube.list_objects("v1", "Pod", NAMESPACE, label_selector=f"app={APP},zone={zone}")
        assert {p["spec"]["nodeName"] for p in pods} == {f"kwok-{zone}"}
    # the shared root CA and the ingress certificate, stored from stringData
    cacerts = kube.get("v1", "Secret", "cacerts", "istio-system")
    assert cacerts is not None and set(cacerts["data"]) == {
        "ca-cert.pem",
        "ca-key.pem",
        "root-cert.pem",
        "cert-chain.pem",
    }
    _, (leaf, _inter) = _secret_chain(kube)
    assert leaf.not_valid_after_utc > dt.datetime.now(dt.UTC) + dt.timedelta(days=7)
    # Argo Rollouts: install.yaml's namespaced objects landed in argo-rollouts (cluster-scoped ones
    # stayed cluster-scoped), `up` waited for the controller, and the repo's AnalysisTemplates were
    # accepted by the release's CRD schema beside the workload.
    assert f"{REGION}: wait for the Argo Rollouts controller" in titles
    controller = kube.get("apps/v1", "Deployment", "argo-rollouts", ARGO_NS)
    assert controller is not None and controller["status"].get("availableReplicas") == 1
    assert kube.get("v1", "ServiceAccount", "argo-rollouts", ARGO_NS) is not None
    assert kube.get("rbac.authorization.k8s.io/v1", "ClusterRole", "argo-rollouts") is not None
    templates = kube.list_objects("argoproj.io/v1alpha1", "AnalysisTemplate", NAMESPACE)
    assert sorted(t["metadata"]["name"] for t in templates) == [
        "payment-gateway-canary-prometheus",
        "payment-gateway-canary-web",
    ]
    # a second `up` re-applies the same objects without a conflict (server-side apply)
    for step in up_applied:
        if "apply" in step.argv:
            run_step(step, cluster.kubes)


def test_a_refused_object_is_named_with_the_api_servers_reason(cluster: Cluster, up_applied: list[ApiStep]) -> None:
    from failover_drill.errors import PlatformError
    from failover_drill.platforms.kind import api

    bad = {
        "apiVersion": "networking.istio.io/v1",
        "kind": "DestinationRule",
        "metadata": {"name": "broken", "namespace": NAMESPACE},
        "spec": {"host": "x", "trafficPolicy": {"outlierDetection": {"consecutive5xxErrors": "five"}}},
    }
    step = api.apply(cluster.context, "a broken rule", [bad], attempts=1)
    with pytest.raises(PlatformError) as err:
        run_step(step, cluster.kubes)
    assert "DestinationRule payments/broken" in str(err.value) and "consecutive5xxErrors" in str(err.value)
    assert cluster.kube.get("networking.istio.io/v1", "DestinationRule", "broken", NAMESPACE) is None


def test_control_plane_loss_scales_istiod_to_zero_and_back(cluster: Cluster, up_applied: list[ApiStep]) -> None:
    kube = cluster.kube
    labels = {"app": "istiod"}
    kube.apply(
        [
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": "istiod", "namespace": "istio-system"},
                "spec": {
                    "replicas": 1,
                    "selector": {"matchLabels": labels},
                    "template": {
                        "metadata": {"labels": labels},
                        "spec": {"containers": [{"name": "discovery", "image": "istio/pilot:1.24.1"}]},
                    },
                },
            }
        ]
    )
    kube.wait_rollout("istiod", "istio-system", timeout_s=60)

    def istiod_pods() -> list[dict[str, Any]]:
        return kube.list_objects("v1", "Pod", "istio-system", label_selector="app=istiod")

    assert len(istiod_pods()) == 1
    platform, rec = cluster.platform()
    fault = F(kind="control-plane-loss", target=REGION)
    data = platform.inject(fault, platform.plan_fault(fault))
    istiod = kube.get("apps/v1", "Deployment", "istiod", "istio-system")
    assert istiod is not None and istiod["spec"]["replicas"] == 0
    until("istiod's pod removed by the real controllers", lambda: not istiod_pods())
    platform.revert(fault, data)
    istiod = kube.get("apps/v1", "Deployment", "istiod", "istio-system")
    assert istiod is not None and istiod["spec"]["replicas"] == 1
    kube.wait_rollout("istiod", "istio-system", timeout_s=60)
    assert len(istiod_pods()) == 1
    # no command ran: both were API operations, shown as their kubectl equivalents
    assert [s.argv[-1] for s in rec.steps] == ["--replicas=0", "--replicas=1"]
    assert all(isinstance(s, ApiStep) for s in rec.steps)


@pytest.mark.parametrize("variant", ["leaf", "intermediate", "rotation-stopped"])
def test_cert_expiry_replaces_the_edge_secret_and_revert_renews_it(
    cluster: Cluster, up_applied: list[ApiStep], variant: str
) -> None:
    kube = cluster.kube
    platform, rec = cluster.platform()
    fault = F(kind="cert-expiry", target=REGION, cert=variant, ttl_s=5)
    data = platform.inject(fault, platform.plan_fault(fault))
    secret, chain = _secret_chain(kube)
    assert secret["type"] == "kubernetes.io/tls" and set(secret["data"]) == {"tls.crt", "tls.key"}
    now = dt.datetime.now(dt.UTC)
    lapses = min(c.not_valid_after_utc for c in chain)
    if variant == "rotation-stopped":
        assert now < lapses <= now + dt.timedelta(seconds=6)
    else:
        assert lapses < now  # expired as the API server stores it
    assert data["expired_at_wall"] == pytest.approx(lapses.timestamp())
    platform.revert(fault, data)
    _, chain = _secret_chain(kube)
    assert min(c.not_valid_after_utc for c in chain) > dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
    assert all(isinstance(s, ApiStep) and s.secret and "PRIVATE KEY" not in s.shell() for s in rec.steps)


def test_brownout_switches_the_pods_of_the_zone_as_the_api_server_lists_them(
    cluster: Cluster, up_applied: list[ApiStep]
) -> None:
    kube = cluster.kube
    zone = f"{REGION}-b"
    platform, rec = cluster.platform()
    fault = F(kind="brownout", target=zone, fail_pct=30)
    data = platform.inject(fault, platform.plan_fault(fault))
    pods = rec.kubes
    assert isinstance(pods, PodsBehindDocker)
    listed = [s for s in rec.steps if isinstance(s, ApiStep) and "exec" not in s.argv]
    assert len(listed) == 1 and "zone=us-east1-b" in listed[0].argv[-3]
    assert not [s for s in rec.steps if isinstance(s, Step)]  # no command: every step went through the kube layer
    in_zone = {p["metadata"]["name"] for p in kube.list_objects("v1", "Pod", NAMESPACE, label_selector=f"app={APP}")
               if p["spec"]["nodeName"] == f"kwok-{zone}"}  # fmt: skip
    assert len(in_zone) == cluster.topo.replicas_per_zone
    # Kube.exec into each of them, by the name the API server listed (answered by the stand-in:
    # a kind pod's container is behind Docker)
    assert sorted(c[2] for c in pods.calls) == sorted(in_zone)
    assert all(c[:2] == (cluster.context, NAMESPACE) and c[4][-3:-1] == ("set-faults", "8080") for c in pods.calls)
    pods.calls.clear()
    platform.revert(fault, data)
    assert sorted(c[2] for c in pods.calls) == sorted(in_zone) and {c[4][-1] for c in pods.calls} == {"{}"}
    # a whole region's replicas, as lost-response lists them
    pods.calls.clear()
    lost = F(kind="lost-response", target=REGION, fail_pct=10)
    platform.revert(lost, platform.inject(lost, platform.plan_fault(lost)))
    switched = {c[2] for c in pods.calls}
    assert len(switched) == len(cluster.topo.region(REGION).zones) * cluster.topo.replicas_per_zone


def test_a_context_missing_from_the_kubeconfig_is_named(cluster: Cluster) -> None:
    from failover_drill.errors import PlatformError

    with pytest.raises(PlatformError, match="kind-fd-nowhere") as err:
        cluster.kubes("kind-fd-nowhere")
    assert "kubectl config get-contexts" in (err.value.hint or "")


def test_nodes_are_awaited_ready_through_the_api(cluster: Cluster) -> None:
    """With Cilium, kind creates the nodes without --wait and `up` waits for them once Cilium runs:
    here kwok's three zone nodes are Ready; a fourth that never registers is named."""
    from failover_drill.errors import PlatformError
    from failover_drill.platforms.kind import api

    zones = len(cluster.topo.region(REGION).zones)
    assert "condition met" in run_step(api.wait_nodes_ready(cluster.context, "nodes", zones), cluster.kubes)
    with pytest.raises(PlatformError, match=f"{zones} of {zones + 1} nodes registered"):
        run_step(api.wait_nodes_ready(cluster.context, "nodes", zones + 1, timeout_s=3), cluster.kubes)


def _healthy_qdiscs() -> str:
    """`tc qdisc show dev eth0` on a us-east1 node as `up` lays it out: us-east1 comes first, so
    every pair's RTT sits on the other region's side and its bands carry no delay."""
    return (
        "qdisc prio 1: root refcnt 2 bands 7 priomap 1 2 2 2 1 2 0 0 1 1 1 1 1 1 1 1\n"
        "qdisc netem 41: parent 1:5 limit 1000\n"
        "qdisc netem 42: parent 1:6 limit 1000\n"
        "qdisc netem 43: parent 1:7 limit 1000\n"
    )


def test_recover_on_kind_repairs_what_faults_left_without_any_ledger(
    cluster: Cluster, up_applied: list[ApiStep]
) -> None:
    """Issue 16 on kind, "reality over records": faults injected through the platform and never
    written down. The Kubernetes objects are real (istiod scaled to 0 and an edge secret under an
    expired intermediate, on a real API server) and are read and repaired there. What docker and
    tc would show is given as their output, and an exec into the replicas is answered by
    PodsBehindDocker (Docker is the process boundary this machine cannot cross): a paused node, a
    stopped one, a node whose band carries a partition, replicas with a brownout switched on. A
    second pass over the repaired fleet changes nothing."""
    from failover_drill.platforms.envoy.leftovers import Repairs
    from failover_drill.platforms.kind import leftovers
    from failover_drill.platforms.kind.cluster_config import all_nodes
    from failover_drill.platforms.kind.faults import KindFleet

    kube = cluster.kube
    labels = {"app": "istiod"}
    kube.apply(
        [
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": "istiod", "namespace": "istio-system"},
                "spec": {
                    "replicas": 1,
                    "selector": {"matchLabels": labels},
                    "template": {
                        "metadata": {"labels": labels},
                        "spec": {"containers": [{"name": "discovery", "image": "istio/pilot:1.24.1"}]},
                    },
                },
            }
        ]
    )
    platform, _ = cluster.platform()
    for fault in (
        F(kind="control-plane-loss", target=REGION),
        F(kind="cert-expiry", target=REGION, cert="intermediate"),
    ):
        platform.inject(fault, platform.plan_fault(fault))
    istiod = kube.get("apps/v1", "Deployment", "istiod", "istio-system")
    assert istiod is not None and istiod["spec"]["replicas"] == 0

    nodes = all_nodes(cluster.topo, REGION)
    paused, stopped, partitioned = nodes[1], nodes[2], nodes[3]
    ps = "\n".join(f"{n} {'paused' if n == paused else 'exited' if n == stopped else 'running'}" for n in nodes)
    cut = _healthy_qdiscs().replace("parent 1:7 limit 1000", "parent 1:7 limit 1000 loss 100%")
    answers = {
        "docker ps -a": ps,
        f"exec {partitioned} tc qdisc show": cut,
        "tc qdisc show": _healthy_qdiscs(),
        **node_answers(cluster.topo),
    }

    def switches(fail_pct: float) -> Callable[[tuple[str, ...]], ExecResult]:
        on = ExecResult(0, json.dumps({"fail_pct": fail_pct, "delay_ms": 0.0, "drop_after_commit_pct": 0.0}), "")
        return lambda command: on if "get-faults" in command else ExecResult(0, '{"ok": true}', "")

    pods_now = PodsBehindDocker(cluster.kubes, reply=switches(30.0))
    rec = RecordingRunner(answers=answers, kubes=pods_now)
    fleet = KindFleet(cluster.topo, rec, pki_dir=cluster.state / "pki")
    out = Repairs()
    leftovers.repair(fleet, out, regions=[REGION])
    assert out.failed == []
    done = "\n".join(out.done)
    commands = rec.commands()
    assert f"docker unpause {paused}" in commands and f"docker start {stopped}" in commands
    rebuilt = {s.argv[2] for s in rec.steps if isinstance(s, Step) and "root" in s.argv and "add" in s.argv}
    assert rebuilt == {stopped, partitioned}  # a started node has a fresh network namespace; the cut band
    assert f"node {partitioned}: rebuilt its latency layout" in done and "100% loss" in done
    # the API's objects, as the real API server now holds them
    istiod = kube.get("apps/v1", "Deployment", "istiod", "istio-system")
    assert istiod is not None and istiod["spec"]["replicas"] == 1
    _, (leaf, inter) = _secret_chain(kube)
    now = dt.datetime.now(dt.UTC)
    assert inter.not_valid_after_utc > now and leaf.not_valid_after_utc > now + dt.timedelta(days=7)
    assert "not signed by the region's intermediate" in done and "expired" in done
    pods = kube.list_objects("v1", "Pod", NAMESPACE, label_selector=f"app={APP}")
    read = {c[2] for c in pods_now.calls if c[4][-2:] == ("get-faults", "8080")}
    cleared = {c[2] for c in pods_now.calls if c[4][-3:] == ("set-faults", "8080", "{}")}
    assert read == cleared == {p["metadata"]["name"] for p in pods} and pods
    assert done.count("cleared fault switches fail_pct=30") == len(pods)

    # The repaired fleet, as docker, tc and the pods would now show it: nothing to do.
    again = RecordingRunner(
        answers={"docker ps -a": "\n".join(f"{n} running" for n in nodes), "tc qdisc show": _healthy_qdiscs()},
        kubes=PodsBehindDocker(cluster.kubes, reply=switches(0.0)),
    )
    out = Repairs()
    leftovers.repair(KindFleet(cluster.topo, again, pki_dir=cluster.state / "pki"), out, regions=[REGION])
    assert out.done == [] and out.failed == []
    assert [s.title for s in again.steps if not s.title.startswith(("read", "list"))] == []


def _helm_revision(release: str, revision: int, status: str, chart: str = "1.17.6") -> dict[str, Any]:
    """A release revision as Helm 3 stores it: a Secret in the release's namespace, its record
    gzipped JSON in base64, labelled with the release's name, status and revision."""
    import gzip
    import json

    record = {"name": release, "version": revision, "info": {"status": status},
              "chart": {"metadata": {"name": release, "version": chart}}}  # fmt: skip
    encoded = base64.b64encode(gzip.compress(json.dumps(record).encode()))
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": f"sh.helm.release.v1.{release}.v{revision}",
            "namespace": "kube-system",
            "labels": {"owner": "helm", "name": release, "status": status, "version": str(revision)},
        },
        "type": "helm.sh/release.v1",
        "data": {"release": base64.b64encode(encoded).decode()},
    }


def test_a_second_up_finds_ciliums_helm_release_through_the_api(cluster: Cluster, tmp_path: Path) -> None:
    """Whether Cilium is installed in a cluster is read where Helm keeps it (its release's revisions,
    Secrets in kube-system, listed by label through the API server): none, install; the newest
    revision deployed (older ones superseded, another release's ignored), upgrade in place with the
    values reused; an install that never finished, uninstall and install; an upgrade left pending,
    refused with how to end it."""
    from failover_drill.platforms.kind.mesh import cilium_install_steps, cilium_release_step

    kube = cluster.kube
    n = names(cluster.topo)[REGION]
    rec = RecordingRunner(kubes=cluster.kubes)
    values = tmp_path / "cilium-values.yaml"

    def commands() -> list[tuple[str, ...]]:
        return [s.argv[:2] for s in cilium_install_steps(n, values, rec)]

    assert run_step(cilium_release_step(n), cluster.kubes) == ""
    assert commands() == [("cilium", "install")]
    revisions = [
        _helm_revision("cilium", 1, "superseded", chart="1.17.5"),
        _helm_revision("cilium", 2, "deployed"),
        _helm_revision("hubble-extra", 9, "pending-install"),  # another release: not Cilium's
    ]
    kube.apply(revisions)
    try:
        assert run_step(cilium_release_step(n), cluster.kubes) == "deployed 1.17.6 2\n"
        (upgrade,) = cilium_install_steps(n, values, rec)
        assert (
            upgrade.argv[:4] == ("cilium", "upgrade", "--context", n.context) and upgrade.argv[-1] == "--reuse-values"
        )
        assert "chart 1.17.6, deployed" in upgrade.title
        kube.apply([_helm_revision("cilium", 3, "pending-install")])
        assert commands() == [("cilium", "uninstall"), ("cilium", "install")]
        kube.apply([_helm_revision("cilium", 3, "pending-upgrade")])
        with pytest.raises(PlatformError, match=r"pending-upgrade \(revision 3\)"):
            commands()
        # the check is an API read: nothing ran as a command
        assert all(isinstance(s, ApiStep) and "owner=helm,name=cilium" in s.argv for s in rec.steps)
    finally:
        for name in ("cilium.v1", "cilium.v2", "cilium.v3", "hubble-extra.v9"):
            kube.delete("v1", "Secret", f"sh.helm.release.v1.{name}", "kube-system")


# -- in-region traffic: the Job, its pods and their logs through the API server ---------------------


def _self_signed(tmp: Path) -> tuple[Path, Path]:
    """A serving certificate for 127.0.0.1 (the API server does not verify the kubelet's unless
    given --kubelet-certificate-authority, as here)."""
    import ipaddress

    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kubelet")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .sign(key, hashes.SHA256())
    )
    crt, pem = tmp / "kubelet.crt", tmp / "kubelet.key"
    crt.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pem.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return crt, pem


class ControlPlaneNode:
    """The region's control-plane node, played here: registered Ready with the control-plane role
    and taint (what the traffic Job's pods select and tolerate), its kubelet's log endpoint served
    over TLS on 127.0.0.1 (what the API server streams `pods/log` from), and the pods bound to it
    set Running, or Failed for the Jobs named in `fail`; deleted pods are let go, as a kubelet does."""

    def __init__(self, cluster: Cluster, tmp: Path) -> None:
        import http.server
        import ssl
        import threading
        import urllib.parse

        self.kube = Kube(cluster.kubeconfig, cluster.context)  # its own client: it runs in a thread of its own
        self.name = names(cluster.topo)[REGION].control_plane
        # what the container of the pod with completion index k "wrote" (its log)
        self.output: Callable[[int], list[str]] = lambda k: []
        self.requests: list[tuple[str, dict[str, list[str]]]] = []
        self.fail: set[str] = set()
        self.index: dict[str, int] = {}
        self.errors: list[str] = []
        self._stop = threading.Event()
        node = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                url = urllib.parse.urlsplit(self.path)
                node.requests.append((url.path, urllib.parse.parse_qs(url.query)))
                parts = url.path.split("/")  # /containerLogs/<ns>/<pod>/<container>
                if len(parts) != 5 or parts[1] != "containerLogs" or parts[3] not in node.index:
                    self.send_error(404)
                    return
                lines = node.output(node.index[parts[3]])
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.end_headers()
                for i, line in enumerate(lines):
                    self.wfile.write(line.encode() + b"\n")
                    self.wfile.flush()
                    if i == 0:
                        # A worker says it is ready, then waits for its start before it sends: its
                        # log goes on a moment after, once every worker's first line was read.
                        time.sleep(1.5)

            def log_message(self, *args: Any) -> None:
                pass

        crt, key = _self_signed(tmp)
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(crt, key)
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self._threads = [
            threading.Thread(target=self.server.serve_forever, daemon=True),
            threading.Thread(target=self._play, daemon=True),
        ]

    def __enter__(self) -> ControlPlaneNode:
        now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        self.kube.apply(
            [
                {
                    "apiVersion": "v1",
                    "kind": "Node",
                    "metadata": {
                        "name": self.name,
                        "labels": {"node-role.kubernetes.io/control-plane": "", "topology.kubernetes.io/region": REGION},
                    },
                    "spec": {"taints": [{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}]},
                    "status": {
                        "capacity": NODE_CAPACITY,
                        "allocatable": NODE_CAPACITY,
                        "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
                        "daemonEndpoints": {"kubeletEndpoint": {"Port": self.port}},
                        "conditions": [
                            {"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "played by the test",
                             "lastHeartbeatTime": now, "lastTransitionTime": now}
                        ],
                    },
                }
            ]
        )  # fmt: skip
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        for error in self.errors:
            print(f"playing the control-plane node: {error}")
        self._stop.set()
        self.server.shutdown()
        self.server.server_close()
        for t in self._threads:
            t.join(timeout=10)
        self.kube.delete("v1", "Node", self.name)
        self.kube.close()

    def _play(self) -> None:
        while not self._stop.wait(0.2):
            try:
                pods = self.kube.list_objects("v1", "Pod", NAMESPACE, label_selector="app=failover-drill-traffic")
            except PlatformError:
                continue
            for pod in pods:
                try:
                    self._play_pod(pod)
                except PlatformError as exc:
                    self.errors.append(str(exc))  # printed when the test ends

    def _play_pod(self, pod: dict[str, Any]) -> None:
        meta, spec, st = pod["metadata"], pod["spec"], pod.get("status") or {}
        if spec.get("nodeName") != self.name:
            return
        if meta.get("deletionTimestamp"):
            self.kube.delete_pod(meta["name"], NAMESPACE, grace_s=0)
            return
        if st.get("phase") != "Pending":
            return
        k = int(meta["annotations"]["batch.kubernetes.io/job-completion-index"])
        self.index[meta["name"]] = k
        failed = meta["labels"].get("job-name") in self.fail
        state = (
            {"terminated": {"exitCode": 1, "reason": "Error", "startedAt": _now(), "finishedAt": _now()}}
            if failed
            else {"running": {"startedAt": _now()}}
        )
        self.kube.patch_pod_status(
            meta["name"],
            NAMESPACE,
            {
                "phase": "Failed" if failed else "Running",
                "conditions": [{"type": "Ready", "status": "False" if failed else "True"}],
                "containerStatuses": [
                    {"name": c["name"], "image": c["image"], "ready": not failed, "restartCount": 0,
                     "state": state}
                    for c in spec["containers"]
                ],
                "hostIP": "127.0.0.1",
                "hostIPs": [{"ip": "127.0.0.1"}],
                "podIP": f"10.244.200.{k + 2}",
                "podIPs": [{"ip": f"10.244.200.{k + 2}"}],
                "startTime": _now(),
            },
        )  # fmt: skip


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _worker_output(k: int, key_prefix: str) -> list[str]:
    """What remote_worker k of 2 prints: ready, its samples, done."""
    import json

    from failover_drill.traffic.samples import Sample

    samples = [
        Sample(seq=q, sched=q / 100, lat_ms=4.0, lag_ms=0.1, status=200, err="ok", region=REGION,
               zone=f"{REGION}-a", acked=True, key=f"{key_prefix}-{q}")
        for q in range(k, 20, 2)
    ]  # fmt: skip
    stats = {"scheduled": 10, "sent": 10, "completed": 10}
    return [
        json.dumps({"t": "ready", "worker": k}),
        *(json.dumps(s.to_json()) for s in samples),
        json.dumps({"t": "done", "worker": k, "stats": stats, "started": True}),
    ]


def test_in_region_traffic_runs_as_a_job_the_api_server_creates_streams_and_deletes(
    cluster: Cluster, tmp_path: Path
) -> None:
    """The traffic Job of `--set traffic.origin=in-region`, driven by the drill's own pool, with every
    Kubernetes operation through the kube layer: applied server-side (the real Job controller makes
    one pod per completion index, the real scheduler puts them on the control-plane node, the only
    one they select and tolerate), its pods read until Running, each worker's output followed as
    the API server streams its pod's log from the node's kubelet, and the Job deleted with its pods
    left to the garbage collector. The start files are written by Kube.exec into each worker's
    container, answered by PodsBehindDocker (the container is behind Docker)."""
    import asyncio

    from failover_drill.config.scenario import TrafficSpec
    from failover_drill.platforms.kind.traffic_jobs import (
        KindTrafficJobs,
        delete_job_step,
        job_state,
        job_state_step,
    )
    from failover_drill.traffic.remote_pool import RemoteWorkerPool
    from failover_drill.traffic.samples import Sample

    kube = cluster.kube
    prefix = "kube-in-region"
    pods_behind = PodsBehindDocker(cluster.kubes)
    rec = RecordingRunner(kubes=pods_behind)
    jobs = KindTrafficJobs(
        cluster.topo, rec, region=REGION, url="http://172.18.0.1:40000",
        spec_json=TrafficSpec(rate_rps=200, workers=2).model_dump_json(), duration_s=30, workers=2,
        key_prefix=prefix, kubes=cluster.kubes,
    )  # fmt: skip
    pool = RemoteWorkerPool(jobs, start_lead_s=0.2)
    samples: list[Sample] = []
    with ControlPlaneNode(cluster, tmp_path) as node:
        node.output = lambda k: _worker_output(k, prefix)
        try:
            pool.wait_ready(timeout_s=90)
            pool.go(time.monotonic())
            stats = asyncio.run(asyncio.wait_for(pool.collect(samples.append), 30))

            # the Job as the API server holds it: server-side applied by the tool, the pod template intact
            job = kube.get("batch/v1", "Job", jobs.name, NAMESPACE)
            assert job is not None
            assert any(
                m["manager"] == "failover-drill" and m["operation"] == "Apply" for m in job["metadata"]["managedFields"]
            )
            spec = job["spec"]
            assert (spec["completionMode"], spec["completions"], spec["parallelism"], spec["backoffLimit"]) == (
                "Indexed", 2, 2, 0,
            )  # fmt: skip
            assert spec["template"]["spec"]["nodeSelector"] == {"node-role.kubernetes.io/control-plane": ""}
            assert job["metadata"]["labels"]["failover-drill.io/owner-pid"] == str(os.getpid())
            # its status, as the Job controller keeps it and the platform reads it
            until("the Job controller counts both pods active and ready", lambda: job_state(
                kube.get("batch/v1", "Job", jobs.name, NAMESPACE)).startswith("active 2, ready 2"))  # fmt: skip
            assert run_step(job_state_step(cluster.context, jobs.name), cluster.kubes).startswith("active 2, ready 2")
            pods = kube.list_objects("v1", "Pod", NAMESPACE, label_selector=f"job-name={jobs.name}")
            assert {p["spec"]["nodeName"] for p in pods} == {node.name}
            # ordered by completion index, each followed through the API server's pods/log
            assert pool.ids == sorted(pool.ids, key=lambda n: node.index[n]) and len(pool.ids) == 2
            followed = sorted(path.split("/")[3] for path, q in node.requests if q.get("follow") == ["true"])
            assert followed == sorted(pool.ids)
            assert sorted(s.seq for s in samples) == list(range(20)) and not pool.lost
            assert all(s.key == f"{prefix}-{s.seq}" and s.ok for s in samples) and stats.completed == 20
            # the start files: an exec into each worker's container, by the name the API server gave its pod
            assert sorted((c[2], c[3], c[4][-2]) for c in pods_behind.calls) == [
                (pod, "worker", "/run/failover-drill/start") for pod in sorted(pool.ids)
            ]
            assert not [s for s in rec.steps if isinstance(s, Step)]  # no command: all through the kube layer
        finally:
            pool.close()
        # deleted without waiting; the garbage collector removes its pods (the kubelet played here lets them go)
        assert kube.get("batch/v1", "Job", jobs.name, NAMESPACE) is None
        until(
            "the Job's pods removed by the garbage collector",
            lambda: not kube.list_objects("v1", "Pod", NAMESPACE, label_selector=f"job-name={jobs.name}"),
        )
        assert run_step(delete_job_step(cluster.context, jobs.name), cluster.kubes) == ""  # gone: nothing to do

        # a worker whose pod fails: named with what the Job controller says of its Job
        failing = KindTrafficJobs(
            cluster.topo, rec, region=REGION, url="http://172.18.0.1:40000", spec_json="{}", duration_s=30,
            workers=1, key_prefix="kube-failing", kubes=cluster.kubes,
        )  # fmt: skip
        node.fail.add(failing.name)
        failing.launch()
        try:
            until(
                "the Job controller fails the Job",
                lambda: "BackoffLimitExceeded" in job_state(kube.get("batch/v1", "Job", failing.name, NAMESPACE)),
            )
            with pytest.raises(PlatformError) as err:
                failing.running(30)
            assert "Failed" in str(err.value) and "BackoffLimitExceeded" in str(err.value)
            assert f"describe job {failing.name}" in (err.value.hint or "")
        finally:
            failing.cleanup()
        until(
            "the failed Job's pod removed",
            lambda: not kube.list_objects("v1", "Pod", NAMESPACE, label_selector=f"job-name={failing.name}"),
        )


NO_DOCKER_DAEMON = "#!/bin/sh\necho 'Cannot connect to the Docker daemon at unix:///var/run/docker.sock.' >&2\nexit 1\n"
# recover runs no kubectl: a stand-in that leaves a mark if it ever is
KUBECTL_MARKS = '#!/bin/sh\ntouch "$(dirname "$0")/kubectl-ran"\nexit 1\n'


def test_recover_removes_the_traffic_job_of_a_drill_that_died(
    cluster: Cluster, up_applied: list[ApiStep], tmp_path: Path
) -> None:
    """`failover-drill recover` on a kind fleet, its clusters reached through the kubeconfig (this
    API server is us-east1's; the other regions' contexts do not exist, which it gets past). docker
    is a stand-in whose daemon is down, so the node containers cannot be checked: recover says so
    and exits 3, and still deletes the traffic Job of the drill that died, with its pods (the
    garbage collector's work), and keeps a live drill's. One part failing stops none of the
    others. kubectl, which the tool no longer runs, is a stand-in that would leave a mark. (up_applied:
    the payments namespace the Jobs go to, whichever tests ran before.)"""
    from failover_drill.platforms.kind.traffic_jobs import KindTrafficJobs
    from failover_drill.platforms.registry import platform_dir
    from failover_drill.platforms.state_file import StateFile
    from tests.conftest import run_cli

    kube = cluster.kube
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool, script in (("docker", NO_DOCKER_DAEMON), ("kubectl", KUBECTL_MARKS)):
        (bin_dir / tool).write_text(script)
        (bin_dir / tool).chmod(0o755)
    state = tmp_path / "state"
    StateFile(platform_dir(state, "kind"), "kind").save({"mesh": "istio", "topology_source": None})
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    env = {"KUBECONFIG": str(cluster.kubeconfig), "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    for owner, removed in ((os.getpid(), False), (dead.pid, True)):
        job = KindTrafficJobs(
            cluster.topo, RecordingRunner(kubes=cluster.kubes), region=REGION, url="http://x", spec_json="{}",
            duration_s=60, workers=1, key_prefix=f"owner-{owner}", owner_pid=owner, kubes=cluster.kubes,
        )  # fmt: skip
        job.launch()
        until("the Job's pod", lambda job=job: kube.list_objects(
            "v1", "Pod", NAMESPACE, label_selector=f"job-name={job.name}"))  # fmt: skip
        out = run_cli("recover", state=state, env=env)
        assert out.returncode == 3 and "Docker daemon" in out.stderr, out.stderr
        assert "list the kind node containers failed" in out.stderr
        assert not (bin_dir / "kubectl-ran").exists()
        assert (kube.get("batch/v1", "Job", job.name, NAMESPACE) is None) is removed
        assert (f"removed traffic job {cluster.context}/{job.name}" in out.stdout) is removed, out.stdout
        if removed:
            # no node runs it here (none is the control-plane node now): the garbage collector deletes the pod outright
            until("the dead drill's traffic pod removed", lambda job=job: not kube.list_objects(
                "v1", "Pod", NAMESPACE, label_selector=f"job-name={job.name}"))  # fmt: skip
        else:
            job.cleanup()
