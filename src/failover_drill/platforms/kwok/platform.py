"""The kwok platform: per region a real Kubernetes control plane (etcd, kube-apiserver,
controller-manager, scheduler) with one kwok-played node per zone, real payment-gateway processes
behind the pods (kubelet.py, on the pods' own IPs in netns.py's namespace), a mesh control plane
per region fed by the real EndpointSlices (mesh_agent.py), and the same Envoy gateways and front
door as the sandbox (platforms/envoy/).

Failover follows Kubernetes' own machinery: a lost zone's node stops heartbeating, the real node
lifecycle controller marks it NotReady after node-monitor-grace-period and its pods not ready, the
EndpointSlice controller drops them, and the mesh agents push the change to the gateways.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from failover_drill import obs
from failover_drill.config.analysis_templates import load_rollout_manifests, rollouts_dir
from failover_drill.config.manifests import MeshPolicy, load_policy
from failover_drill.config.topology import Region, Topology
from failover_drill.errors import ConfigError, FaultError, PlatformError
from failover_drill.faults.model import (
    Blackout,
    Brownout,
    CertExpiry,
    ControlPlaneLoss,
    Fault,
    LinkLatency,
    LostResponse,
    Mode,
    Partition,
    RegionLoss,
    ZoneLoss,
)
from failover_drill.platforms import processes as procs
from failover_drill.platforms.base import FleetStatus, LedgerCharge, PlatformEvent, Progress
from failover_drill.platforms.envoy import dataplane
from failover_drill.platforms.envoy.binary import resolve_envoy
from failover_drill.platforms.envoy.faults import (
    BlackoutHandler,
    BrownoutHandler,
    CertExpiryHandler,
    LinkLatencyHandler,
    LostResponseHandler,
    PartitionHandler,
    raise_if,
)
from failover_drill.platforms.envoy.layout import Layout, ReplicaInfo, gateway_layout
from failover_drill.platforms.fault_table import FaultTable, Handler, Plan, kill_or_raise
from failover_drill.platforms.kube import rollouts as ro
from failover_drill.platforms.kube.client import Kube
from failover_drill.platforms.kube.workload import APP, NAMESPACE, region_objects
from failover_drill.platforms.kwok import leftovers, userns
from failover_drill.platforms.kwok.control_plane import (
    COMPONENTS,
    PROCESS_ENV,
    ControlPlane,
    ControlPlaneSpec,
    Ports,
    find_marked,
)
from failover_drill.platforms.kwok.netns import PodNetwork, can_create, node_cidr, region_cidr
from failover_drill.platforms.polling import wait_until
from failover_drill.platforms.ports import allocate
from failover_drill.platforms.service import ledger_db
from failover_drill.platforms.state_file import StateFile
from failover_drill.remote_workers import RemoteWorkers

log = obs.get(__name__)
UP_TIMEOUT_S = 180.0
NODE_STAGE_FILES = ("node-initialize.yaml", "node-heartbeat-with-lease.yaml")
# One Argo Rollouts controller per region cluster (Argo Rollouts has no multi-cluster controller),
# the real one built from the pinned source; its CRDs come from the same pinned module.
ROLLOUTS = "rollouts-controller"


def _noop(_: str) -> None:
    pass


class KwokState(BaseModel):
    model_config = ConfigDict(extra="allow")

    mesh: str
    owner_pid: int | None = None
    layout: Layout
    processes: list[procs.ProcSpec]
    kubeconfigs: dict[str, str]
    control_planes: dict[str, dict[str, Any]]
    zones: dict[str, str]  # zone (= its node's name) -> region
    netns: str


@dataclass
class KwokFleet:
    """The running kwok fleet as a fault sees it."""

    platform: KwokPlatform
    data: dict[str, Any]
    layout: Layout
    specs: dict[str, procs.ProcSpec]

    def alive(self, name: str) -> bool:
        spec = self.specs.get(name)
        return spec is not None and procs.alive(spec)

    def replica_urls(self, target: str | None) -> list[str]:
        out = []
        for region, path in self.data["kubeconfigs"].items():
            kube = Kube(Path(path))
            try:
                for pod in kube.pods(NAMESPACE, f"app={APP}"):
                    zone = (pod["metadata"].get("labels") or {}).get("zone")
                    ip = (pod.get("status") or {}).get("podIP")
                    if target in (region, zone) and ip:
                        out.append(f"http://{ip}:8080")
            finally:
                kube.close()
        return out

    def replica_alive(self, url: str) -> bool:
        host = url.split("//", 1)[1].rsplit(":", 1)[0]
        return any(h.host == host for h in self.platform.replicas(self.data))

    def control_plane(self, region: str) -> ControlPlane:
        return ControlPlane.load(self.platform.cp_spec(region, self.data))


# -- faults on Kubernetes' own timing ---------------------------------------------------------------
class ProcessPlan(Plan):
    processes: list[str]  # the platform's own processes, by name
    control_plane: list[list[str]] = []  # [region, component]: control-plane processes
    pods: list[list[int]] = []  # [pid, start ticks] of the pods' containers at inject time
    mode: Mode


class _KwokProcessLoss(Handler[Any, ProcessPlan]):
    plan_type = ProcessPlan

    def __init__(self, fleet: KwokFleet) -> None:
        self.fleet = fleet

    def targets(self, fault: Any) -> tuple[list[str], list[list[str]], list[str]]:
        """(platform processes, control-plane [region, component]s, node names whose pods go)."""
        raise NotImplementedError

    def plan(self, fault: Any) -> ProcessPlan:
        names, cp, nodes = self.targets(fault)
        pods = [
            [m.pid, procs.start_ticks(m.pid) or 0]
            for m in find_marked(self.fleet.platform.fleet_id)
            if any(m.label.startswith(f"{n}/pod/") for n in nodes)
        ]
        mode = getattr(fault, "mode", "kill")
        return ProcessPlan(processes=names, control_plane=cp, pods=pods, mode=mode)

    def inject(self, fault: Any, plan: ProcessPlan) -> dict[str, Any]:
        pids = [s.pid for s in (self.fleet.specs[n] for n in plan.processes) if s.pid is not None and procs.alive(s)]
        for region, component in plan.control_plane:
            with contextlib.suppress(KeyError):
                pids.append(self.fleet.control_plane(region).process(component).pid)
        pids += [pid for pid, ticks in plan.pods if procs.start_ticks(pid) == ticks]
        if plan.mode == "freeze":
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGSTOP)
        else:
            kill_or_raise(pids, fault)
        return plan.model_dump(mode="json")

    def revert(self, fault: Any, plan: ProcessPlan) -> None:
        errors: list[str] = []
        if plan.mode == "freeze":
            for pid, ticks in plan.pods:
                if procs.start_ticks(pid) == ticks:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGCONT)
            for region, component in plan.control_plane:
                with contextlib.suppress(ProcessLookupError, KeyError):
                    os.kill(self.fleet.control_plane(region).process(component).pid, signal.SIGCONT)
            for name in plan.processes:
                procs.signal_proc(self.fleet.specs[name], signal.SIGCONT)
            return
        # Control planes first, in start order: their API servers must answer the kubelets.
        order = {c: i for i, c in enumerate(COMPONENTS)}
        for region, component in sorted(plan.control_plane, key=lambda rc: order.get(rc[1], 9)):
            try:
                self.fleet.control_plane(region).restart(component)
            except PlatformError as exc:
                errors.append(f"{region} {component}: {exc.message}")
        for name in plan.processes:
            spec = self.fleet.specs[name]
            if procs.alive(spec):
                procs.signal_proc(spec, signal.SIGCONT)
                continue
            procs.spawn(spec, fleet=self.fleet.platform.fleet_id)
            self.fleet.platform.respawned(spec)
        time.sleep(0.3)
        errors += [f"{n} exited after restart" for n in plan.processes if not procs.alive(self.fleet.specs[n])]
        raise_if(errors, fault)


class ZoneLossHandler(_KwokProcessLoss):
    def targets(self, fault: ZoneLoss) -> tuple[list[str], list[list[str]], list[str]]:
        t = fault.target
        zones = [z for z, region in self.fleet.data["zones"].items() if t in (z, region)]
        names = [n for z in zones for n in (f"kwok-{z}", f"kubelet-{z}")]
        return names, [], zones


class RegionLossHandler(_KwokProcessLoss):
    def targets(self, fault: RegionLoss) -> tuple[list[str], list[list[str]], list[str]]:
        region = fault.target
        assert region is not None
        zones = [z for z, r in self.fleet.data["zones"].items() if r == region]
        names = [s.name for s in self.fleet.specs.values() if s.region == region]
        cp = [[region, c] for c in COMPONENTS if c != "kwok"]
        return names, cp, zones


class ControlPlaneLossHandler(_KwokProcessLoss):
    """The region's kube-apiserver really stops: the data plane keeps serving, endpoints freeze."""

    def targets(self, fault: ControlPlaneLoss) -> tuple[list[str], list[list[str]], list[str]]:
        assert fault.target is not None
        return [], [[fault.target, "kube-apiserver"]], []


