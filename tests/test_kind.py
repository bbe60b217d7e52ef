"""The kind platform without Docker: its cluster configs, every manifest it applies (validated
against the Kubernetes and CRD schemas), the commands of `up` and of each fault's inject and
revert (recorded, not run: Docker, kind and the clusters' API servers sit behind a process
boundary this machine cannot cross), and its refusal to start where Docker is missing.
Exec into the pods goes through the kube layer's Kube.exec, answered here by PodsBehindDocker
(the pods' containers are behind that boundary; Kube.exec itself runs against a real API server
and kwok in test_kube_exec.py). The end-to-end drill on real kind clusters runs only where
`docker` and `kind` exist."""

from __future__ import annotations

import datetime as dt
import json
import re
import shlex
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from failover_drill.config.topology import MESH_PROFILES, Topology
from failover_drill.errors import FaultError, PlatformError
from failover_drill.faults.ledger import FaultLedger, ledger_path
from failover_drill.faults.model import Fault, parse_fault
from failover_drill.platforms.envoy import admin
from failover_drill.platforms.envoy.binary import ENVOY_FLAGS, resolve_envoy
from failover_drill.platforms.envoy.config import sds_cert, write_atomic
from failover_drill.platforms.kind.cluster_config import all_nodes, kind_config, names
from failover_drill.platforms.kind.commands import AnyStep, ApiStep, KubeFor, RecordingRunner, Step, run_step
from failover_drill.platforms.kind.faults import KindFleet, StepHandler, fault_table, netem_effect
from failover_drill.platforms.kind.mesh import cacerts_secret, eastwest_gateway, metallb_block, metallb_pool
from failover_drill.platforms.kind.netem import latency_setup_steps, read_addresses
from failover_drill.platforms.kind.platform import KindPlatform, kind_plan_lines
from failover_drill.platforms.kind.workload import EDGE_SECRET, cluster_objects
from failover_drill.platforms.kube.client import ExecResult
from failover_drill.platforms.pki import MeshCA
from failover_drill.platforms.ports import port_free
from failover_drill.platforms.registry import platform_dir
from failover_drill.platforms.state_file import StateFile
from tests.conftest import ROOT, processes_under, run_cli, topology
from tests.test_manifests import needs_crds, validate_object

HAVE_DOCKER_AND_KIND = shutil.which("docker") is not None and shutil.which("kind") is not None
SUBNET = {".Subnet}}": "172.18.0.0/16", ".Gateway}}": "172.18.0.1"}


def node_answers(topo: Topology) -> dict[str, str]:
    """What `docker inspect` would say: node addresses on the kind network."""
    ips: list[str] = []
    answers: dict[str, str] = {}
    for i, n in enumerate(names(topo).values()):
        nodes = [n.control_plane, *[n.worker(k) for k in range(len(topo.region(n.region).zones))]]
        for k, node in enumerate(nodes):
            ips.append(f"/{node} 172.18.{i + 1}.{k + 2}")
        answers[f"{{{{.IPAddress}}}}{{{{end}}}}' {n.control_plane}"] = f"172.18.{i + 1}.2"
    # first match wins: the all-nodes query also ends with a control plane's name
    return {"{{.Name}} {{range .NetworkSettings.Networks}}": "\n".join(ips), **SUBNET, **answers}


def recorded_up(topo: Topology, state: Path) -> list[AnyStep]:
    rec = RecordingRunner(answers=node_answers(topo))
    platform = KindPlatform(state, topo, runner=rec)
    return rec.record(platform.up_steps(rec))


ExecCall = tuple[str, str, str, str | None, tuple[str, ...]]  # context, namespace, pod, container, command


@dataclass
class PodsBehindDocker:
    """The kube layer as the kind platform's steps meet it, with exec into the pods answered here:
    a kind pod's container runs under Docker, the process boundary this machine cannot cross, so
    this is the one call these tests stand in for (Kube.exec itself runs against a real API server
    and kwok in test_kube_exec.py). Every other call goes to `kubes` (a real API server's contexts)
    when given. Each exec is recorded in `calls`; `reply(command)` is its result (exit 0, no output
    unless told)."""

    kubes: KubeFor | None = None
    reply: Callable[[tuple[str, ...]], ExecResult] = lambda command: ExecResult(0, "", "")
    calls: list[ExecCall] = field(default_factory=list)

    def __call__(self, context: str) -> Any:
        behind, real = self, (self.kubes(context) if self.kubes is not None else None)

        class Kube:
            def exec(
                self, pod: str, namespace: str, command: Any, *, container: str | None = None, timeout_s: float = 60.0
            ) -> ExecResult:
                behind.calls.append((context, namespace, pod, container, tuple(command)))
                return behind.reply(tuple(command))

            def __getattr__(self, name: str) -> Any:
                assert real is not None, f"no API server in this test for Kube.{name}"
                return getattr(real, name)

        return Kube()


@dataclass
class ExecRunner(RecordingRunner):
    """RecordingRunner (commands and API reads recorded, reads answered from `answers`) whose exec
    steps run their call, through `pods`."""

    pods: PodsBehindDocker = field(default_factory=PodsBehindDocker)

    def run(self, step: AnyStep) -> str:
        if isinstance(step, ApiStep) and "exec" in step.argv:
            self.steps.append(step)
            return run_step(step, self.pods)
        return super().run(step)


def stdin_objects(step: AnyStep) -> list[dict[str, Any]]:
    assert step.stdin is not None
    return [o for o in yaml.safe_load_all(step.stdin) if o]


# -- cluster configs -------------------------------------------------------------------------


@pytest.mark.parametrize("mesh", ["istio", "cilium"])
def test_one_cluster_per_region_with_a_labelled_worker_per_zone(mesh: str) -> None:
    topo = topology(mesh)
    subnets, ports = set(), set()
    for region in topo.regions:
        cfg = kind_config(topo, region)
        assert cfg["apiVersion"] == "kind.x-k8s.io/v1alpha4" and cfg["name"] == f"fd-{region.name}"
        cp, *workers = cfg["nodes"]
        assert cp["role"] == "control-plane" and "topology.kubernetes.io/zone" not in cp["labels"]
        assert [w["labels"]["topology.kubernetes.io/zone"] for w in workers] == region.zone_names()
        assert {w["labels"]["topology.kubernetes.io/region"] for w in workers} == {region.name}
        subnets.add(cfg["networking"]["podSubnet"])
        ports.add(cp["extraPortMappings"][0]["hostPort"])
        # Cilium replaces kind's default CNI; Istio runs on it.
        assert cfg["networking"].get("disableDefaultCNI", False) is (mesh == "cilium")
        assert set(cfg) <= {"kind", "apiVersion", "name", "networking", "nodes"}
        for node in cfg["nodes"]:
            assert set(node) <= {"role", "image", "labels", "extraPortMappings"}
    # Cluster Mesh needs non-overlapping pod CIDRs; each region needs its own ingress port.
    assert len(subnets) == len(ports) == len(topo.regions)


# -- manifests ---------------------------------------------------------------------------------


