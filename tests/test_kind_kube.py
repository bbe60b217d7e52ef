"""The kind platform's Kubernetes API operations against a real API server.

Docker and kind cannot run here, but the kind platform's API work (server-side applies, rollout
waits, scaling, secret replacement, pod listings) goes through the kube layer, which talks to any
API server. A real control plane from the kwok platform (etcd, kube-apiserver, controller manager,
scheduler, kwok playing one node per zone) stands in for the region's kind cluster under the
context name kind gives it (`kind-fd-us-east1`), with the Istio and MCS CRDs from the pinned
sources. The kind platform's own steps run against it; commands with no API (docker, tc,
istioctl, `kubectl exec`) stay recorded, not run.
"""

from __future__ import annotations

import base64
import datetime as dt
import shutil
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509

from failover_drill import toolchain
from failover_drill.config.topology import Topology
from failover_drill.faults.model import Fault, parse_fault
from failover_drill.platforms.kind.cluster_config import names
from failover_drill.platforms.kind.commands import AnyStep, ApiStep, RecordingRunner, Step, run_step
from failover_drill.platforms.kind.platform import KindPlatform
from failover_drill.platforms.kind.workload import EDGE_SECRET
from failover_drill.platforms.kube.client import Kube, KubeContexts
from failover_drill.platforms.kube.workload import APP, NAMESPACE
from failover_drill.platforms.kwok import COMPONENTS, ControlPlane, ControlPlaneSpec, Ports
from tests.conftest import topology
from tests.test_kind import node_answers

pytestmark = [
    pytest.mark.skipif(
        shutil.which("go") is None,
        reason="the go command is not on PATH: the control plane's components are built from source",
    ),
    # The first use may build the components (a cold build takes tens of minutes).
    pytest.mark.timeout(3600),
]

REGION = "us-east1"
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
        """The kind platform as `drill` opens it: API steps run on this cluster, commands recorded."""
        rec = RecordingRunner(kubes=self.kubes)
        return KindPlatform(self.state, self.topo, runner=rec, kubeconfig=self.kubeconfig), rec


def _until(what: str, check: Any, timeout_s: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.25)
    raise AssertionError(f"{what}: not within {timeout_s} s (last: {last!r})")


@pytest.fixture(scope="module")
def plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    binaries = toolchain.paths(COMPONENTS)  # builds what is missing: a failed build fails, it does not skip
    spec = ControlPlaneSpec(
        region=REGION,
        state_dir=tmp_path_factory.mktemp("kwok-cp"),
        ports=Ports.free(),
        fleet_id=f"test-{uuid.uuid4().hex[:8]}",
        pod_cidr="10.244.0.0/16",
    )
    cp = ControlPlane(spec, binaries)
    cp.start()
    try:
        yield cp
    finally:
        cp.stop()


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
    _until("istiod's pod removed by the real controllers", lambda: not istiod_pods())
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
    listed = [s for s in rec.steps if isinstance(s, ApiStep)]
    switches = [s for s in rec.steps if isinstance(s, Step)]
    assert len(listed) == 1 and "zone=us-east1-b" in listed[0].argv[-3]
    in_zone = {p["metadata"]["name"] for p in kube.list_objects("v1", "Pod", NAMESPACE, label_selector=f"app={APP}")
               if p["spec"]["nodeName"] == f"kwok-{zone}"}  # fmt: skip
    assert len(in_zone) == cluster.topo.replicas_per_zone
    # `kubectl exec` into each of them (recorded: there is no container to exec into here)
    assert {s.argv[6] for s in switches} == {f"pod/{p}" for p in in_zone}
    assert all("set-faults" in s.argv for s in switches)
    rec.steps.clear()
    platform.revert(fault, data)
    assert {s.argv[6] for s in rec.steps if isinstance(s, Step)} == {f"pod/{p}" for p in in_zone}
    # a whole region's replicas, as lost-response lists them
    rec.steps.clear()
    lost = F(kind="lost-response", target=REGION, fail_pct=10)
    platform.revert(lost, platform.inject(lost, platform.plan_fault(lost)))
    switched = {s.argv[6] for s in rec.steps if isinstance(s, Step)}
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
    expired intermediate, on a real API server) and are read and repaired there. What docker, tc
    and `kubectl exec` would show is given as their output (Docker is the process boundary this
    machine cannot cross): a paused node, a stopped one, a node whose band carries a partition,
    replicas with a brownout switched on. A second pass over the repaired fleet changes nothing."""
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
        "get-faults": '{"fail_pct": 30.0, "delay_ms": 0.0, "drop_after_commit_pct": 0.0}',
        **node_answers(cluster.topo),
    }
    rec = RecordingRunner(answers=answers, kubes=cluster.kubes)
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
    cleared = [s for s in rec.steps if isinstance(s, Step) and s.argv[-3:] == ("set-faults", "8080", "{}")]
    assert len(cleared) == len(pods) > 0 and done.count("cleared fault switches fail_pct=30") == len(pods)

    # The repaired fleet, as docker, tc and the pods would now show it: nothing to do.
    again = RecordingRunner(
        answers={
            "docker ps -a": "\n".join(f"{n} running" for n in nodes),
            "tc qdisc show": _healthy_qdiscs(),
            "get-faults": '{"fail_pct": 0.0, "delay_ms": 0.0, "drop_after_commit_pct": 0.0}',
        },
        kubes=cluster.kubes,
    )
    out = Repairs()
    leftovers.repair(KindFleet(cluster.topo, again, pki_dir=cluster.state / "pki"), out, regions=[REGION])
    assert out.done == [] and out.failed == []
    assert [s.title for s in again.steps if not s.title.startswith(("read", "list"))] == []