class KwokPlatform:
    name = "kwok"

    def __init__(self, state_dir: Path, topology: Topology | None = None) -> None:
        self.state_dir = state_dir.resolve()
        self.topology = topology
        self.fleet_id = str(self.state_dir)
        if userns.needed():
            # A fleet brought up without root lives in a namespace of its own: work on it from inside.
            holder = userns.holder(self.state_dir)
            if holder is not None:
                userns.reexec(self.state_dir, holder)

    # -- state ----------------------------------------------------------------------------------
    @property
    def fleet_file(self) -> Path:
        return self.state_dir / "fleet.json"

    def _state(self) -> StateFile:
        return StateFile(self.state_dir, "kwok", KwokState)

    def _load(self) -> dict[str, Any] | None:
        return self._state().load()

    def _save(self, data: dict[str, Any]) -> None:
        self._state().save(data)

    def _specs(self, data: dict[str, Any]) -> list[procs.ProcSpec]:
        return [procs.ProcSpec(**p) for p in data["processes"]]

    def layout(self) -> Layout:
        data = self._load()
        if data is None:
            raise PlatformError("the kwok fleet is not up", hint="run `failover-drill up --platform kwok` first")
        return Layout.from_json(data["layout"])

    def cp_spec(self, region: str, data: dict[str, Any]) -> ControlPlaneSpec:
        cp = data["control_planes"][region]
        return ControlPlaneSpec(
            region=region,
            state_dir=Path(cp["dir"]),
            ports=Ports(**cp["ports"]),
            fleet_id=self.fleet_id,
            pod_cidr=cp["pod_cidr"],
            service_cidr=cp["service_cidr"],
            run_kwok=False,
            node_monitor_grace_period_s=cp["grace_s"],
            node_monitor_period_s=cp["monitor_s"],
            pod_eviction_s=cp.get("eviction_s"),  # absent in a fleet brought up before the setting
        )

    # -- lifecycle ------------------------------------------------------------------------------
    def is_up(self) -> bool:
        data = self._load()
        return data is not None and any(procs.alive(s) for s in self._specs(data))

    def mesh(self) -> str:
        data = self._load()
        if data is not None:
            return str(data["mesh"])
        return self.topology.mesh if self.topology else "unknown"

    def entrypoint(self) -> str:
        return self.layout().frontdoor_url()

    def check_in_region_traffic(self) -> None:
        raise ConfigError(
            "in-region traffic workers run as a Job on kind; the kwok platform's users are on this host",
            field="traffic.origin",
            hint="use traffic.origin: host on kwok (the default)",
        )

    def traffic_workers(
        self, *, region: str, spec_json: str, duration_s: float, workers: int, key_prefix: str
    ) -> RemoteWorkers:
        self.check_in_region_traffic()
        raise AssertionError("unreachable")

    def analysis_host(self) -> str:
        # The controllers run as processes in the tool's own network namespace (or the rootless
        # fleet's, which the tool enters first): loopback reaches them.
        return "127.0.0.1"

    def region_kubes(self) -> dict[str, Kube]:
        data = self._load()
        if data is None:
            raise PlatformError("the kwok fleet is down", hint="bring it up: failover-drill up --platform kwok")
        return {region: Kube(Path(cfg)) for region, cfg in data["kubeconfigs"].items()}

    def locations(self) -> dict[str, list[str]]:
        data = self._load()
        if data is None:
            return {}
        out: dict[str, list[str]] = {}
        for zone, region in data["zones"].items():
            out.setdefault(region, []).append(zone)
        return out

    def up(self, progress: Progress | None = None, owner_pid: int | None = None) -> None:
        say = progress or _noop
        topo = self.topology
        if topo is None:
            raise PlatformError("no topology given", hint="pass --topology or run from the project folder")
        if userns.needed():
            why = userns.unavailable()
            if why:
                raise PlatformError(
                    f"the kwok platform cannot make its pod network without root: {why}",
                    hint="run as root, allow unprivileged user namespaces, or use the sandbox",
                )
            from failover_drill import toolchain

            # Built out here: the namespace has no network, and a first build downloads modules.
            say("checking the Kubernetes binaries (built from source on first use: tens of minutes)")
            toolchain.paths([*COMPONENTS, ROLLOUTS])
            say("no root: the fleet gets a user namespace of its own, where it is root (no privilege on the host)")
            holder = userns.create(self.state_dir)
            try:
                userns.reexec(self.state_dir, holder)
            except BaseException:
                userns.destroy(self.state_dir)
                raise
        why = can_create()
        if why:
            raise PlatformError(f"the kwok platform cannot run here: {why}", hint="run as root, or use the sandbox")
        with self._state().locked():
            existing = self._load()
            if existing is not None:
                if all(procs.alive(s) for s in self._specs(existing)):
                    say("kwok fleet already up")
                    return
                say("cleaning up a kwok fleet that was left half-running")
                self._teardown(existing)
            from failover_drill import toolchain

            # Checked before anything starts: a template asking the SLI endpoint for what it does
            # not serve would only fail in the middle of a canary.
            analysis = load_rollout_manifests(rollouts_dir(topo)).templates()
            say("checking the Kubernetes binaries (built from source on first use: tens of minutes)")
            binaries = toolchain.paths([*COMPONENTS, ROLLOUTS])
            envoy, _version = resolve_envoy()
            policy = load_policy(topo.manifests_dir(), topo.mesh)
            data = self._plan(topo, policy, owner_pid)
            # Saved before anything starts, so `down` and `recover` can always find what started.
            self._save(data)
            try:
                self._bring_up(topo, policy, data, binaries, envoy, say, analysis)
            except BaseException:
                self._teardown(data)
                raise
        say(f"kwok fleet up: {len(data['zones'])} nodes in {len(topo.regions)} regions, front door {self.entrypoint()}")

    def _plan(self, topo: Topology, policy: MeshPolicy, owner_pid: int | None) -> dict[str, Any]:
        layout = gateway_layout(topo, self.state_dir)
        cps: dict[str, dict[str, Any]] = {}
        for i, r in enumerate(topo.regions):
            cps[r.name] = {
                "dir": str(self.state_dir / "clusters" / r.name),
                "ports": vars(Ports.free()),
                "pod_cidr": region_cidr(i),
                "service_cidr": f"10.{96 + i}.0.0/16",
                "grace_s": topo.kwok.node_monitor_grace_period_s,
                "monitor_s": topo.kwok.node_monitor_period_s,
                "eviction_s": topo.kwok.pod_eviction_s,
            }
        return {
            "version": 1,
            "platform": "kwok",
            "mesh": topo.mesh,
            "topology": str(topo.source or ""),
            "owner_pid": owner_pid,
            "started_wall": time.time(),
            "layout": layout.to_json(),
            "processes": [],
            "kubeconfigs": {r: str(Path(c["dir"]) / "kubeconfig") for r, c in cps.items()},
            "control_planes": cps,
            "zones": {z: r.name for r in topo.regions for z in r.zone_names()},
            "netns": PodNetwork(self.state_dir).name,
            "lease_s": topo.kwok.node_lease_duration_s,
        }

    def _bring_up(
        self,
        topo: Topology,
        policy: MeshPolicy,
        data: dict[str, Any],
        binaries: dict[str, Path],
        envoy: Path,
        say: Progress,
        analysis: list[dict[str, Any]],
    ) -> None:
        layout = Layout.from_json(data["layout"])
        say("creating the pods' network namespace")
        PodNetwork(self.state_dir).create()
        say(
            f"starting {len(topo.regions)} Kubernetes control planes (etcd, kube-apiserver, controller-manager, scheduler)"
        )
        self._start_control_planes(data, binaries)
        kubes = {r: Kube(Path(p)) for r, p in data["kubeconfigs"].items()}
        try:
            say("registering one kwok node per zone, and the CRDs the manifests need")
            self._register(topo, data, kubes)
            # Istio's gateways follow the VirtualService weights Argo Rollouts writes (mesh_agent.py);
            # Cilium has no traffic routing for Argo Rollouts: its canary's share is its pods' share.
            dataplane.prepare_files(layout, policy, canary_split=policy.mesh == "istio")
            for region in layout.regions:
                ledger_db.connect(self._ledger(region)).close()
            specs = self._process_specs(topo, data, layout, policy, binaries, envoy)
            say(
                f"starting {len(specs)} processes: kwok and a kubelet per node, mesh agents, Envoy gateways, front door"
            )
            for spec in specs:
                procs.spawn(spec, env={PROCESS_ENV: spec.name}, fleet=self.fleet_id)
                data["processes"].append(vars(spec))
                self._save(data)
            say("applying the payment-gateway manifests (server-side apply: the API servers validate them)")
            for region, kube in kubes.items():
                # The AnalysisTemplates (clusters/manifests/rollouts) with them: a Rollout can name them at once.
                kube.apply(region_objects(topo, region) + analysis)
            for kube in kubes.values():
                kube.wait_deployments(NAMESPACE, timeout_s=UP_TIMEOUT_S, progress=None)
            self._wait_ready(data, layout, say)
        finally:
            for kube in kubes.values():
                kube.close()

    def _start_control_planes(self, data: dict[str, Any], binaries: dict[str, Path]) -> None:
        errors: list[BaseException] = []

        def start(region: str) -> None:
            try:
                ControlPlane(self.cp_spec(region, data), binaries).start()
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=start, args=(r,)) for r in data["control_planes"]]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            raise errors[0]

    def _register(self, topo: Topology, data: dict[str, Any], kubes: dict[str, Kube]) -> None:
        from failover_drill import toolchain

        crds = []
        # Argo Rollouts' CRDs first of all: its controller must find them when it starts.
        for f in toolchain.crd_files(["argo-rollouts", "istio", "mcs-api"]):
            crds += [d for d in _yaml_docs(f) if d.get("kind") == "CustomResourceDefinition"]

        def register(i: int, r: Region) -> None:
            kube = kubes[r.name]
            kube.create_crds(crds)
            kube.wait_crds([c["metadata"]["name"] for c in crds])
            nodes = [
                {
                    "apiVersion": "v1",
                    "kind": "Node",
                    "metadata": {
                        "name": zone,
                        "annotations": {"node.alpha.kubernetes.io/ttl": "0", "kwok.x-k8s.io/node": "fake"},
                        "labels": {
                            "kubernetes.io/hostname": zone,
                            "kubernetes.io/os": "linux",
                            "kubernetes.io/arch": "amd64",
                            "type": "kwok",
                            "topology.kubernetes.io/region": r.name,
                            "topology.kubernetes.io/zone": zone,
                        },
                    },
                    "spec": {"podCIDR": node_cidr(i, j), "podCIDRs": [node_cidr(i, j)]},
                }
                for j, zone in enumerate(r.zone_names())
            ]
            kube.apply(nodes)

        # Region by region this was a third of `up`: each API server establishes its CRDs alone.
        with ThreadPoolExecutor(max_workers=len(topo.regions)) as pool:
            for done in [pool.submit(register, i, r) for i, r in enumerate(topo.regions)]:
                done.result()

    def _kwok_config(self) -> Path:
        """kwok's Stages for nodes only: initialise and heartbeat with a lease. Pods are the kubelet
        agent's (real processes, real probes), so kwok gets no pod Stage."""
        from failover_drill import toolchain

        path = self.state_dir / "kwok-nodes.yaml"
        stages = [f.read_text().strip() for f in toolchain.component_files("kwok") if f.name in NODE_STAGE_FILES]
        path.write_text("\n---\n".join(stages) + "\n")
        return path

    def _process_specs(
        self,
        topo: Topology,
        data: dict[str, Any],
        layout: Layout,
        policy: MeshPolicy,
        binaries: dict[str, Path],
        envoy: Path,
    ) -> list[procs.ProcSpec]:
        logs = layout.logs_dir()
        kwok_conf = self._kwok_config()
        specs: list[procs.ProcSpec] = []
        kwok_ports = allocate([f"kwok-{z}" for z in data["zones"]], 0)
        for zone, region in data["zones"].items():
            cp_dir = Path(data["control_planes"][region]["dir"])
            specs.append(
                procs.ProcSpec(
                    name=f"kwok-{zone}",
                    kind="kwok",
                    region=region,
                    zone=zone,
                    log=str(logs / f"kwok-{zone}.log"),
                    argv=[
                        str(binaries["kwok"]),
                        f"--kubeconfig={cp_dir / 'kubeconfigs' / 'kwok.kubeconfig'}",
                        f"--config={kwok_conf}",
                        "--manage-all-nodes=false",
                        f"--manage-single-node={zone}",
                        f"--node-lease-duration-seconds={data['lease_s']}",
                        f"--server-address=127.0.0.1:{kwok_ports[f'kwok-{zone}']}",
                    ],
                )
            )
            specs.append(
                procs.ProcSpec(
                    name=f"kubelet-{zone}",
                    kind="kubelet",
                    region=region,
                    zone=zone,
                    log=str(logs / f"kubelet-{zone}.log"),
                    argv=[
                        sys.executable,
                        "-m",
                        "failover_drill.platforms.kwok.kubelet",
                        "--kubeconfig",
                        data["kubeconfigs"][region],
                        "--node",
                        zone,
                        "--netns",
                        data["netns"],
                        "--ledger-dir",
                        str(self._ledger(region).parent),
                        "--state",
                        str(self.state_dir),
                        "--fleet",
                        self.fleet_id,
                    ],
                )
            )
        for region in layout.regions:
            argv = [
                sys.executable,
                "-m",
                "failover_drill.platforms.kwok.mesh_agent",
                "--state",
                str(self.state_dir),
                "--region",
                region,
                "--mesh",
                policy.mesh,
            ]
            if not policy.locality_enabled:
                argv.append("--no-locality")
            specs.append(
                procs.ProcSpec(
                    name=f"control-plane-{region}",
                    kind="control-plane",
                    region=region,
                    argv=argv,
                    log=str(logs / f"control-plane-{region}.log"),
                )
            )
        rollout_ports = allocate(
            [f"{p}-{r}" for r in layout.regions for p in ("rollouts-metrics", "rollouts-healthz")], 0
        )
        for region in layout.regions:
            specs.append(
                procs.ProcSpec(
                    name=f"rollouts-{region}",
                    kind=ROLLOUTS,
                    region=region,
                    log=str(logs / f"rollouts-{region}.log"),
                    argv=[
                        str(binaries[ROLLOUTS]),
                        f"--kubeconfig={data['kubeconfigs'][region]}",
                        # Each on its own ports: several controllers share this host.
                        f"--metricsPort={rollout_ports[f'rollouts-metrics-{region}']}",
                        f"--healthzPort={rollout_ports[f'rollouts-healthz-{region}']}",
                        # One controller per cluster, nothing to elect; the drill's clock matters more
                        # than its throughput.
                        "--leader-elect=false",
                        "--loglevel=info",
                    ],
                )
            )
        specs += dataplane.envoy_specs(layout, envoy, topo.sandbox.envoy_concurrency)
        return specs

    def _ledger(self, region: str) -> Path:
        # One database per region, as on the sandbox: the Deployment's ledger volume maps here.
        return self.state_dir / "ledgers" / region / "payments.sqlite"

    def replicas(self, data: dict[str, Any]) -> list[ReplicaInfo]:
        """Every payment-gateway pod with an IP, as the API servers say now."""
        out = []
        for region, path in data["kubeconfigs"].items():
            kube = Kube(Path(path))
            try:
                for pod in kube.pods(NAMESPACE, f"app={APP}"):
                    ip = (pod.get("status") or {}).get("podIP")
                    if ip:
                        zone = (pod["metadata"].get("labels") or {}).get("zone") or ""
                        out.append(ReplicaInfo(str(pod["metadata"]["name"]), region, zone, 8080, str(ip)))
            except Exception as exc:  # an API server that is down (control-plane loss) answers nothing
                log.warning("could not list pods", region=region, error=str(exc)[:200])
            finally:
                kube.close()
        return out

    def _wait_ready(self, data: dict[str, Any], layout: Layout, say: Progress) -> None:
        deadline = time.monotonic() + UP_TIMEOUT_S
        want = len(data["zones"]) * (self.topology.replicas_per_zone if self.topology else 1)
        stages: list[tuple[str, Callable[[], bool]]] = [
            ("every pod Ready (its readinessProbe passed)", lambda: len(self._ready_pods(data)) >= want),
            (
                "Envoy gateways and front door live",
                lambda: all(
                    dataplane.envoy_live(p)
                    for p in [layout.frontdoor_admin_port, *[g.admin_port for g in layout.gateways.values()]]
                ),
            ),
            ("gateways loaded every ready pod", lambda: self._gateways_loaded(data, layout)),
            ("front door sees every region healthy", lambda: dataplane.frontdoor_all_healthy(layout)),
            (
                "every region serving its own users",
                lambda: all(dataplane.served_home(layout, r) for r in layout.regions),
            ),
        ]
        specs = self._specs(data)
        for label, check in stages:
            say(f"waiting: {label}")

            def not_yet(check: Callable[[], bool] = check, label: str = label) -> str | None:
                dead = [s.name for s in specs if not procs.alive(s)]
                if dead:  # raised at once: no retry
                    raise PlatformError(
                        f"{dead[0]} exited during start-up; last lines of its log:\n"
                        f"{procs.log_tail(next(s.log for s in specs if s.name == dead[0]))}"
                    )
                try:
                    return None if check() else label
                except (OSError, PlatformError):
                    return label

            # One deadline for every stage.
            wait_until(
                not_yet,
                max(0.0, deadline - time.monotonic()),
                0.5,
                lambda label: PlatformError(
                    f"the kwok fleet did not become ready within {UP_TIMEOUT_S:.0f}s (stuck at: {label})",
                    hint=f"look at the logs in {layout.logs_dir()} and under {self.state_dir / 'clusters'}",
                ),
            )
        layout.replicas = self.replicas(data)
        data["layout"] = layout.to_json()
        self._save(data)

    def _ready_pods(self, data: dict[str, Any]) -> list[str]:
        out = []
        for path in data["kubeconfigs"].values():
            kube = Kube(Path(path))
            try:
                for pod in kube.pods(NAMESPACE, f"app={APP}"):
                    conds = {c["type"]: c["status"] for c in (pod.get("status") or {}).get("conditions") or []}
                    if conds.get("Ready") == "True":
                        out.append(str(pod["metadata"]["name"]))
            finally:
                kube.close()
        return out

    def _gateways_loaded(self, data: dict[str, Any], layout: Layout) -> bool:
        reps = self.replicas(data)
        return all(
            dataplane.gateway_loaded(layout, r, {f"{x.host}:{x.port}" for x in reps if x.region == r})
            for r in layout.regions
        )

    def wait_steady(self, region: str, timeout_s: float = 30.0) -> None:
        data = self._load()
        if data is None:
            raise PlatformError("the kwok fleet is not up", hint="run `failover-drill up --platform kwok` first")
        layout = Layout.from_json(data["layout"])
        dataplane.wait_steady(
            layout, self._specs(data), region, timeout_s, "kwok fleet", "failover-drill down --platform kwok"
        )

    def down(self, progress: Progress | None = None) -> None:
        say = progress or _noop
        with self._state().locked():
            try:
                data = self._load()
            except PlatformError:
                say(f"the kwok state is damaged: {self._state().salvage().describe()}")
                PodNetwork(self.state_dir).delete()
                return
            if data is None:
                PodNetwork(self.state_dir).delete()
                userns.destroy(self.state_dir)
                say("kwok fleet is not up")
                return
            left = self._teardown(data)
        if left:
            raise PlatformError(f"could not stop: {', '.join(left)}", hint="stop them by hand (kill -9)")
        say("kwok fleet down: every process stopped, the pods' network namespace removed")

    def _teardown(self, data: dict[str, Any]) -> list[str]:
        specs = self._specs(data)
        order = {"frontdoor": 0, "gateway": 1, ROLLOUTS: 2, "control-plane": 2, "kubelet": 3, "kwok": 4}
        specs.sort(key=lambda s: order.get(s.kind, 9))
        left = procs.stop_all(specs)
        for region in data["control_planes"]:
            left += ControlPlane.load(self.cp_spec(region, data)).stop()
        # The pods' containers (the kubelets' children) and anything else carrying the fleet's mark.
        procs.stop_marked(self.fleet_id)
        PodNetwork(self.state_dir).delete()
        userns.destroy(self.state_dir)
        if not left:
            self.fleet_file.unlink(missing_ok=True)
        return left

    def respawned(self, spec: procs.ProcSpec) -> None:
        """Record a restarted process's new pid in the state file."""
        data = self._load()
        if data is None:
            return
        for p in data["processes"]:
            if p["name"] == spec.name:
                p["pid"], p["start_ticks"] = spec.pid, spec.start_ticks
        self._save(data)

    def status(self) -> FleetStatus:
        data = self._load()
        if data is None:
            return FleetStatus(up=False, platform=self.name)
        layout = Layout.from_json(data["layout"])
        comps = []
        for s in self._specs(data):
            state = "frozen" if procs.frozen(s) else ("running" if procs.alive(s) else "stopped")
            comps.append(layout.status_row(s, state))
        for region in data["control_planes"]:
            cp = ControlPlane.load(self.cp_spec(region, data))
            for component, alive in cp.alive().items():
                comps.append(
                    {
                        "name": f"{component}-{region}",
                        "kind": component,
                        "region": region,
                        "zone": None,
                        "pid": cp.process(component).pid,
                        "port": None,
                        "admin_port": None,
                        "metrics": None,
                        "state": "running" if alive else "stopped",
                    }
                )
        return FleetStatus(
            up=any(c["state"] != "stopped" for c in comps),
            platform=self.name,
            mesh=data["mesh"],
            entrypoint=layout.frontdoor_url(),
            components=comps,
        )

    # -- faults ---------------------------------------------------------------------------------
    def _faults(self) -> FaultTable:
        data = self._load()
        if data is None:
            raise FaultError(
                "the kwok fleet is not up, nothing to inject into", hint="run `failover-drill up --platform kwok`"
            )
        fleet = KwokFleet(self, data, Layout.from_json(data["layout"]), {s.name: s for s in self._specs(data)})
        return FaultTable(
            "kwok",
            {
                ZoneLoss: ZoneLossHandler(fleet),
                RegionLoss: RegionLossHandler(fleet),
                ControlPlaneLoss: ControlPlaneLossHandler(fleet),
                LinkLatency: LinkLatencyHandler(fleet),
                Partition: PartitionHandler(fleet),
                Brownout: BrownoutHandler(fleet),
                LostResponse: LostResponseHandler(fleet),
                Blackout: BlackoutHandler(fleet),
                CertExpiry: CertExpiryHandler(fleet),
            },
        )

    def plan_fault(self, fault: Fault) -> dict[str, Any]:
        return self._faults().plan(fault)

    def inject(self, fault: Fault, plan: dict[str, Any]) -> dict[str, Any]:
        return self._faults().inject(fault, plan)

    def revert(self, fault: Fault, plan: dict[str, Any]) -> None:
        with self._state().locked():
            if self._load() is None:
                return  # the fleet is gone, and every fault with it
            self._faults().revert(fault, plan)

    # -- observations ---------------------------------------------------------------------------
    def events(self, since_wall: float) -> list[PlatformEvent]:
        data = self._load()
        if data is None:
            return []
        layout = Layout.from_json(data["layout"])
        # The mesh agents log Kubernetes' own verdicts too (node Ready changes) as they watch them.
        seen = dataplane.read_events(layout, since_wall)
        return sorted(seen + self._rollout_events(data, since_wall), key=lambda e: e.wall)

    def _rollout_events(self, data: dict[str, Any], since_wall: float) -> list[PlatformEvent]:
        """The Argo Rollouts controllers' own record (steps, analysis runs, aborts, promotions),
        read from each region's API server: the drill's timeline shows what they decided."""
        out = []
        for region, cfg in data["kubeconfigs"].items():
            kube = Kube(Path(cfg))
            try:
                for e in ro.controller_events(kube, NAMESPACE, since_wall):
                    detail = f"{e.kind} {e.name}: {e.message}" if e.message else f"{e.kind} {e.name}"
                    out.append(PlatformEvent(e.wall, "argo-rollouts", e.reason, region, None, detail))
            except PlatformError as exc:
                # A region whose API server is down has nothing to add; the drill says so elsewhere.
                log.warning("rollout events unreadable", region=region, error=exc.message)
            finally:
                kube.close()
        return out

    def ledger(self) -> list[LedgerCharge]:
        data = self._load()
        if data is None:
            return []
        out = []
        for region in data["control_planes"]:
            for c in ledger_db.read_all(self._ledger(region)):
                out.append(LedgerCharge(c.idempotency_key, c.region, c.zone, c.replica, c.payment_id, c.amount_cents))
        return out

    def plan_lines(self, faults: list[Fault]) -> list[str]:
        return []

    def recover_orphans(self, alive: Callable[[int], bool]) -> list[str]:
        try:
            data = self._load()
        except PlatformError:
            return []
        owner = None if data is None else data.get("owner_pid")
        if owner is not None and not alive(int(owner)) and self.fleet_file.exists():
            self.down()
            return ["stopped a kwok fleet left behind by a drill that died"]
        if data is None and userns.holder(self.state_dir) is not None:
            userns.destroy(self.state_dir)  # an `up` without root that died before its fleet existed
            return ["removed the user namespace of a kwok fleet that never came up"]
        return []

    def repair_leftovers(self) -> list[str]:
        """What a fault left on the live fleet whatever the fault ledger says (it may be torn or
        lost): platforms/kwok/leftovers.py. A damaged state file: every process of the fleet is
        stopped."""
        with self._state().locked():
            try:
                data = self._load()
            except PlatformError as exc:
                return [f"{exc.message}: {self._state().salvage().describe()}"]
            if data is None or not any(procs.alive(s) for s in self._specs(data)):
                return []
            out = leftovers.repair(self, data)
        if out.failed:
            done = f" (repaired: {'; '.join(out.done)})" if out.done else ""
            raise FaultError(
                f"could not repair: {'; '.join(out.failed)}{done}",
                hint="look at `failover-drill status --platform kwok`; `failover-drill down --platform kwok` stops "
                "the fleet whatever its state",
            )
        return out.done

    def capacity_warning(self, rate_per_worker: float) -> str | None:
        return None


def _yaml_docs(path: Path) -> list[dict[str, Any]]:
    import yaml

    return [d for d in yaml.safe_load_all(path.read_text()) if isinstance(d, dict)]