@needs_crds
@pytest.mark.parametrize("profile", MESH_PROFILES)
def test_every_object_applied_to_a_cluster_validates(profile: str) -> None:
    topo = topology(profile)
    objects = cluster_objects(topo, "eu-west1")
    for obj in objects:
        validate_object(obj)
    deployments = [o for o in objects if o["kind"] == "Deployment"]
    assert [d["spec"]["template"]["spec"]["nodeSelector"]["topology.kubernetes.io/zone"] for d in deployments] == [
        "eu-west1-a",
        "eu-west1-b",
        "eu-west1-c",
    ]
    assert all(d["spec"]["replicas"] == topo.replicas_per_zone for d in deployments)
    args = deployments[0]["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("--region") + 1] == "eu-west1" and args[args.index("--zone") + 1] == "eu-west1-a"
    kinds = {o["kind"] for o in objects}
    assert not kinds & {"MultiClusterService", "BackendConfig"}  # the host front door plays these
    if profile.startswith("cilium"):
        assert not any(o["apiVersion"].startswith("networking.istio.io") for o in objects)
        ingress = next(o for o in objects if o["metadata"]["name"] == "payment-gateway-ingress")
        assert ingress["spec"]["type"] == "NodePort"
        assert ingress["metadata"]["annotations"]["service.cilium.io/global"] == "true"
    else:
        gateway = next(o for o in objects if o["kind"] == "Gateway")
        # the ingress serves TLS from the edge secret: the front door validates it, cert-expiry replaces it
        assert gateway["spec"]["servers"][0]["tls"] == {"mode": "SIMPLE", "credentialName": EDGE_SECRET}
        vs = next(o for o in objects if o["kind"] == "VirtualService" and o["metadata"]["name"].endswith("ingress"))
        # the tuned profile's retries apply at the ingress hop too
        assert ("retries" in vs["spec"]["http"][0]) is (profile == "istio-tuned")


@needs_crds
def test_mesh_objects_validate_and_share_one_root(tmp_path: Path) -> None:
    ca = MeshCA(tmp_path)
    ca.create(["us-east1", "eu-west1"])
    secrets = [cacerts_secret(ca, r) for r in ("us-east1", "eu-west1")]
    for s in secrets:
        validate_object(s)
    validate_object(eastwest_gateway())
    roots = {s["stringData"]["root-cert.pem"] for s in secrets}
    assert len(roots) == 1
    root = x509.load_pem_x509_certificate(roots.pop().encode())
    for s in secrets:
        inter = x509.load_pem_x509_certificate(s["stringData"]["ca-cert.pem"].encode())
        assert inter.issuer == root.subject
        inter.verify_directly_issued_by(root)
        assert s["stringData"]["cert-chain.pem"].startswith(s["stringData"]["ca-cert.pem"])
    pool = metallb_pool("fc00:f853::/64 172.18.0.0/16", 2)
    assert pool[0]["spec"]["addresses"] == ["172.18.255.209-172.18.255.222"]
    with pytest.raises(PlatformError, match="no IPv4 subnet"):
        metallb_pool("fc00:f853::/64", 1)


# -- the bring-up plan -------------------------------------------------------------------------


def test_istio_up_plan(tmp_path: Path) -> None:
    topo = topology("istio")
    steps = recorded_up(topo, tmp_path)
    shells = [s.shell() for s in steps]
    creates = [s for s in steps if s.argv[:3] == ("kind", "create", "cluster")]
    assert len(creates) == 3
    assert yaml.safe_load(creates[0].stdin or "")["name"] == "fd-us-east1"
    installs = [s for s in steps if s.argv[:2] == ("istioctl", "install")]
    assert [s.argv[s.argv.index("--context") + 1] for s in installs] == [n.context for n in names(topo).values()]
    op = yaml.safe_load(Path(installs[1].argv[-1]).read_text())
    assert op["spec"]["values"]["global"] == {
        "meshID": "failover-drill",
        "multiCluster": {"clusterName": "eu-west1"},
        "network": "network-eu-west1",
    }
    # every istiod watches every other cluster, through the API server's kind-network address
    remote = [s for s in steps if s.pipe_from and s.pipe_from[1] == "create-remote-secret"]
    assert len(remote) == 6
    # istioctl has no API: it runs as a command; what it prints is applied through the API, unshown
    assert all(isinstance(s, ApiStep) and s.stdin is None and "--server-side" in s.argv for s in remote)
    us_into_eu = next(s for s in remote if "kind-fd-us-east1" in s.pipe_from and "kind-fd-eu-west1" in s.argv)  # type: ignore[operator]
    assert "https://172.18.1.2:6443" in us_into_eu.pipe_from  # type: ignore[operator]
    # the cacerts secret is applied but never printed
    cacerts = [s for s in steps if "cacerts" in (s.stdin or "")]
    assert len(cacerts) == 3 and all(s.secret and "BEGIN" not in s.shell() for s in cacerts)
    assert all(isinstance(s, ApiStep) for s in cacerts)  # server-side apply through the kube layer
    edge = [s for s in steps if f"name: {EDGE_SECRET}" in (s.stdin or "")]
    assert [s.argv[2] for s in edge] == [n.context for n in names(topo).values()]
    for s in edge:
        leaf, _ = _chain(s)
        assert leaf.not_valid_after_utc > dt.datetime.now(dt.UTC) + dt.timedelta(days=7)
    assert not any("PRIVATE KEY" in sh for sh in shells)
    # manifests applied and every zone's rollout awaited
    assert sum("rollout status deployment/payment-gateway-" in sh for sh in shells) == 9
    waits = [s for s in steps if "rollout" in s.argv]
    assert len(waits) == 12 and all(isinstance(s, ApiStep) for s in waits)  # and each region's Argo Rollouts
    # Argo Rollouts in every cluster, from the pinned release, as its docs install it, before the
    # workload and its AnalysisTemplates
    argo = [s for s in steps if "-n" in s.argv and "argo-rollouts" in s.argv and "apply" in s.argv]
    url = "https://github.com/argoproj/argo-rollouts/releases/download/v1.10.1/install.yaml"
    assert [s.argv[2] for s in argo] == [n.context for n in names(topo).values()] and all(url in s.argv for s in argo)
    workload = next(i for i, s in enumerate(steps) if "kind: AnalysisTemplate" in (s.stdin or ""))
    assert steps.index(argo[-1]) < workload
    # every Kubernetes API operation of `up` goes through the kube layer; kubectl runs for nothing
    assert not [s.shell() for s in steps if isinstance(s, Step) and s.argv[0] == "kubectl"]
    # the topology's RTTs on one side of each pair: eu-west1's nodes delay traffic towards us-east1 by 90 ms
    assert any(
        s.argv[2] == "fd-eu-west1-worker" and s.argv[-3:] == ("netem", "delay", "90ms") and "1:4" in s.argv
        for s in steps
    )
    assert any(
        s.argv[2] == "fd-us-east1-worker" and s.argv[-3:] == ("netem", "delay", "0ms") and "1:5" in s.argv
        for s in steps
    )
    assert any("match ip dst 172.18.1.3/32 flowid 1:4" in sh for sh in shells)  # us-east1's first worker


def test_cilium_up_plan_shares_one_ca_and_connects_every_pair(tmp_path: Path) -> None:
    topo = topology("cilium")
    steps = recorded_up(topo, tmp_path)
    installs = [s for s in steps if s.argv[:2] == ("cilium", "install")]
    ids = [a.split("=")[1] for a in (s.argv for s in installs) for a in a if a.startswith("cluster.id=")]
    assert ids == ["1", "2", "3"]
    # the CA is copied (read from the first cluster, applied to the second through the API, so a
    # second `up` repeats it without AlreadyExists) before the second cluster's install
    copy_idx = next(i for i, s in enumerate(steps) if isinstance(s, ApiStep) and s.reads and "cilium-ca" in s.reads)
    copy = steps[copy_idx]
    assert copy.reads is not None and copy.reads[2] == "kind-fd-us-east1" and copy.context == "kind-fd-eu-west1"
    assert "--server-side" in copy.argv and f"{copy.reads and shlex.join(copy.reads)} | kubectl" in copy.shell()
    assert copy_idx < steps.index(installs[1])
    connects = [s for s in steps if s.argv[1:3] == ("clustermesh", "connect")]
    assert len(connects) == 3
    assert not any(s.argv[0] == "istioctl" for s in steps)


def plan_lines(mesh: str, tmp_path: Path, faults: list[Fault] | None = None) -> list[str]:
    """`plan --platform kind`'s lines, one command line each (a heredoc's body on lines of its own)."""
    return "\n".join(kind_plan_lines(topology(mesh), tmp_path / f"plan-{mesh}", faults or [])).splitlines()


def test_cilium_clusters_are_created_without_waiting_for_nodes_that_have_no_cni_yet(tmp_path: Path) -> None:
    """kind's --wait waits for Ready nodes, and without kind's CNI none is Ready before Cilium runs:
    with Cilium the nodes are awaited once Cilium is up, not for 180 s per cluster before."""
    cilium = plan_lines("cilium", tmp_path)
    assert "kind create cluster --name fd-us-east1 --config - <<'EOF'" in cilium
    assert not any("--wait 180s" in line for line in cilium)
    for ctx in ("kind-fd-us-east1", "kind-fd-eu-west1", "kind-fd-asia-southeast1"):
        status = cilium.index(f"cilium status --context {ctx} --wait")
        nodes = cilium.index(f"kubectl --context {ctx} wait --for=condition=Ready node --all --timeout=300s")
        enable = cilium.index(f"cilium clustermesh enable --context {ctx} --service-type NodePort")
        assert status < nodes < enable
    istio = plan_lines("istio", tmp_path)
    assert "kind create cluster --name fd-us-east1 --config - --wait 180s <<'EOF'" in istio  # kindnet: Ready soon
    assert not any("wait --for=condition=Ready node" in line for line in istio)


def test_cilium_replaces_kube_proxy_so_the_ingress_nodeport_is_its_global_service(tmp_path: Path) -> None:
    """With kube-proxy kept, Cilium's kube-proxy replacement is off and the ingress NodePort is served
    by kube-proxy from local endpoints only: a Cilium drill measured kube-proxy. kind runs without
    kube-proxy, Cilium replaces it (reaching the API server by the control-plane's name), at a
    version with MCS-API support (1.17+), each clustermesh-apiserver on a NodePort of its own."""
    cilium = plan_lines("cilium", tmp_path)
    assert cilium.count("  kubeProxyMode: none") == 3
    assert (
        "cilium install --context kind-fd-eu-west1 --version 1.17.6 --set cluster.name=eu-west1 --set cluster.id=2 "
        "--set ipam.mode=kubernetes --set kubeProxyReplacement=true --set k8sServiceHost=fd-eu-west1-control-plane "
        "--set k8sServicePort=6443 --set clustermesh.enableMCSAPISupport=true "
        "--set clustermesh.apiserver.service.nodePort=32380 "
        f"--values {tmp_path / 'plan-cilium' / 'cilium-values.yaml'}"
    ) in cilium
    ports = {line.split("nodePort=")[1].split()[0] for line in cilium if line.startswith("cilium install")}
    assert ports == {"32379", "32380", "32381"}
    istio = plan_lines("istio", tmp_path)  # Istio leaves Services to kube-proxy
    assert not any("kubeProxyMode" in line for line in istio)
    assert "  disableDefaultCNI: true" not in istio


CILIUM_SETTINGS = (
    "--version 1.17.6 --set cluster.name=eu-west1 --set cluster.id=2 --set ipam.mode=kubernetes "
    "--set kubeProxyReplacement=true --set k8sServiceHost=fd-eu-west1-control-plane --set k8sServicePort=6443 "
    "--set clustermesh.enableMCSAPISupport=true --set clustermesh.apiserver.service.nodePort=32380 --values "
)
HELM_RELEASE_CHECK = (
    "kubectl --context kind-fd-eu-west1 -n kube-system get secrets -l owner=helm,name=cilium "
    """-o 'jsonpath={range .items[*]}{.metadata.labels.status} {.metadata.labels.version}{"\\n"}{end}'"""
)


def test_a_second_up_upgrades_cilium_where_its_helm_release_exists(tmp_path: Path) -> None:
    """`cilium install` refuses a Helm release that exists, so a second `up` after a stop failed at
    the first cluster. Each cluster is asked first, through the API (Helm keeps a release's
    revisions as Secrets in kube-system): where Cilium is there, it is upgraded in place to the same
    version with the same values, and --reuse-values keeps what `clustermesh enable` / `connect`
    added (both run again after: each is a Helm upgrade that merges, connect setting each remote
    cluster by name). An install that never finished is removed and made again; another pending
    operation is refused with how to end it."""
    values = tmp_path / "plan-cilium" / "cilium-values.yaml"
    fresh = plan_lines("cilium", tmp_path)
    install = f"cilium install --context kind-fd-eu-west1 {CILIUM_SETTINGS}{values}"
    assert fresh.index("# eu-west1: is Cilium installed already (its Helm release)") + 1 == fresh.index(
        HELM_RELEASE_CHECK
    )
    assert fresh.index(HELM_RELEASE_CHECK) + 2 == fresh.index(install)  # asked right before, a plan shows a fresh fleet

    topo = topology("cilium")

    def second_up(release: str) -> list[str]:
        rec = RecordingRunner(answers={"owner=helm,name=cilium": release, **node_answers(topo)})
        platform = KindPlatform(tmp_path / "plan-cilium", topo, runner=rec)
        return "\n".join(s.shell() for s in rec.record(platform.up_steps(rec))).splitlines()

    again = second_up("deployed 1.17.6 4\n")
    assert f"cilium upgrade --context kind-fd-eu-west1 {CILIUM_SETTINGS}{values} --reuse-values" in again
    assert not any(line.startswith("cilium install") for line in again)
    assert sum(line.startswith("cilium upgrade") for line in again) == 3
    # enable and connect run again, as they are: each merges into the release's values
    for line in fresh:
        if line.startswith(("cilium clustermesh enable", "cilium clustermesh connect")):
            assert again.count(line) == 1, line
    # uninstalled with its history kept: install again; a failed upgrade: upgraded again
    assert any(
        line.startswith("cilium install --context kind-fd-eu-west1") for line in second_up("uninstalled 1.17.6 2")
    )
    assert any(line.startswith("cilium upgrade --context kind-fd-eu-west1") for line in second_up("failed 1.17.6 5"))
    # killed during the first install: the half-made release goes, then the install
    half = second_up("pending-install 1.17.6 1")
    uninstall = half.index("cilium uninstall --context kind-fd-eu-west1 --wait")
    assert half[uninstall + 1] == install
    with pytest.raises(PlatformError, match="pending-upgrade") as err:
        second_up("pending-upgrade 1.17.6 3")
    assert "helm rollback cilium -n kube-system --kube-context kind-fd-us-east1" in (err.value.hint or "")


def test_the_front_door_band_takes_the_ingress_replies_not_the_api_servers(tmp_path: Path) -> None:
    """The host reaches both the ingress NodePort and kind's API server from the kind network's
    gateway (docker-proxy): a front-door filter on the gateway address alone also caught the API
    server's replies, and a front-door partition cut kubectl. The filter matches the ingress
    port's replies only: in plan lines for both meshes, and applied for real to a scratch network
    namespace's loopback (an htb root standing in for prio where the kernel lacks it), where a
    reply from port 6443 stays out of the front door's class and one from the NodePort goes in."""
    want = (
        "docker exec fd-us-east1-control-plane tc filter add dev eth0 parent 1:0 protocol ip prio 1 u32 "
        "match ip dst 172.18.0.1/32 match ip protocol 6 0xff match ip sport 30080 0xffff flowid 1:7"
    )
    for mesh in ("istio", "cilium"):
        lines = plan_lines(mesh, tmp_path)
        assert want in lines
        assert not any("match ip dst 172.18.0.1/32 flowid" in line for line in lines)
    if shutil.which("unshare") is None or shutil.which("tc") is None:
        pytest.skip("no unshare or tc here")
    topo = topology("istio")
    rec = RecordingRunner(answers=node_answers(topo))
    steps = latency_setup_steps(topo, read_addresses(topo, rec))
    filters = [
        shlex.join(["tc", *("lo" if a == "eth0" else a for a in s.argv[4:])])
        for s in steps
        if s.argv[2] == "fd-us-east1-control-plane" and s.argv[4] == "filter" and s.argv[-1] == "1:7"
    ]
    assert filters
    exchange = (
        "import socket,sys\n"
        "port=int(sys.argv[1]); srv=socket.create_server(('172.18.0.2', port))\n"
        "cli=socket.create_connection(('172.18.0.2', port), source_address=('172.18.0.1', 0))\n"
        "conn,_=srv.accept(); cli.sendall(b'x'); conn.recv(1); conn.sendall(b'r'*50000); conn.close()\n"
        "got=0\n"
        "while (b:=cli.recv(65536)): got+=len(b)\n"
        "assert got==50000\n"
    )
    (tmp_path / "exchange.py").write_text(exchange)
    py = shlex.quote(sys.executable)
    script = "\n".join(
        [
            "set -e",
            "ip link set lo up",
            "ip addr add 172.18.0.1/32 dev lo",
            "ip addr add 172.18.0.2/32 dev lo",
            "tc qdisc add dev lo root handle 1: htb default 99 2>/dev/null || { echo NO-HTB; exit 0; }",
            "tc class add dev lo parent 1: classid 1:7 htb rate 1gbit 2>/dev/null",
            "tc class add dev lo parent 1: classid 1:99 htb rate 1gbit 2>/dev/null",
            *filters,
            f"{py} {tmp_path / 'exchange.py'} 6443",
            "echo AFTER-API; tc -s class show dev lo classid 1:7",
            f"{py} {tmp_path / 'exchange.py'} 30080",
            "echo AFTER-INGRESS; tc -s class show dev lo classid 1:7",
        ]
    )
    out = subprocess.run(
        ["unshare", "--user", "--map-root-user", "--net", "sh", "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if out.returncode != 0 and "unshare" in out.stderr:
        pytest.skip(f"no unprivileged network namespace here: {out.stderr.strip()[:200]}")
    if "NO-HTB" in out.stdout:
        pytest.skip("this kernel has no htb either: no classful qdisc to hang the filters on")
    assert out.returncode == 0, out.stderr
    sent = [int(m) for m in re.findall(r"Sent (\d+) bytes", out.stdout)]
    after_api, after_ingress = sent
    assert after_api == 0, out.stdout  # the API server's replies are not the front door's
    assert after_ingress > 50000, out.stdout  # the ingress's are


ON_CONTROL_PLANE = {
    "nodeSelector": {"node-role.kubernetes.io/control-plane": ""},
    "tolerations": [{"key": "node-role.kubernetes.io/control-plane", "operator": "Exists", "effect": "NoSchedule"}],
}


def test_the_mesh_control_planes_run_on_the_zoneless_control_plane_node(tmp_path: Path) -> None:
    """On a random zone worker, a zone loss took istiod, the east-west gateway or the
    clustermesh-apiserver with it one time in three: they are pinned to the control-plane node."""
    istio = plan_lines("istio", tmp_path)
    install = next(line for line in istio if line.startswith("istioctl install -y --context kind-fd-eu-west1 -f "))
    op = yaml.safe_load(Path(install.split(" -f ")[1]).read_text())
    components = op["spec"]["components"]
    assert components["pilot"]["k8s"] == ON_CONTROL_PLANE
    gateways = {g["name"]: g["k8s"] for g in components["ingressGateways"]}
    eastwest = gateways["istio-eastwestgateway"]
    assert {k: eastwest[k] for k in ON_CONTROL_PLANE} == ON_CONTROL_PLANE
    assert "nodeSelector" not in gateways["istio-ingressgateway"]  # one per zone, spread by zone
    cilium = plan_lines("cilium", tmp_path)
    installs = [line for line in cilium if line.startswith("cilium install")]
    (values,) = {line.split(" --values ")[1] for line in installs}
    apiserver = yaml.safe_load(Path(values).read_text())["clustermesh"]["apiserver"]
    assert {k: apiserver[k] for k in ON_CONTROL_PLANE} == ON_CONTROL_PLANE


ISTIO_IMAGES = (
    "docker.io/istio/pilot:1.24.1 docker.io/istio/proxyv2:1.24.1 quay.io/metallb/controller:v0.14.8 "
    "quay.io/metallb/speaker:v0.14.8"
)
# Cilium 1.17.6's chart (values.yaml of cilium-1.17.6.tgz from helm.cilium.io): every image it runs
# here, by repository, tag and the digest the chart pins.
CILIUM_PINNED = {
    "quay.io/cilium/cilium:v1.17.6": "sha256:544de3d4fed7acba72758413812780a4972d47c39035f2a06d6145d8644a3353",
    "quay.io/cilium/operator-generic:v1.17.6": "sha256:91ac3bf7be7bed30e90218f219d4f3062a63377689ee7246062fa0cc3839d096",
    "quay.io/cilium/clustermesh-apiserver:v1.17.6": (
        "sha256:f619e97432db427e1511bf91af3be8ded418c53a353a09629e04c5880659d1df"
    ),
    "quay.io/cilium/cilium-envoy:v1.33.4-1752151664-7c2edb0b44cf95f326d628b837fcdd845102ba68": (
        "sha256:318eff387835ca2717baab42a84f35a83a5f9e7d519253df87269f80b9ff0171"
    ),
    "quay.io/cilium/certgen:v0.2.1": "sha256:ab6b1928e9c5f424f6b0f51c68065b9fd85e2f8d3e5f21fbd1a3cb27e6fb9321",
}
REGIONS = ("us-east1", "eu-west1", "asia-southeast1")


def _loads(lines: list[str], images: str) -> None:
    loads = [line for line in lines if line.startswith("kind load docker-image ") and "quay.io" in line]
    assert loads == [f"kind load docker-image {images} --name fd-{region}" for region in REGIONS]
    # before anything of the mesh is installed (MetalLB's manifest first, with Istio)
    first = next(i for i, line in enumerate(lines) if any(w in line for w in ("metallb-native", " install ")))
    assert max(lines.index(line) for line in loads) < first


def test_istios_images_are_pulled_once_and_loaded_into_each_cluster(tmp_path: Path) -> None:
    """Every node pulled Istio's images from a public registry on its own: a dozen nodes, a dozen
    pulls of each, and public rate limits. The host pulls each image once (named from the pinned
    versions, as the releases' manifests name them, by tag) and `kind load`s them into each
    cluster, before the mesh is installed."""
    lines = plan_lines("istio", tmp_path)
    assert [line for line in lines if line.startswith("docker pull ")] == [
        f"docker pull {image}" for image in ISTIO_IMAGES.split()
    ]
    _loads(lines, ISTIO_IMAGES)


def _chart_ref(values: dict[str, Any], at: tuple[str, ...], suffix: str = "") -> str:
    """The image reference Cilium's chart renders for the image values at `at` (its cilium.image
    helper: repository, then :tag, then @digest only when useDigest; the operator's helper puts
    -generic after the repository), with the chart's own defaults where the values file says
    nothing."""
    defaults = {
        (): ("quay.io/cilium/cilium", "v1.17.6"),
        ("operator",): ("quay.io/cilium/operator", "v1.17.6"),
        ("clustermesh", "apiserver"): ("quay.io/cilium/clustermesh-apiserver", "v1.17.6"),
        ("envoy",): ("quay.io/cilium/cilium-envoy", "v1.33.4-1752151664-7c2edb0b44cf95f326d628b837fcdd845102ba68"),
        ("certgen",): ("quay.io/cilium/certgen", "v0.2.1"),
    }
    node: dict[str, Any] = values
    for key in at:
        node = node.get(key, {})
    image = node.get("image", {})
    repository, tag = image.get("repository", defaults[at][0]), image.get("tag", defaults[at][1])
    digest = f"@{CILIUM_PINNED[f'{repository}{suffix}:{tag}']}" if image.get("useDigest", True) else ""
    return f"{repository}{suffix}:{tag}{digest}"


def test_every_image_of_cilium_is_pulled_once_by_its_pinned_digest_and_loaded_by_tag(tmp_path: Path) -> None:
    """Cilium's cilium-envoy (the standalone Envoy DaemonSet, on for new installs) and certgen (the
    clustermesh-apiserver-generate-certs Job and CronJob: `cilium clustermesh enable` sets
    clustermesh.apiserver.tls.auto.method=cronJob) were still pulled by every node: only the agent,
    operator and clustermesh-apiserver were loaded. Now every image the 1.17.6 chart runs here is
    pulled once by the digest the chart pins, tagged as the chart names it, `kind load`ed into each
    cluster before Cilium is installed, and the Helm values name each one by that same tag with
    useDigest false: the chart's default tag@digest would not find an image `kind load` imported,
    and the nodes would pull it anyway."""
    lines = plan_lines("cilium", tmp_path)
    golden = []
    for ref, digest in CILIUM_PINNED.items():
        pinned = f"{ref.rsplit(':', 1)[0]}@{digest}"
        golden += [f"docker pull {pinned}", f"docker tag {pinned} {ref}"]
    assert [line for line in lines if line.startswith(("docker pull ", "docker tag "))] == golden
    _loads(lines, " ".join(CILIUM_PINNED))
    installs = [line for line in lines if line.startswith("cilium install")]
    (values_file,) = {line.split(" --values ")[1] for line in installs}
    values = yaml.safe_load(Path(values_file).read_text())
    rendered = {
        _chart_ref(values, ()),
        _chart_ref(values, ("operator",), suffix="-generic"),
        _chart_ref(values, ("clustermesh", "apiserver")),
        _chart_ref(values, ("envoy",)),
        _chart_ref(values, ("certgen",)),
    }
    assert rendered == set(CILIUM_PINNED)  # what the pods ask for is what was loaded, by tag


def test_every_context_sees_the_other_clusters_before_up_returns(tmp_path: Path) -> None:
    """Nothing checked that the clusters saw each other before the baseline: up ends (and every
    drill's wait_steady starts) with a sync wait on every context, after the remote secrets or
    the Cluster Mesh connections."""
    istio = plan_lines("istio", tmp_path)
    waits = [istio.index(f"istioctl remote-clusters --context {n.context}") for n in names(topology()).values()]
    last_secret = max(i for i, line in enumerate(istio) if "create-remote-secret" in line)
    last_workload = max(i for i, line in enumerate(istio) if "rollout status deployment/payment-gateway-" in line)
    assert max(last_secret, last_workload) < min(waits)
    cilium = plan_lines("cilium", tmp_path)
    connects = [i for i, line in enumerate(cilium) if line.startswith("cilium clustermesh connect")]
    for n in names(topology()).values():
        waits_ = [
            i for i, line in enumerate(cilium) if line == f"cilium clustermesh status --context {n.context} --wait"
        ]
        assert any(i > max(connects) for i in waits_), n.context  # every context, not the first only


REMOTE_CLUSTERS = """NAME                SECRET                                              STATUS      ISTIOD                    REVISION
us-east1                                                                synced      istiod-5d9c7f8b6d-2x7kq
eu-west1            istio-system/istio-remote-secret-eu-west1           {eu}     istiod-5d9c7f8b6d-2x7kq
asia-southeast1     istio-system/istio-remote-secret-asia-southeast1    synced      istiod-5d9c7f8b6d-2x7kq
"""


def test_istiod_sync_is_read_from_remote_clusters_and_waited_for(tmp_path: Path) -> None:
    from failover_drill.platforms.kind.commands import run_step
    from failover_drill.platforms.kind.mesh import remote_clusters_synced, remote_sync_steps

    check = remote_clusters_synced(["eu-west1", "asia-southeast1"])
    assert check(REMOTE_CLUSTERS.format(eu="synced")) is None
    assert check(REMOTE_CLUSTERS.format(eu="syncing")) == "not synced yet: eu-west1 (syncing)"
    assert check(REMOTE_CLUSTERS.format(eu="synced").replace("asia-southeast1 ", "x ")) == (
        "not synced yet: asia-southeast1 (absent)"
    )
    # the step retries the report until istiod says synced: a stand-in istioctl that syncs on its second call
    (tmp_path / "calls").write_text("")
    fake = tmp_path / "istioctl"
    fake.write_text(
        "#!/bin/sh\necho x >> " + str(tmp_path / "calls") + "\n"
        "if [ $(wc -l < " + str(tmp_path / "calls") + ") -lt 2 ]; then s=syncing; else s=synced; fi\n"
        "cat <<EOF\n" + REMOTE_CLUSTERS.format(eu="$s") + "EOF\n"
    )
    fake.chmod(0o755)
    (step, *_) = remote_sync_steps(topology("istio"))
    assert step.argv == ("istioctl", "remote-clusters", "--context", "kind-fd-us-east1")
    step = Step(step.title, (str(fake), *step.argv[1:]), attempts=3, until=step.until)
    assert "synced" in run_step(step, lambda ctx: None)  # type: ignore[arg-type,return-value]
    assert len((tmp_path / "calls").read_text().splitlines()) == 2
    (tmp_path / "calls").write_text("")  # istiod syncing again: one attempt, and the step says why it gave up
    with pytest.raises(PlatformError, match="not synced yet: eu-west1 \\(syncing\\)"):
        run_step(Step("never", (str(fake),), attempts=1, until=remote_clusters_synced(["eu-west1"])), lambda c: None)  # type: ignore[arg-type,return-value]


def test_istio_cross_network_calls_pay_the_topologys_rtt_in_both_directions(tmp_path: Path) -> None:
    """Istio's cross-region calls go to the other region's east-west gateway, a MetalLB address,
    not to a node: no filter matched it, so of each pair only the direction whose delay sat on
    the callee's side paid the RTT. Each region's MetalLB pool now feeds that region's band: a
    call from A to B is delayed on A's nodes by the band for B (request to B's gateway address)
    and on B's nodes by the band for A (reply to A's node, which masqueraded the call)."""
    topo = topology("istio")
    rec = RecordingRunner(answers=node_answers(topo))
    steps = latency_setup_steps(topo, read_addresses(topo, rec))
    delay: dict[tuple[str, str], float] = {}  # (node, band) -> ms
    band_of: dict[tuple[str, str], str] = {}  # (node, dst) -> band
    for s in steps:
        args = s.argv[4:]
        if args[:2] == ("qdisc", "add") and "netem" in args:
            delay[(s.argv[2], args[args.index("parent") + 1])] = float(args[args.index("delay") + 1].removesuffix("ms"))
        if args[:2] == ("filter", "add"):
            band_of[(s.argv[2], args[args.index("dst") + 1])] = args[-1]
    pools = {n.region: str(metallb_block("172.18.0.0/16", n.index)) for n in names(topo).values()}
    for a in topo.region_names:
        for b in topo.region_names:
            if a == b:
                continue
            na, nb = names(topo)[a], names(topo)[b]
            caller, gateway_node = na.worker(0), nb.worker(0)
            request = delay.get((caller, band_of.get((caller, pools[b]), "unshaped")), 0.0)
            a_node_ip = node_answers(topo)["{{.Name}} {{range .NetworkSettings.Networks}}"]
            caller_ip = next(line.split()[1] for line in a_node_ip.splitlines() if line.startswith(f"/{caller} "))
            reply = delay[(gateway_node, band_of[(gateway_node, f"{caller_ip}/32")])]
            assert request + reply == topo.rtt_ms(a, b), (a, b, request, reply)
    cilium = plan_lines("cilium", tmp_path)  # Cluster Mesh routes to pods via nodes: no pool to shape
    assert not any("/28 flowid" in line for line in cilium)


def test_status_shows_what_each_direction_of_each_link_carries(tmp_path: Path) -> None:
    """`status --platform kind` listed nodes and the front door, not the links: nothing said that
    a pair's whole RTT sits on one direction (the later region's nodes) and none on the other. Each
    direction now says what it carries and where, as the latency layout puts it in the netem of
    the sender's band for the receiver, and both directions of a pair add up to its RTT."""
    topo = topology("istio")
    state = tmp_path / "state"
    StateFile(platform_dir(state, "kind"), "kind").save({"mesh": "istio", "topology_source": None})
    rec = RecordingRunner(answers=node_answers(topo))
    links = KindPlatform(platform_dir(state, "kind"), topo, runner=rec).status().links
    by = {(d["from"], d["to"]): d for d in links}
    assert len(by) == 6 == len(links)
    steps = latency_setup_steps(topo, read_addresses(topo, rec))
    for (a, b), d in by.items():
        # the delay in the netem of a's band for b, on every node of a
        cls = d["on"].split("band ")[1]
        laid = {
            float(s.argv[s.argv.index("delay") + 1].removesuffix("ms"))
            for s in steps
            if s.argv[2] in all_nodes(topo, a) and "netem" in s.argv and s.argv[s.argv.index("parent") + 1] == cls
        }
        assert laid == {d["delay_ms"]}, (a, b)
        assert d["delay_ms"] + by[(b, a)]["delay_ms"] == topo.rtt_ms(a, b) == d["rtt_ms"]
    assert (by[("eu-west1", "us-east1")]["delay_ms"], by[("us-east1", "eu-west1")]["delay_ms"]) == (90, 0)
    out = run_cli("status", "--platform", "kind", state=state)
    assert "  eu-west1 -> us-east1: 90 ms (on eu-west1's nodes, band 1:4); round trip 90 ms" in out.stdout
    assert "  us-east1 -> eu-west1: 0 ms (on us-east1's nodes, band 1:5); round trip 90 ms" in out.stdout
    out = run_cli("status", "--platform", "kind", "--json", state=state)
    assert json.loads(out.stdout)["links"] == links


def _kind_fleet_with_ledger(tmp_path: Path, topo: Topology) -> tuple[Path, KindPlatform, FaultLedger]:
    """A kind fleet's state files as `up` leaves them (the clusters themselves are behind Docker:
    the runner records `docker inspect` instead of running it) and its fault ledger."""
    state = tmp_path / "state"
    StateFile(platform_dir(state, "kind"), "kind").save({"mesh": topo.mesh, "topology_source": None})
    platform = KindPlatform(platform_dir(state, "kind"), topo, runner=RecordingRunner(answers=node_answers(topo)))
    return state, platform, FaultLedger(ledger_path(state))


def _on_ledger(
    ledger: FaultLedger, platform: KindPlatform, fault: Fault, at: float, reverted_at: float | None = None
) -> str:
    """The fault as the fault runner writes it down: its kind plan, recorded before inject, then
    active (and reverted, if it was), at the given wall times."""
    entry = ledger.record("kind", fault, platform.plan_fault(fault), lease_s=600, owner_pid=4242)
    ledger.update(entry, state="active", created_wall=at, lease_expires_wall=at + 600)
    if reverted_at is not None:
        ledger.update(entry, state="reverted", reverted_wall=reverted_at)
    return entry


def test_status_shows_the_link_faults_in_force_from_the_fault_ledger(tmp_path: Path) -> None:
    """`status --platform kind` showed each link's baseline delay even while a link-latency or
    partition fault had replaced it: a game day's room could not tell from status that a fault was
    on. Status now reads the fault ledger (the kind platform's state files and the ledger beside
    them; nothing runs against Docker, whose `docker inspect` of the nodes is recorded, not run,
    and in the CLI run fails to reach a daemon, so the nodes show as missing): every open entry is
    listed, and each direction a link fault is on shows that fault's netem, exactly what its inject
    put in the sender's band for the receiver, with the baseline beside it. A reverted fault shows
    nowhere."""
    topo = topology("istio")
    state, platform, ledger = _kind_fleet_with_ledger(tmp_path, topo)
    slow = F(kind="link-latency", target="us-east1", source="*", delay_ms=150, jitter_pct=10)
    cut = F(kind="partition", target="eu-west1", source="front-door")
    zone = F(kind="zone-loss", target="asia-southeast1-a", mode="freeze")
    gone = F(kind="link-latency", target="asia-southeast1", source="eu-west1", delay_ms=500)
    ids = {
        "slow": _on_ledger(ledger, platform, slow, at=1000.0),
        "cut": _on_ledger(ledger, platform, cut, at=1010.0),
        "zone": _on_ledger(ledger, platform, zone, at=1020.0),
        "gone": _on_ledger(ledger, platform, gone, at=990.0, reverted_at=995.0),
    }
    st = platform.status()
    assert [(f["label"], f["state"], f["id"]) for f in st.faults or []] == [
        ("link-latency *->us-east1", "active", ids["slow"]),
        ("partition front-door->eu-west1", "active", ids["cut"]),
        ("zone-loss asia-southeast1-a", "active", ids["zone"]),
    ]
    assert st.faults_active == 3
    by = {(d["from"], d["to"]): d for d in st.links}
    faulted = {k: d for k, d in by.items() if d["fault"]}
    assert {k: (d["fault"]["id"], d["delay_ms"], d["jitter_ms"], d["loss_pct"]) for k, d in faulted.items()} == {
        ("us-east1", "eu-west1"): (ids["slow"], 150, 15, 0),
        ("us-east1", "asia-southeast1"): (ids["slow"], 150, 15, 0),
        ("us-east1", "front-door"): (ids["slow"], 150, 15, 0),
        ("eu-west1", "front-door"): (ids["cut"], 0, 0, 100),
    }
    # exactly the netem each fault's inject changes that band to, on every node of the sender
    table = fault_table(KindFleet(topo, RecordingRunner()))
    for fault in (slow, cut):
        handler = table.handler(fault)
        assert isinstance(handler, StepHandler)
        steps, _ = handler.inject_steps(fault, handler.plan(fault))
        for (a, b), d in faulted.items():
            if d["fault"]["label"] != fault.label():
                continue
            cls = d["on"].split("band ")[1]
            applied = {
                tuple(st_.argv[st_.argv.index("netem") :])
                for st_ in steps
                if st_.argv[2] in all_nodes(topo, a) and st_.argv[st_.argv.index("parent") + 1] == cls
            }
            assert [netem_effect(args) for args in applied] == [
                {k: d[k] for k in ("delay_ms", "jitter_ms", "loss_pct")}
            ], (a, b)
    # everything else carries its baseline, the reverted fault's link included
    assert all(d["delay_ms"] == d["baseline_ms"] and not d["loss_pct"] for k, d in by.items() if k not in faulted)
    assert by[("asia-southeast1", "eu-west1")]["delay_ms"] == 160

    out = run_cli("status", "--platform", "kind", state=state)
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert "faults in force (fault ledger):" in text
    assert f"  link-latency *->us-east1: active since {_clock(1000.0)} (entry {ids['slow']}, drill pid 4242, " in text
    assert f"  zone-loss asia-southeast1-a: active since {_clock(1020.0)} (entry {ids['zone']}," in text
    assert "link-latency eu-west1->asia-southeast1" not in text
    assert (
        "  us-east1 -> eu-west1: 150 ms +- 15 ms (on us-east1's nodes, band 1:5); round trip 90 ms; "
        f"FAULT link-latency *->us-east1 (active, entry {ids['slow']}), baseline 0 ms"
    ) in text
    assert (
        "  eu-west1 -> front-door: 100% loss (on eu-west1's nodes, band 1:7); "
        f"FAULT partition front-door->eu-west1 (active, entry {ids['cut']}), baseline 0 ms"
    ) in text
    assert "  asia-southeast1 -> eu-west1: 160 ms (on asia-southeast1's nodes, band 1:5); round trip 160 ms\n" in text
    as_json = json.loads(run_cli("status", "--platform", "kind", "--json", state=state).stdout)
    assert as_json["links"] == st.links
    assert as_json["faults"] == st.faults


def _clock(wall: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(wall))


def test_status_shows_what_a_band_carries_when_link_faults_overlap(tmp_path: Path) -> None:
    """Two link faults can share a band (latency into a region from everywhere, then a partition
    of one of its links), and each change replaces the band's netem whole: the band carries the
    latest change. While both are on, the partition's loss is in force and the latency fault is
    listed as open but no longer there; once the partition is reverted its revert put the baseline
    back, so status says the baseline, not the latency the ledger still holds open. A torn ledger
    makes status say the faults are unknown, and is left where it is for `recover`."""
    topo = topology("istio")
    state, platform, ledger = _kind_fleet_with_ledger(tmp_path, topo)
    slow = _on_ledger(ledger, platform, F(kind="link-latency", target="us-east1", source="*", delay_ms=150), at=100.0)
    cut = _on_ledger(ledger, platform, F(kind="partition", target="us-east1", source="eu-west1"), at=200.0)
    by = {(d["from"], d["to"]): d for d in platform.status().links}
    there = by[("us-east1", "eu-west1")]
    assert (there["fault"]["id"], there["loss_pct"], there["also_open"]) == (
        cut,
        100,
        [f"link-latency *->us-east1 (entry {slow})"],
    )
    assert (by[("eu-west1", "us-east1")]["fault"]["id"], by[("eu-west1", "us-east1")]["loss_pct"]) == (cut, 100)
    assert (by[("us-east1", "asia-southeast1")]["fault"]["id"], by[("us-east1", "asia-southeast1")]["delay_ms"]) == (
        slow,
        150,
    )

    ledger.update(cut, state="reverted", reverted_wall=300.0)
    by = {(d["from"], d["to"]): d for d in platform.status().links}
    there, back = by[("us-east1", "eu-west1")], by[("eu-west1", "us-east1")]
    assert (there["fault"], there["delay_ms"], there["loss_pct"]) == (None, 0, 0)
    assert there["also_open"] == [f"link-latency *->us-east1 (entry {slow})"]
    assert (back["fault"], back["delay_ms"], back["also_open"]) == (None, 90, [])
    assert by[("us-east1", "front-door")]["fault"]["id"] == slow
    text = run_cli("status", "--platform", "kind", state=state).stdout
    assert (
        "  us-east1 -> eu-west1: 0 ms (on us-east1's nodes, band 1:5); round trip 90 ms; open in the ledger but no "
        f"longer on this band: link-latency *->us-east1 (entry {slow})"
    ) in text

    ledger.path.write_text('{"torn": ')
    st = platform.status()
    assert st.faults == [] and st.ledger_error and "unreadable" in st.ledger_error
    assert all(d["fault"] is None for d in st.links)
    assert "faults in force: unknown: the fault ledger" in run_cli("status", "--platform", "kind", state=state).stdout
    assert ledger.path.read_text() == '{"torn": ' and not list(ledger.path.parent.glob("faults.corrupt-*"))


# -- faults --------------------------------------------------------------------------------------


def F(**fields: Any) -> Fault:
    return parse_fault(fields)


class KindFaultOps:
    """The kind fault table as these tests read it: each handler's plan, and the commands its
    inject and revert run (recorded, not run)."""

    def __init__(
        self, topo: Topology, rec: RecordingRunner, frontdoor_admin_port: int | None = None, pki_dir: Path | None = None
    ) -> None:
        self.table = fault_table(KindFleet(topo, rec, frontdoor_admin_port, pki_dir))

    def _h(self, fault: Fault) -> StepHandler:
        h = self.table.handler(fault)
        assert isinstance(h, StepHandler)
        return h

    def plan(self, fault: Fault) -> dict[str, Any]:
        return self.table.plan(fault)

    def cert_expiry(self, fault: Fault, plan: dict[str, Any]) -> tuple[list[Step], dict[str, Any]]:
        h = self._h(fault)
        return h.inject_steps(fault, h.plan_type.model_validate(plan))

    def inject_steps(self, fault: Fault, plan: dict[str, Any]) -> list[Step]:
        return self.cert_expiry(fault, plan)[0]

    def revert_steps(self, fault: Fault, plan: dict[str, Any]) -> list[Step]:
        h = self._h(fault)
        return h.revert_steps(fault, h.plan_type.model_validate(plan))

    def after_revert(self, fault: Fault, plan: dict[str, Any]) -> list[AnyStep]:
        h = self._h(fault)
        return h.after_revert_steps(fault, h.plan_type.model_validate(plan))


def ops_with(topo: Topology, answers: dict[str, str] | None = None) -> tuple[KindFaultOps, RecordingRunner]:
    rec = RecordingRunner(answers=answers or {})
    return KindFaultOps(topo, rec, frontdoor_admin_port=1), rec


def test_zone_and_region_loss_stop_the_right_node_containers() -> None:
    topo = topology("istio")
    ops, _ = ops_with(topo, node_answers(topo))
    zone = F(kind="zone-loss", target="us-east1-b")
    plan = ops.plan(zone)
    assert [s.argv for s in ops.inject_steps(zone, plan)] == [("docker", "kill", "fd-us-east1-worker2")]
    assert [s.argv for s in ops.revert_steps(zone, plan)] == [("docker", "start", "fd-us-east1-worker2")]
    assert ops.after_revert(zone, plan)  # the restarted node's latency layout
    frozen = F(kind="region-loss", target="eu-west1", mode="freeze")
    plan = ops.plan(frozen)
    assert [s.argv[:2] for s in ops.inject_steps(frozen, plan)] == [("docker", "pause")] * 4
    assert all(s.ok_to_fail for s in ops.revert_steps(frozen, plan))
    assert not ops.after_revert(frozen, plan)  # a paused container keeps its network namespace


class _Moving(RecordingRunner):
    """Records like RecordingRunner; `docker inspect` of the nodes answers what `ips` says now."""

    def __init__(self, topo: Topology) -> None:
        super().__init__(answers=node_answers(topo))
        self.key = "{{.Name}} {{range .NetworkSettings.Networks}}"
        self.ips = dict(line[1:].split() for line in self.answers[self.key].splitlines())

    def run(self, step: AnyStep) -> str:
        self.answers[self.key] = "\n".join(f"/{n} {ip}" for n, ip in self.ips.items())
        return super().run(step)


def test_a_revert_lays_out_only_the_restarted_nodes_and_leaves_the_others_alone() -> None:
    """Re-laying every node after a revert cost ~170 docker execs and briefly removed every
    baseline and any other link fault in force: only the restarted nodes are laid out again."""
    topo = topology("istio")
    rec = _Moving(topo)
    ops = KindFaultOps(topo, rec, frontdoor_admin_port=1)
    every = latency_setup_steps(topo, read_addresses(topo, rec))
    zone = F(kind="zone-loss", target="us-east1-b")
    plan = ops.plan(zone)
    assert plan["addresses"]["fd-us-east1-worker2"] == "172.18.1.4"
    after = ops.after_revert(zone, plan)
    assert {s.argv[2] for s in after} == {"fd-us-east1-worker2"}
    assert after == [s for s in every if s.argv[2] == "fd-us-east1-worker2"] and len(after) < len(every) / 10
    region = F(kind="region-loss", target="eu-west1")
    plan = ops.plan(region)
    assert {s.argv[2] for s in ops.after_revert(region, plan)} == set(plan["nodes"])
    # a plan saved before addresses were kept: every node, as before
    old = {k: v for k, v in plan.items() if k != "addresses"}
    assert len(ops.after_revert(region, old)) == len(every)


@pytest.mark.parametrize("mesh", ["istio", "cilium"])
def test_a_node_back_at_another_address_repoints_the_filters_and_the_mesh(mesh: str) -> None:
    """kind#2045: a restarted node container can come back at another address. The other nodes'
    filters and the other clusters' view of the region (Istio's remote secrets carry the control
    plane's address; Cilium's Cluster Mesh the clustermesh-apiserver's node addresses) go stale:
    every node is laid out again from the new addresses and the mesh pointed at them."""
    topo = topology(mesh)
    rec = _Moving(topo)
    ops = KindFaultOps(topo, rec, frontdoor_admin_port=1)
    loss = F(kind="region-loss", target="us-east1")
    plan = ops.plan(loss)
    rec.ips["fd-us-east1-control-plane"] = "172.18.9.9"
    after = ops.after_revert(loss, plan)
    shells = [s.shell() for s in after]
    laid = {s.argv[2] for s in after if s.argv[:2] == ("docker", "exec")}
    assert laid == {n for r in topo.region_names for n in all_nodes(topo, r)}
    assert any("match ip dst 172.18.9.9/32 flowid 1:4" in sh for sh in shells)
    assert not any("172.18.1.2/32" in sh for sh in shells)
    repairs = [s for s in after if s.argv[0] in ("kubectl", "cilium")]
    if mesh == "istio":
        assert [(s.context, s.pipe_from) for s in repairs if isinstance(s, ApiStep)] == [
            (ctx, ("istioctl", "create-remote-secret", "--context", "kind-fd-us-east1", "--name", "us-east1",
                   "--server", "https://172.18.9.9:6443"))
            for ctx in ("kind-fd-eu-west1", "kind-fd-asia-southeast1")
        ]  # fmt: skip
    else:
        assert [s.shell() for s in repairs] == [
            "cilium clustermesh connect --context kind-fd-us-east1 --destination-context kind-fd-eu-west1",
            "cilium clustermesh connect --context kind-fd-us-east1 --destination-context kind-fd-asia-southeast1",
        ]
    whole_region_zones = F(kind="zone-loss", target="us-east1")
    assert len(ops.plan(whole_region_zones)["nodes"]) == 3  # every zone, not the control plane


def test_link_latency_with_jitter_and_partition_change_netem_and_revert_to_baseline() -> None:
    topo = topology("istio")
    ops, _ = ops_with(topo)
    lat = F(kind="link-latency", target="eu-west1", source="us-east1", delay_ms=100, jitter_pct=20)
    plan = ops.plan(lat)
    inject = ops.inject_steps(lat, plan)
    assert len(inject) == 4  # every eu-west1 node
    assert all(s.argv[-4:] == ("netem", "delay", "190ms", "20ms") and "qdisc" in s.argv for s in inject)
    assert all(s.argv[-3:] == ("netem", "delay", "90ms") for s in ops.revert_steps(lat, plan))
    cut = F(kind="partition", target="eu-west1", source="us-east1")
    plan = ops.plan(cut)
    inject = ops.inject_steps(cut, plan)
    assert {s.argv[2] for s in inject} >= {"fd-eu-west1-worker", "fd-us-east1-worker"}  # both sides
    assert all(s.argv[-3:] == ("netem", "loss", "100%") for s in inject)
    reverted = ops.revert_steps(cut, plan)
    assert {s.argv[-1] for s in reverted} == {"90ms", "0ms"}


def test_control_plane_brownout_and_unsupported_faults() -> None:
    istio, cilium = topology("istio"), topology("cilium")
    cp = F(kind="control-plane-loss", target="us-east1")
    ops, _ = ops_with(istio)
    plan = ops.plan(cp)
    stop, restart = ops.inject_steps(cp, plan)[0], ops.revert_steps(cp, plan)[0]
    assert stop.argv[-3:] == ("scale", "deployment/istiod", "--replicas=0")
    assert restart.argv[-1] == "--replicas=1"
    assert isinstance(stop, ApiStep) and isinstance(restart, ApiStep)  # the scale subresource, through the API
    ops_c, _ = ops_with(cilium)
    assert "deployment/clustermesh-apiserver" in ops_c.inject_steps(cp, ops_c.plan(cp))[0].argv
    pods = "pod/payment-gateway-a-1\npod/payment-gateway-a-2\n"
    ops, rec = ops_with(istio, {"get pods -l app=payment-gateway,zone=us-east1-a": pods})
    brown = F(kind="brownout", target="us-east1-a", fail_pct=30)
    steps = ops.inject_steps(brown, ops.plan(brown))
    assert [s.argv[6] for s in steps] == ["pod/payment-gateway-a-1", "pod/payment-gateway-a-2"]
    # pods listed through the API, and the switch is an exec into each pod through the API server too
    listed = [s for s in rec.steps if "get" in s.argv]
    assert len(listed) == 1 and isinstance(listed[0], ApiStep)
    assert all(isinstance(s, ApiStep) and "exec" in s.argv for s in steps)
    assert json.loads(steps[0].argv[-1]) == {"fail_pct": 30.0, "delay_ms": 0.0}
    with pytest.raises(FaultError, match="needs an Istio mesh"):
        ops_c.plan(F(kind="cert-expiry", target="us-east1"))


def test_commands_in_pods_are_execs_through_the_kube_layer(tmp_path: Path) -> None:
    """Every command the kind platform runs in a pod is an exec through the API server
    (Kube.exec), not a kubectl subprocess: the replicas' fault switches, their ledgers, the traffic
    workers' start and stop files. Plans show each as the `kubectl exec` that does the same. The
    pods' containers run under Docker, behind the process boundary this machine cannot cross, so
    Kube.exec is answered by PodsBehindDocker (it runs for real in test_kube_exec.py)."""
    from failover_drill.platforms.kind.traffic_jobs import KindTrafficJobs

    topo = topology("istio")
    tool = ("python", "-m", "failover_drill.platforms.kind.pod_tools")
    listing = {"get pods -l app=payment-gateway": "pod/payment-gateway-a-1\npod/payment-gateway-a-2\n"}

    # brownout: set-faults in each pod of the zone, as the API lists them
    run = ExecRunner(answers=listing)
    ops = KindFaultOps(topo, run, frontdoor_admin_port=1)
    brown = F(kind="brownout", target="us-east1-a", fail_pct=30)
    plan = ops.plan(brown)
    for step in ops.inject_steps(brown, plan):
        run.run(step)
    body = json.dumps({"fail_pct": 30.0, "delay_ms": 0.0})
    assert run.pods.calls == [
        ("kind-fd-us-east1", "payments", f"payment-gateway-a-{k}", None, (*tool, "set-faults", "8080", body))
        for k in (1, 2)
    ]
    # a switch that fails names the pod, the exit code and what the command said
    run.pods.reply = lambda command: ExecResult(1, "", "urllib.error.URLError: Connection refused\n")
    with pytest.raises(PlatformError) as err:
        run.run(ops.inject_steps(brown, plan)[0])
    assert "payments/payment-gateway-a-1 exited with code 1" in str(err.value)
    assert "Connection refused" in str(err.value) and "kubectl --context kind-fd-us-east1" in (err.value.hint or "")
    # a revert goes on past a pod it cannot switch back (gone with its node, say)
    run.pods.calls.clear()
    for step in ops.revert_steps(brown, plan):
        assert run.run(step) == ""
    assert [c[4][-1] for c in run.pods.calls] == ["{}", "{}"]

    # the ledger: dump-ledger in every replica of every region, its stdout parsed
    charge = {"idempotency_key": "k1", "region": "us-east1", "zone": "us-east1-a", "replica": "r",
              "payment_id": "p1", "amount_cents": 1250}  # fmt: skip
    pods = PodsBehindDocker(reply=lambda command: ExecResult(0, json.dumps(charge) + "\n", ""))
    platform = KindPlatform(tmp_path / "state", topo, runner=ExecRunner(answers=listing, pods=pods))
    charges = platform.ledger()
    assert len(charges) == len(pods.calls) == 2 * len(topo.regions)
    assert {c[0] for c in pods.calls} == {n.context for n in names(topo).values()}
    assert all(c[4] == (*tool, "dump-ledger", "/var/lib/ledger/payments.sqlite") for c in pods.calls)
    assert charges[0].key == "k1" and charges[0].amount_cents == 1250

    # the traffic workers' start and stop files, in the worker container
    run = ExecRunner()
    jobs = KindTrafficJobs(
        topo, run, region="eu-west1", url="http://172.18.0.1:40000", spec_json="{}", duration_s=10, workers=1,
        key_prefix="exec", kubes=run.pods,
    )  # fmt: skip
    jobs.start("fd-traffic-exec-0-abcde", 1234.5)
    run.pods.reply = lambda command: ExecResult(137, "", "")  # a worker already gone: stop is best effort
    jobs.stop("fd-traffic-exec-0-abcde")
    assert [(c[0], c[2], c[3], c[4][-2:]) for c in run.pods.calls] == [
        ("kind-fd-eu-west1", "fd-traffic-exec-0-abcde", "worker", ("/run/failover-drill/start", "1234.500000")),
        ("kind-fd-eu-west1", "fd-traffic-exec-0-abcde", "worker", ("/run/failover-drill/stop", "stop")),
    ]
    assert run.commands()[0].startswith(
        "kubectl --context kind-fd-eu-west1 -n payments exec fd-traffic-exec-0-abcde -c worker -- python -c"
    )

    # plans: every kubectl line is an API operation; kubectl is never run as a command
    rec = RecordingRunner(answers={**node_answers(topo), **listing})
    platform = KindPlatform(tmp_path / "plan", topo, runner=rec)
    rec.record(platform.up_steps(rec))
    table = fault_table(KindFleet(topo, rec, frontdoor_admin_port=None, pki_dir=tmp_path / "pki"))
    for fault in (brown, F(kind="lost-response", target="us-east1", fail_pct=10)):
        handler = table.handler(fault)
        assert isinstance(handler, StepHandler)
        fplan = handler.plan(fault)
        rec.record([*handler.inject_steps(fault, fplan)[0], *handler.revert_steps(fault, fplan)])
    platform.ledger()
    assert not [s.shell() for s in rec.steps if isinstance(s, Step) and s.argv[0] == "kubectl"]
    execs = [s for s in rec.steps if isinstance(s, ApiStep) and "exec" in s.argv]
    # inject and revert of brownout and lost-response, then a ledger per region: two pods a listing here
    assert len(execs) == 2 * 2 + 2 * 2 + 2 * len(topo.regions)
    lines = "\n".join(kind_plan_lines(topo, tmp_path / "p", [brown]))
    assert (
        "kubectl --context kind-fd-us-east1 -n payments exec '<list replicas in us-east1-a>' -- "
        "python -m failover_drill.platforms.kind.pod_tools set-faults 8080"
    ) in lines


def _chain(step: AnyStep) -> list[x509.Certificate]:
    (secret,) = stdin_objects(step)
    validate_object(secret)
    assert secret["metadata"] == {"name": EDGE_SECRET, "namespace": "istio-system"}
    return x509.load_pem_x509_certificates(secret["stringData"]["tls.crt"].encode())


@pytest.mark.parametrize("variant", ["leaf", "intermediate", "rotation-stopped"])
def test_cert_expiry_replaces_the_edge_certificate_and_revert_renews_it(tmp_path: Path, variant: str) -> None:
    topo = topology("istio")
    ca = MeshCA(tmp_path / "pki")
    ca.create(topo.region_names)
    istiod_ca = ca.intermediate_pem("us-east1")
    root = x509.load_pem_x509_certificate(ca.root_pem())
    rec = RecordingRunner()
    ops = KindFaultOps(topo, rec, pki_dir=tmp_path / "pki")
    fault = F(kind="cert-expiry", target="us-east1", cert=variant, ttl_s=5)
    plan = ops.plan(fault)
    steps, expiry = ops.cert_expiry(fault, plan)
    (step,) = steps
    assert step.argv[:3] == ("kubectl", "--context", "kind-fd-us-east1") and step.secret
    assert isinstance(step, ApiStep) and step.argv[3] == "replace"  # the whole secret replaced through the API
    assert "PRIVATE KEY" not in step.shell()
    leaf, inter = _chain(step)
    now = dt.datetime.now(dt.UTC)
    leaf.verify_directly_issued_by(inter)
    inter.verify_directly_issued_by(root)
    if variant == "leaf":
        assert leaf.not_valid_after_utc < now < inter.not_valid_after_utc
    elif variant == "intermediate":
        assert inter.not_valid_after_utc < now < leaf.not_valid_after_utc
    else:
        assert now < leaf.not_valid_after_utc <= now + dt.timedelta(seconds=6)
    lapsed = min(leaf.not_valid_after_utc, inter.not_valid_after_utc)
    assert expiry["expired_at_wall"] == pytest.approx(lapsed.timestamp())
    # istiod's own intermediate (cacerts, which signs workload certs) is never touched
    assert ca.intermediate_pem("us-east1") == istiod_ca
    (renew,) = ops.revert_steps(fault, plan)
    leaf, inter = _chain(renew)
    assert inter.public_bytes(serialization.Encoding.PEM).decode() == istiod_ca[0]
    assert now + dt.timedelta(days=1) < leaf.not_valid_after_utc <= inter.not_valid_after_utc
    leaf.verify_directly_issued_by(inter)


def test_cert_expiry_without_the_fleets_ca_says_so(tmp_path: Path) -> None:
    ops = KindFaultOps(topology("istio"), RecordingRunner(), pki_dir=tmp_path / "pki")
    fault = F(kind="cert-expiry", target="us-east1")
    with pytest.raises(FaultError, match="mesh CA") as err:
        ops.inject_steps(fault, ops.plan(fault))
    assert "up --platform kind" in (err.value.hint or "")
    with pytest.raises(FaultError, match="must be a region"):
        ops.plan(F(kind="cert-expiry", target="us-east1-a"))


def test_plan_command_prints_every_command_without_docker(tmp_path: Path) -> None:
    out = run_cli("plan", "--platform", "kind", "--fault", "partition", state=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "kind create cluster --name fd-asia-southeast1" in out.stdout
    assert "# inject partition" in out.stdout and "netem loss 100%" in out.stdout
    assert "kind delete cluster --name fd-us-east1" in out.stdout
    assert "PRIVATE KEY" not in out.stdout
    lines = kind_plan_lines(topology("cilium"), tmp_path / "p", [F(kind="cert-expiry", target="us-east1")])
    assert any("needs an Istio mesh" in line for line in lines)
    out = run_cli("plan", "--platform", "kind", "--fault", "cert-expiry", "--target", "eu-west1", state=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "# inject cert-expiry" in out.stdout and f"{EDGE_SECRET} <- leaf certificate" in out.stdout
    assert "PRIVATE KEY" not in out.stdout and "BEGIN CERTIFICATE" not in out.stdout


def docker_engine_up() -> bool:
    if shutil.which("docker") is None:
        return False
    return subprocess.run(["docker", "info"], check=False, capture_output=True, timeout=30).returncode == 0


@pytest.mark.skipif(HAVE_DOCKER_AND_KIND, reason="this machine has docker and kind")
def test_up_without_the_tools_names_what_is_missing_and_leaves_nothing(tmp_path: Path) -> None:
    out = run_cli("up", "--platform", "kind", state=tmp_path)
    assert out.returncode == 3, out.stderr
    assert "kind is not on PATH" in out.stderr and "fix:" in out.stderr
    assert not (tmp_path / "kind" / "fleet.json").exists()
    out = run_cli("drill", "--platform", "kind", "--region", "us-east1", state=tmp_path, runs=tmp_path / "runs")
    assert out.returncode == 3 and "kind is not on PATH" in out.stderr
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


@pytest.mark.skipif(shutil.which("docker") is None, reason="no docker CLI here")
def test_up_with_the_docker_cli_but_no_engine_says_so(tmp_path: Path) -> None:
    """kind and istioctl are stand-in scripts on PATH; `docker info` is the real CLI with no engine."""
    if docker_engine_up():
        pytest.skip("a Docker engine runs here")
    fake = tmp_path / "bin"
    fake.mkdir()
    for tool in ("kind", "istioctl"):
        if shutil.which(tool) is None:
            (fake / tool).write_text("#!/bin/sh\nexit 0\n")
            (fake / tool).chmod(0o755)
    import os

    out = run_cli("up", "--platform", "kind", state=tmp_path, env={"PATH": f"{fake}:{os.environ['PATH']}"})
    assert out.returncode == 3
    assert "Docker engine is not reachable" in out.stderr and "fix:" in out.stderr
    assert not (tmp_path / "kind" / "fleet.json").exists()


# kind's release notes, "The default node image is now ...": node images are built per kind release.
KIND_DEFAULT_NODE_IMAGE = {"0.24.0": "v1.31.0", "0.25.0": "v1.31.2", "0.26.0": "v1.32.0"}


def test_the_kind_install_hint_is_the_release_of_the_pinned_node_image() -> None:
    from failover_drill.platforms.kind.cluster_config import KIND_NODE_IMAGE
    from failover_drill.platforms.kind.commands import INSTALL_HINTS

    hinted = re.search(r"sigs\.k8s\.io/kind@v(\d+\.\d+\.\d+)", INSTALL_HINTS["kind"])
    assert hinted is not None
    assert f"kindest/node:{KIND_DEFAULT_NODE_IMAGE[hinted[1]]}" == KIND_NODE_IMAGE


def test_unknown_platform_is_bad_input(tmp_path: Path) -> None:
    out = run_cli("up", "--platform", "nomad", state=tmp_path)
    assert out.returncode == 2 and "'--platform'" in out.stderr and "sandbox" in out.stderr


@pytest.mark.slow
@pytest.mark.skipif(not HAVE_DOCKER_AND_KIND, reason="needs docker and kind on PATH (not on this machine)")
def test_kind_zone_loss_drill_end_to_end(tmp_path: Path) -> None:
    """Real clusters: up, a zone-loss drill, down. Takes ~15 min and ~12 GiB."""
    info = subprocess.run(["docker", "info"], check=False, capture_output=True, text=True)
    if info.returncode != 0:
        pytest.skip("docker is installed but its engine is not running")
    try:
        out = run_cli(
            "drill", "--platform", "kind", "--region", "us-east1", "--fault", "zone-loss", "--rate", "50",
            state=tmp_path, runs=tmp_path / "runs", timeout=3600,
        )  # fmt: skip
        assert out.returncode in (0, 1), out.stderr
        result = json.loads((tmp_path / "runs" / "latest" / "result.json").read_text())
        assert result["platform"] == "kind" and result["traffic"]["requests"] > 0
    finally:
        run_cli("down", "--platform", "kind", state=tmp_path, timeout=900)


@pytest.mark.slow
@pytest.mark.skipif(not HAVE_DOCKER_AND_KIND, reason="needs docker and kind on PATH (not on this machine)")
def test_kind_bad_canary_judged_through_prometheus_end_to_end(tmp_path: Path) -> None:
    """Real clusters with Istio and Argo Rollouts from its install.yaml: a drill's bad canary,
    routed by the VirtualService and judged through the drill's own Prometheus, which listens on
    the host's address on the kind network (analysis_host) so the controllers' pods reach it,
    is aborted by the controller. Never run on this project's machines (no Docker): kept for those
    with it, as issue 14 asks."""
    info = subprocess.run(["docker", "info"], check=False, capture_output=True, text=True)
    if info.returncode != 0:
        pytest.skip("docker is installed but its engine is not running")
    try:
        out = run_cli(
            "drill", "--platform", "kind", "--region", "us-east1", "--rollout", "bad-canary",
            "--set", "rollout.analysis=prometheus", "--set", "phases.fault_s=60", "--rate", "50",
            state=tmp_path, runs=tmp_path / "runs", timeout=3600,
        )  # fmt: skip
        assert out.returncode in (0, 1), out.stderr
        result = json.loads((tmp_path / "runs" / "latest" / "result.json").read_text())
        rel = result["rollouts"]["release"]
        assert rel["analysis"] == "prometheus" and [r["outcome"] for r in rel["regions"]] == ["aborted"], rel
    finally:
        run_cli("down", "--platform", "kind", state=tmp_path, timeout=900)


def test_dockerfile_runs_the_sandbox_replica() -> None:
    text = (ROOT / "clusters" / "kind" / "payment-gateway.Dockerfile").read_text()
    assert "failover_drill.platforms.service.replica" in text


def _dockerignored(patterns: list[str], path: str) -> bool:
    """Docker's .dockerignore rule: the last pattern matching the path or one of its parent
    directories decides; `!` re-includes; `**` spans directories, `*` and `?` do not."""

    def regex(p: str) -> re.Pattern[str]:
        out = ""
        for part in re.split(r"(\*\*/?|\*|\?)", p.strip("/")):
            out += {"**/": "(.*/)?", "**": ".*", "*": "[^/]*", "?": "[^/]"}.get(part, re.escape(part))
        return re.compile(out + "$")

    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    ignored = False
    for raw in patterns:
        negate = raw.startswith("!")
        rx = regex(raw.removeprefix("!"))
        if any(rx.match(p) for p in prefixes):
            ignored = not negate
    return ignored


def test_the_image_build_context_carries_no_venv_runs_state_ca_keys_or_git() -> None:
    """`up` builds the image with the repository root as context: without a .dockerignore Docker
    was sent .venv, runs/, the state directories with the mesh CA's private keys, and .git."""
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    patterns = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    for kept in ("pyproject.toml", "README.md", "src/failover_drill/cli.py", "src/failover_drill/platforms/pki.py"):
        assert not _dockerignored(patterns, kept), kept
    for dropped in (
        ".venv/bin/python",
        "runs/latest/result.json",
        ".failover-drill/kind/pki/root-key.pem",
        ".failover-drill/kind-plan/pki/us-east1/ca-key.pem",
        "state/pki/root-key.pem",
        ".git/config",
        "tests/test_kind.py",
        "src/failover_drill/__pycache__/cli.cpython-311.pyc",
        "src/failover_drill/leftover-key.pem",
    ):
        assert _dockerignored(patterns, dropped), dropped
    # what the Dockerfile copies is in the context
    dockerfile = (ROOT / "clusters" / "kind" / "payment-gateway.Dockerfile").read_text()
    sources = [w for line in dockerfile.splitlines() if line.startswith("COPY ") for w in line.split()[1:-1]]
    assert sources and not [src for src in sources if _dockerignored(patterns, src)]


def _free_block(n: int, after: int = 0) -> int:
    """n consecutive free ports below the kernel's ephemeral range (32768+ here), where no
    client connection's source port or kernel-picked listener can take one between the check
    and the bind (a block at 42000+ collided with the shared fleets' traffic in CI)."""
    for base in range(max(20000, after), 32000, 97):
        if all(port_free(base + i) for i in range(n)):
            return base
    raise AssertionError("no free port block")


@pytest.mark.slow
def test_front_door_is_a_real_envoy_over_each_clusters_ingress(tmp_path: Path) -> None:
    """`up` with the commands recorded (Docker and the clusters are behind that boundary), then the
    real part: the kind front-door Envoy on the host, health-checking each region's ingress port.
    Each cluster's ingress (Cilium: a plain-HTTP NodePort) is stood in for by one real
    payment-gateway replica on its host port."""
    topo = topology("cilium")
    base = _free_block(len(topo.regions))
    replicas: dict[str, subprocess.Popen[bytes]] = {}
    for i, region in enumerate(topo.region_names):
        replicas[region] = subprocess.Popen(
            [sys.executable, "-m", "failover_drill.platforms.service.replica", "--port", str(base + i),
             "--region", region, "--zone", f"{region}-a", "--ledger", str(tmp_path / f"{region}.sqlite")],
        )  # fmt: skip
    # The kind network's gateway stood in for by another loopback address of this host, so the
    # front door also listens where in-region traffic workers would reach it.
    rec = RecordingRunner(answers={**node_answers(topo), ".Gateway}}": "127.0.0.2"})
    platform = KindPlatform(tmp_path / "state", topo, runner=rec, host_port_base=base)
    try:
        platform.up()
        assert any(s.argv[:3] == ("kind", "create", "cluster") for s in rec.steps)
        reopened = KindPlatform(tmp_path / "state", runner=rec)  # as `drill` finds it later
        assert reopened.is_up() and reopened.mesh() == "cilium"
        rec.steps.clear()
        reopened.wait_steady("us-east1", timeout_s=30)
        # every context's Cluster Mesh is checked before a baseline
        assert [s.argv[:4] for s in rec.steps] == [("cilium", "clustermesh", "status", "--context")] * 3
        jobs = reopened.traffic_workers(region="us-east1", spec_json="{}", duration_s=5, workers=1, key_prefix="t")
        args = jobs.job["spec"]["template"]["spec"]["containers"][0]["args"]
        pod_url = args[args.index("--url") + 1]
        port = reopened.entrypoint().rsplit(":", 1)[1]
        assert pod_url == f"http://127.0.0.2:{port}"
        assert _served(pod_url, "us-east1") == "us-east1"  # the same front door, on the pods' side
        # us-east1's ingress goes away: the front door's BackendConfig health checks (2 s x 2) move its users
        replicas["us-east1"].kill()
        replicas["us-east1"].wait()
        deadline = time.monotonic() + 15
        served = None
        while time.monotonic() < deadline:
            req = urllib.request.Request(reopened.entrypoint() + "/healthz", headers={"x-client-region": "us-east1"})
            try:
                with urllib.request.urlopen(req, timeout=2) as resp:
                    served = resp.headers.get("x-served-region")
            except OSError:
                served = None
            if served == "eu-west1":
                break
            time.sleep(0.5)
        assert served == "eu-west1"
        # Envoy flushes its event file about once a second
        deadline = time.monotonic() + 5
        while not any(e.kind == "health_check_eject" and e.region == "us-east1" for e in reopened.events(0)):
            assert time.monotonic() < deadline, reopened.events(0)
            time.sleep(0.25)
        rec.steps.clear()
        loss = F(kind="region-loss", target="us-east1")
        plan = reopened.inject(loss, reopened.plan_fault(loss))
        # the nodes' addresses read first (a restarted node may come back at another), then the kills
        assert [s.argv[:2] for s in rec.steps] == [("docker", "inspect")] + [("docker", "kill")] * 4
        assert plan["nodes"] and plan["addresses"]
        status = reopened.status()
        assert status.up and any(c["name"] == "frontdoor" and c["state"] == "running" for c in status.components)
    finally:
        KindPlatform(tmp_path / "state", runner=rec).down()
        for p in replicas.values():
            p.kill()
            p.wait()
    assert not processes_under(tmp_path / "state")
    assert any(s.argv[:3] == ("kind", "delete", "cluster") for s in rec.steps)


class _EdgeSecretsToSds(RecordingRunner):
    """Records like RecordingRunner; a Secret applied as the edge certificate of a cluster is written
    where that region's stand-in ingress Envoy reads it over file-based SDS, as istiod would push it."""

    def __init__(self, answers: dict[str, str], sds_dir: Path, topo: Topology) -> None:
        super().__init__(answers=answers)
        self.sds_dir = sds_dir
        self.region_of = {n.context: n.region for n in names(topo).values()}

    def run(self, step: Step) -> str:
        if step.stdin and f"name: {EDGE_SECRET}" in step.stdin:
            (secret,) = stdin_objects(step)
            data = secret["stringData"]
            region = self.region_of[step.argv[2]]
            write_atomic(
                self.sds_dir / region / "cert.json", sds_cert(data["tls.crt"].encode(), data["tls.key"].encode())
            )
        return super().run(step)


def _tls_ingress(path: Path, port: int, admin_port: int, replica_port: int, sds: Path) -> dict[str, Any]:
    """An Istio ingress gateway's part here: terminate TLS with the edge certificate, pass to the app."""
    t = "type.googleapis.com/"
    hcm = {
        "name": "envoy.filters.network.http_connection_manager",
        "typed_config": {
            "@type": t + "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
            "stat_prefix": "ingress",
            "route_config": {
                "virtual_hosts": [
                    {
                        "name": "all",
                        "domains": ["*"],
                        "routes": [{"match": {"prefix": "/"}, "route": {"cluster": "app"}}],
                    }
                ]
            },
            "http_filters": [
                {
                    "name": "envoy.filters.http.router",
                    "typed_config": {"@type": t + "envoy.extensions.filters.http.router.v3.Router"},
                }
            ],
        },
    }
    tls = {
        "@type": t + "envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
        "common_tls_context": {
            "tls_certificate_sds_secret_configs": [
                {
                    "name": "gateway-cert",
                    "sds_config": {
                        "resource_api_version": "V3",
                        "path_config_source": {"path": str(sds), "watched_directory": {"path": str(sds.parent)}},
                    },
                }
            ]
        },
    }
    addr = lambda p: {"socket_address": {"address": "127.0.0.1", "port_value": p}}  # noqa: E731
    return {
        "node": {"id": path.stem, "cluster": "ingress"},
        "admin": {"address": addr(admin_port)},
        "static_resources": {
            "listeners": [
                {
                    "name": "https",
                    "address": addr(port),
                    "filter_chains": [
                        {
                            "filters": [hcm],
                            "transport_socket": {"name": "envoy.transport_sockets.tls", "typed_config": tls},
                        }
                    ],
                }
            ],
            "clusters": [
                {
                    "name": "app",
                    "type": "STATIC",
                    "connect_timeout": "1s",
                    "load_assignment": {
                        "cluster_name": "app",
                        "endpoints": [{"lb_endpoints": [{"endpoint": {"address": addr(replica_port)}}]}],
                    },
                }
            ],
        },
    }


def _served(entrypoint: str, region: str) -> str | None:
    req = urllib.request.Request(entrypoint + "/healthz", headers={"x-client-region": region})
    try:
        with urllib.request.urlopen(req, timeout=2) as resp:
            return resp.headers.get("x-served-region")
    except OSError:
        return None


def _until_served(entrypoint: str, region: str, by: str, within_s: float) -> None:
    deadline = time.monotonic() + within_s
    while (served := _served(entrypoint, region)) != by:
        assert time.monotonic() < deadline, f"users in {region} still served by {served}, not {by}"
        time.sleep(0.5)


@pytest.mark.slow
def test_istio_cert_expiry_on_kind_fails_the_region_over_at_a_real_front_door(tmp_path: Path) -> None:
    """Istio on kind: the front-door Envoy validates each region's ingress certificate (the edge
    secret, from the mesh CA). Docker, kind and the clusters are behind a process boundary this
    machine cannot cross: their commands are recorded, and each cluster's ingress gateway is stood
    in for by a real Envoy terminating TLS with whatever edge secret the platform last applied to
    that cluster (written to its SDS file, as istiod pushes it), in front of a real replica.
    cert-expiry must make the front door reject us-east1's certificate and move its users;
    revert must bring them home."""
    topo = topology("istio")
    base = _free_block(len(topo.regions))
    other = _free_block(2 * len(topo.regions), after=base + len(topo.regions))
    sds = tmp_path / "ingress-sds"
    rec = _EdgeSecretsToSds(node_answers(topo), sds, topo)
    procs_: list[subprocess.Popen[bytes]] = []
    platform = KindPlatform(tmp_path / "state", topo, runner=rec, host_port_base=base)
    try:
        for i, region in enumerate(topo.region_names):
            procs_.append(subprocess.Popen(
                [sys.executable, "-m", "failover_drill.platforms.service.replica", "--port", str(other + i),
                 "--region", region, "--zone", f"{region}-a", "--ledger", str(tmp_path / f"{region}.sqlite")],
            ))  # fmt: skip
        platform.up()
        for i, region in enumerate(topo.region_names):
            assert (sds / region / "cert.json").exists()  # the edge secret applied during up
            cfg = tmp_path / f"ingress-{region}.json"
            cfg.write_text(
                json.dumps(
                    _tls_ingress(cfg, base + i, other + len(topo.regions) + i, other + i, sds / region / "cert.json")
                )
            )
            log = open(tmp_path / f"ingress-{region}.log", "wb")  # noqa: SIM115
            procs_.append(
                subprocess.Popen([str(resolve_envoy()[0]), "-c", str(cfg), *ENVOY_FLAGS], stderr=log, stdout=log)
            )
        reopened = KindPlatform(tmp_path / "state", runner=rec)
        reopened.wait_steady("us-east1", timeout_s=30)
        # 172.18.0.1 is no address of this machine (Docker elsewhere): no in-region traffic, said so
        with pytest.raises(PlatformError, match="kind network"):
            reopened.traffic_workers(region="us-east1", spec_json="{}", duration_s=5, workers=1, key_prefix="t")
        admin_port = reopened.layout().frontdoor_admin_port
        fault = F(kind="cert-expiry", target="us-east1", cert="leaf")
        data = reopened.inject(fault, reopened.plan_fault(fault))
        assert data["expired_at_wall"] < time.time()
        _until_served(reopened.entrypoint(), "us-east1", by="eu-west1", within_s=15)
        verify = admin.stats(admin_port, r"cluster\.mcs-us-east1\.ssl\.fail_verify_error")
        assert sum(verify.values()) > 0, verify  # rejected by certificate validation, not by a dead port
        reopened.revert(fault, data)
        _until_served(reopened.entrypoint(), "us-east1", by="us-east1", within_s=15)
    finally:
        KindPlatform(tmp_path / "state", runner=rec).down()
        for p in procs_:
            p.kill()
            p.wait()
    assert not processes_under(tmp_path / "state")


class _FailingAt(RecordingRunner):
    """Records like RecordingRunner; the named tool fails the way a real command would."""

    def __init__(self, tool: str, answers: dict[str, str]) -> None:
        super().__init__(answers=answers)
        self.tool = tool

    def run(self, step: Step) -> str:
        if step.argv[0] == self.tool:
            raise PlatformError(f"{step.title} failed: boom")
        return super().run(step)


def test_a_bring_up_that_stops_halfway_can_still_be_taken_down(tmp_path: Path) -> None:
    topo = topology("istio")
    runner = _FailingAt("istioctl", node_answers(topo))
    platform = KindPlatform(tmp_path / "state", topo, runner=runner)
    with pytest.raises(PlatformError, match="kind bring-up stopped") as err:
        platform.up()
    assert "run `failover-drill up --platform kind` again" in str(err.value)
    later = KindPlatform(tmp_path / "state", runner=runner)  # a new process, no topology given
    assert not later.is_up()
    with pytest.raises(PlatformError, match="not up"):
        later.entrypoint()
    assert later.status().entrypoint is None  # clusters may exist; there is no front door yet
    runner.steps.clear()
    later.down()
    assert [s.argv[-1] for s in runner.steps if s.argv[:3] == ("kind", "delete", "cluster")] == [
        "fd-us-east1",
        "fd-eu-west1",
        "fd-asia-southeast1",
    ]
    assert not (tmp_path / "state" / "fleet.json").exists()


def test_recover_reads_each_band_of_a_node_against_the_topologys_baseline() -> None:
    """What kind's `recover` makes of `tc qdisc show` (iproute2's netem format: delay, jitter after
    it, loss as a percentage; a zero delay is not printed): an eu-west1 node carries the 90 ms
    us-east1 pair on its side as `up` lays it out, and any fault's delay, jitter or loss differs."""
    from failover_drill.platforms.kind.leftovers import band_faults, netem_bands, node_states

    fleet = KindFleet(topology("istio"), RecordingRunner())
    healthy = (
        "qdisc prio 1: root refcnt 2 bands 7 priomap 1 2 2 2 1 2 0 0 1 1 1 1 1 1 1 1\n"
        "qdisc netem 40: parent 1:4 limit 1000 delay 90ms\n"
        "qdisc netem 42: parent 1:6 limit 1000\n"
        "qdisc netem 43: parent 1:7 limit 1000\n"
    )
    assert band_faults(fleet, "eu-west1", healthy) == []
    jittered = healthy.replace("delay 90ms", "delay 190ms  20ms")
    assert netem_bands(jittered)["1:4"] == (190.0, 20.0, 0.0)
    assert band_faults(fleet, "eu-west1", jittered) == ["towards us-east1: 190 ms ± 20 ms instead of 90 ms"]
    assert netem_bands(healthy.replace("delay 90ms", "delay 1s"))["1:4"][0] == 1000.0
    assert netem_bands(healthy.replace("delay 90ms", "delay 500us"))["1:4"][0] == 0.5
    assert band_faults(
        fleet, "eu-west1", healthy.replace("parent 1:6 limit 1000", "parent 1:6 limit 1000 loss 100%")
    ) == ["towards asia-southeast1: 0 ms, 100% loss instead of 0 ms"]
    assert band_faults(fleet, "eu-west1", "qdisc noqueue 0: root refcnt 2\n") == ["no latency layout"]
    assert band_faults(fleet, "eu-west1", healthy.replace("qdisc netem 43: parent 1:7 limit 1000\n", "")) == [
        "no band for front-door"
    ]
    assert node_states("fd-a running\nfd-b paused\n\ngarbage\n") == {"fd-a": "running", "fd-b": "paused"}


def test_the_analysis_host_on_kind_is_the_hosts_address_on_the_kind_network(tmp_path: Path) -> None:
    """A release's SLI endpoint and Prometheus must listen where the controllers' pods reach this
    machine: the kind network's gateway, when it is an address of this machine. Docker is behind a
    process boundary this machine cannot cross: its answer is recorded (RecordingRunner); whether
    the address is this machine's is asked of the real socket layer. A gateway that is not ours
    (Docker in a VM) is a clear error naming --sli-host, not 127.0.0.1, which in a pod is the pod."""
    topo = topology("istio")
    ours = KindPlatform(tmp_path / "a", topo, runner=RecordingRunner(answers={".Gateway}}": "127.0.0.1 fc00:f853::1"}))
    assert ours.analysis_host() == "127.0.0.1"
    vm = KindPlatform(tmp_path / "b", topo, runner=RecordingRunner(answers={".Gateway}}": "192.0.2.1"}))
    with pytest.raises(PlatformError, match="kind network's gateway is not an address of this machine") as err:
        vm.analysis_host()
    assert "--sli-host" in (err.value.hint or "")
