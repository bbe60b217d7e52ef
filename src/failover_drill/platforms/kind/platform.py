"""The kind platform: one kind cluster per region joined by Istio multi-primary or Cilium Cluster
Mesh, the repo's payment-gateway manifests in each, and the MultiClusterService played by a
real Envoy front door on the host (the sandbox's front-door config, with the BackendConfig's
health checks, pointed at each cluster's ingress port).

Everything it does is a step: a command where there is no API (docker, kind, istioctl, cilium,
tc), an ApiStep through the kube layer for Kubernetes API work, exec into a pod included (shown
as its kubectl equivalent). `up_steps` yields them in order (asking the runner for the few addresses
it needs on the way), so `failover-drill plan --platform kind` prints what `up` does. The API
steps reach each cluster by its kind context (`kind-fd-<region>`) in the kubeconfig kind writes to.
"""

from __future__ import annotations

import contextlib
import json
import socket
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import yaml

from failover_drill import obs
from failover_drill.config.analysis_templates import load_rollout_manifests, rollouts_dir
from failover_drill.config.manifests import load_policy
from failover_drill.config.topology import Topology, load_topology
from failover_drill.errors import FaultError, PlatformError, StateDamaged
from failover_drill.faults.ledger import FaultLedger, ledger_path
from failover_drill.faults.model import Fault
from failover_drill.platforms import processes as procs
from failover_drill.platforms.base import FleetStatus, LedgerCharge, PlatformEvent, Progress
from failover_drill.platforms.envoy import admin
from failover_drill.platforms.envoy.binary import ENVOY_FLAGS, resolve_envoy
from failover_drill.platforms.envoy.config import frontdoor_bootstrap, sds_root, write_atomic
from failover_drill.platforms.envoy.events import parse_event
from failover_drill.platforms.envoy.layout import GatewayInfo, Layout, routing
from failover_drill.platforms.envoy.leftovers import Repairs, reset_runtime
from failover_drill.platforms.fault_table import FaultTable
from failover_drill.platforms.kind import api, leftovers
from failover_drill.platforms.kind import mesh as mesh_mod
from failover_drill.platforms.kind import rollouts as rollouts_mod
from failover_drill.platforms.kind.cluster_config import (
    DEFAULT_HOST_PORT_BASE,
    all_nodes,
    kind_config,
    names,
)
from failover_drill.platforms.kind.commands import (
    AnyStep,
    RecordingRunner,
    Runner,
    Step,
    SubprocessRunner,
    missing_tools,
)
from failover_drill.platforms.kind.doctor import refuse_unless_ready
from failover_drill.platforms.kind.faults import (
    KindFleet,
    StepHandler,
    fault_table,
    faults_in_force,
    link_status,
)
from failover_drill.platforms.kind.netem import (
    LEDGER_PATH,
    latency_setup_steps,
    pod_tools,
    read_addresses,
)
from failover_drill.platforms.kind.state import KindState
from failover_drill.platforms.kind.traffic_jobs import KindTrafficJobs, delete_job_step, list_traffic_jobs
from failover_drill.platforms.kind.workload import cluster_objects
from failover_drill.platforms.kube.client import Kube, KubeContexts
from failover_drill.platforms.kube.workload import APP, IMAGE, NAMESPACE
from failover_drill.platforms.pki import MeshCA
from failover_drill.platforms.polling import poll
from failover_drill.platforms.ports import allocate
from failover_drill.platforms.state_file import StateFile

log = obs.get(__name__)
REPO_ROOT = Path(__file__).resolve().parents[4]
DOCKERFILE = "clusters/kind/payment-gateway.Dockerfile"


def _noop(_: str) -> None:
    pass


class KindPlatform:
    name = "kind"

    def __init__(
        self,
        state_dir: Path,
        topology: Topology | None = None,
        runner: Runner | None = None,
        host_port_base: int = DEFAULT_HOST_PORT_BASE,
        kubeconfig: Path | None = None,
    ) -> None:
        self.state_dir = state_dir.resolve()
        self._topology = topology
        self.kubeconfig = kubeconfig  # None: $KUBECONFIG or ~/.kube/config, where kind writes its contexts
        self.runner: Runner = runner or SubprocessRunner(kubes=self._kubes())
        self.host_port_base = host_port_base

    def _kubes(self) -> KubeContexts:
        return KubeContexts(self.kubeconfig)

    # -- state ----------------------------------------------------------------------------------
    @property
    def fleet_file(self) -> Path:
        return self.state_dir / "fleet.json"

    def _state(self) -> StateFile:
        return StateFile(self.state_dir, "kind", KindState)

    def _load(self) -> dict[str, Any] | None:
        return self._state().load()

    def _save(self, data: dict[str, Any]) -> None:
        self._state().save(data)

    def _locked(self) -> contextlib.AbstractContextManager[None]:
        return self._state().locked()

    @property
    def topology(self) -> Topology:
        if self._topology is not None:
            return self._topology
        data = self._load()
        if data is None:
            raise PlatformError("the kind fleet is not up", hint="run `failover-drill up --platform kind`")
        source = data.get("topology_source")
        self._topology = load_topology(Path(source) if source else None, mesh=data["mesh"])
        return self._topology

    def layout(self, ports: dict[str, int] | None = None) -> Layout:
        """The front door's view: each region's ingress is its kind host port."""
        topo = self.topology
        base = self.host_port_base
        if ports is None:
            data = self._load()
            ports = (data or {}).get("frontdoor_ports") or {"frontdoor": 0, "frontdoor-admin": 0}
            base = int(data.get("host_port_base", base)) if data else base
        all_names = names(topo)
        return Layout(
            state_dir=str(self.state_dir),
            frontdoor_port=ports["frontdoor"],
            frontdoor_admin_port=ports["frontdoor-admin"],
            regions=topo.region_names,
            gateways={
                r.name: GatewayInfo(
                    region=r.name,
                    home_zone=r.home_zone(),
                    ingress_port=all_names[r.name].host_port(base),
                    eastwest_port=0,
                    admin_port=0,
                )
                for r in topo.regions
            },
            replicas=[],
            **routing(topo),
        )

    # -- bring-up -------------------------------------------------------------------------------
    def up_steps(self, run: Runner) -> Iterator[AnyStep]:
        """Every command of `up`, in order. Queries (addresses) go through `run` as they come."""
        topo = self.topology
        # Checked before the first command: a template that asks the drill's SLI endpoint for what
        # it does not serve would only fail in the middle of a canary.
        analysis = load_rollout_manifests(rollouts_dir(topo)).templates()
        existing = set(run.run(Step("list kind clusters", ("kind", "get", "clusters"), timeout_s=30)).split())
        for region in topo.regions:
            n = names(topo)[region.name]
            if n.cluster in existing:
                continue
            # With kind's CNI disabled (Cilium) no node is Ready before Cilium runs: kind's --wait
            # would sit out its whole timeout. Cilium's steps wait for the nodes once it is installed.
            wait = () if topo.mesh.startswith("cilium") else ("--wait", "180s")
            yield Step(
                f"create kind cluster {n.cluster} ({len(region.zones)} zones)",
                ("kind", "create", "cluster", "--name", n.cluster, "--config", "-", *wait),
                stdin=yaml.safe_dump(kind_config(topo, region, self.host_port_base), sort_keys=False),
                timeout_s=600,
            )
        yield Step(
            f"build the payment-gateway image {IMAGE}",
            ("docker", "build", "-t", IMAGE, "-f", str(REPO_ROOT / DOCKERFILE), str(REPO_ROOT)),
            timeout_s=900,
        )
        for n in names(topo).values():
            yield Step(
                f"load {IMAGE} into {n.cluster}",
                ("kind", "load", "docker-image", IMAGE, "--name", n.cluster),
                timeout_s=600,
            )
        # The mesh's images: pulled once here and loaded into each cluster, not pulled by every node.
        images = mesh_mod.mesh_images(topo.mesh)
        yield from mesh_mod.pull_steps(images)
        for n in names(topo).values():
            yield Step(
                f"load the mesh's images into {n.cluster}",
                ("kind", "load", "docker-image", *(i.ref for i in images), "--name", n.cluster),
                timeout_s=900,
            )
        yield from mesh_mod.mcs_crd_steps(topo)
        if topo.mesh.startswith("cilium"):
            yield from mesh_mod.cilium_steps(topo, self.state_dir, run)
        else:
            yield from mesh_mod.istio_steps(topo, self.state_dir, run)
        yield from rollouts_mod.install_steps(topo)
        for n in names(topo).values():
            yield from self.workload_steps(n.region, analysis)

        yield from latency_setup_steps(topo, read_addresses(topo, run))
        yield from mesh_mod.remote_sync_steps(topo)

    def workload_steps(self, region: str, analysis: list[dict[str, Any]] | None = None) -> list[AnyStep]:
        """The region's payment-gateway objects (and the Argo Rollouts AnalysisTemplates, which a
        Rollout of it names) applied, then every zone's Deployment rolled out."""
        topo = self.topology
        ctx = names(topo)[region].context
        objects = cluster_objects(topo, region) + list(analysis or [])
        steps: list[AnyStep] = [api.apply(ctx, f"{region}: payment-gateway ({topo.mesh})", objects)]
        for zone in topo.region(region).zones:
            steps.append(api.wait_rollout(ctx, f"{region}: wait for {APP}-{zone}", NAMESPACE, f"{APP}-{zone}", 300))
        return steps

    def up(self, progress: Progress | None = None, owner_pid: int | None = None) -> None:
        """Run every step of `up_steps`, then start the front door. Idempotent: clusters that exist
        are kept, manifests re-applied, so a failed `up` is continued by running it again."""
        say = progress or _noop
        topo = self.topology
        real = isinstance(self.runner, SubprocessRunner)
        if real:
            # `failover-drill doctor --platform kind`'s checks, in seconds, before anything is created.
            refuse_unless_ready(topo)
        with self._locked():
            runner = SubprocessRunner(progress=say, kubes=self._kubes()) if real else self.runner
            # Written first, so `down` knows which clusters to delete even if bring-up stops halfway.
            self._save({"mesh": topo.mesh, "topology_source": str(topo.source) if topo.source else None})
            try:
                for step in self.up_steps(runner):
                    runner.run(step)
            except PlatformError as exc:
                raise PlatformError(
                    f"kind bring-up stopped: {exc.message}",
                    hint="fix the cause and run `failover-drill up --platform kind` again (it continues where it "
                    "stopped), or `failover-drill down --platform kind` to delete the clusters",
                ) from None
            ports = allocate(["frontdoor", "frontdoor-admin"], 0)
            data: dict[str, Any] = {
                "mesh": topo.mesh,
                "topology_source": str(topo.source) if topo.source else None,
                "frontdoor_ports": ports,
                "host_port_base": self.host_port_base,
                "created": time.time(),
                "owner_pid": owner_pid,
            }
            self._save(data)
            data["frontdoor"] = self._start_front_door(ports)
            self._save(data)
        say(f"kind fleet up: front door {self.entrypoint()}")

    def _start_front_door(self, ports: dict[str, int]) -> dict[str, Any]:
        topo = self.topology
        layout = self.layout(ports)
        layout.events_dir().mkdir(parents=True, exist_ok=True)
        policy = load_policy(topo.manifests_dir(), topo.mesh)
        path = self.state_dir / "envoy" / "frontdoor.json"
        # Istio's ingress gateways serve TLS from the mesh CA (the edge secret): the front door
        # validates it as on the sandbox. Cilium's ingress is plain HTTP.
        tls = topo.mesh.startswith("istio")
        if tls:
            root = sds_root(MeshCA(self.state_dir / "pki").root_pem())
            write_atomic(self.state_dir / "sds" / "frontdoor" / "root.json", root)
        pod_side = self._kind_gateway_address()
        write_atomic(path, frontdoor_bootstrap(layout, policy, tls=tls, also_listen=pod_side))
        spec = procs.ProcSpec(
            name="frontdoor",
            kind="frontdoor",
            port=ports["frontdoor-admin"],
            log=str(self.state_dir / "logs" / "frontdoor.log"),
            argv=[str(resolve_envoy()[0]), "-c", str(path), *ENVOY_FLAGS, "--log-level", "warning"],
        )
        procs.spawn(spec, fleet=self.state_dir)

        def not_yet() -> str | None:
            if not procs.alive(spec):
                raise PlatformError(f"the front door exited: {procs.log_tail(spec.log, 5)}")
            try:  # the admin port opens a moment after the process
                return None if admin.cluster_hosts(ports["frontdoor-admin"], timeout=0.5) else "no clusters yet"
            except OSError as exc:
                return str(exc)

        if poll(not_yet, 30.0, 0.2) is not None:
            procs.stop_all([spec])
            raise PlatformError(f"the front door did not answer within 30 s: {procs.log_tail(spec.log, 5)}")
        pod_url = f"http://{pod_side}:{ports['frontdoor']}" if pod_side else None
        return {
            "pid": spec.pid,
            "start_ticks": spec.start_ticks,
            "log": spec.log,
            "argv": spec.argv,
            "pod_url": pod_url,
        }

    def _kind_gateway_address(self) -> str | None:
        """The host's address on the kind network, where pods reach the front door; None when it is
        not an address of this machine (Docker in a VM, or no kind network)."""
        out = self.runner.run(
            Step(
                "read the kind network's gateway (the host as pods see it)",
                ("docker", "network", "inspect", "kind", "-f", "{{range .IPAM.Config}}{{.Gateway}} {{end}}"),
                timeout_s=30,
                ok_to_fail=True,
            )
        )
        for ip in (g for g in out.split() if "." in g):
            with contextlib.suppress(OSError), socket.socket() as s:
                s.bind((ip, 0))
                return ip
        return None

    def _front_door_spec(self, data: dict[str, Any]) -> procs.ProcSpec | None:
        fd = data.get("frontdoor")
        if not fd:
            return None
        return procs.ProcSpec(
            name="frontdoor",
            kind="frontdoor",
            argv=fd["argv"],
            log=fd["log"],
            port=data["frontdoor_ports"]["frontdoor-admin"],
            pid=fd["pid"],
            start_ticks=fd["start_ticks"],
        )

    def down(self, progress: Progress | None = None) -> None:
        say = progress or _noop
        try:
            data = self._load()
        except StateDamaged as exc:
            # The records cannot be trusted: the front door is found by its mark; the clusters by
            # the default topology's names below.
            say(exc.message)
            say(self._state().salvage().describe())
            data = None
        if data is not None:
            spec = self._front_door_spec(data)
            if spec is not None:
                procs.stop_all([spec])
            procs.stop_marked(self.state_dir)
        if isinstance(self.runner, SubprocessRunner) and missing_tools({"kind"}):
            say("kind is not installed here: no kind clusters to delete")
        else:
            # Without state (removed by hand), the default topology names the clusters to delete.
            topo = self.topology if (data is not None or self._topology is not None) else load_topology(None)
            for n in names(topo).values():
                say(f"delete kind cluster {n.cluster}")
                self.runner.run(delete_cluster_step(n.cluster))
        self.fleet_file.unlink(missing_ok=True)

    # -- inspection -----------------------------------------------------------------------------
    def is_up(self) -> bool:
        data = self._load()
        spec = self._front_door_spec(data) if data else None
        return spec is not None and procs.alive(spec)

    def entrypoint(self) -> str:
        data = self._load()
        # A bring-up that stopped halfway left state but no front door.
        if data is None or "frontdoor_ports" not in data:
            raise PlatformError("the kind fleet is not up", hint="run `failover-drill up --platform kind`")
        return f"http://127.0.0.1:{data['frontdoor_ports']['frontdoor']}"

    def mesh(self) -> str:
        return self.topology.mesh

    def status(self) -> FleetStatus:
        data = self._load()
        if data is None:
            return FleetStatus(up=False, platform=self.name)
        topo = self.topology
        components: list[dict[str, Any]] = []
        for region in topo.region_names:
            nodes = all_nodes(topo, region)
            out = self.runner.run(
                Step("node states", ("docker", "inspect", "-f", "{{.Name}} {{.State.Status}}", *nodes), ok_to_fail=True)
            )
            states = dict(line.lstrip("/").split(" ", 1) for line in out.splitlines() if " " in line)
            for node in nodes:
                components.append(
                    {"name": node, "kind": "node", "region": region, "state": states.get(node, "missing")}
                )
        spec = self._front_door_spec(data)
        components.append(
            {"name": "frontdoor", "kind": "frontdoor", "state": "running" if spec and procs.alive(spec) else "stopped"}
        )
        # The faults in force, from the fault ledger beside this platform's state (read, never
        # written: a torn ledger is left for `recover` to set aside and report).
        try:
            entries, ledger_error = FaultLedger(ledger_path(self.state_dir.parent)).snapshot(), None
        except StateDamaged as exc:
            entries, ledger_error = [], f"{exc.message} ({exc.hint})"
        faults = faults_in_force(entries)
        return FleetStatus(
            up=True,
            platform=self.name,
            mesh=topo.mesh,
            entrypoint=self.entrypoint() if "frontdoor_ports" in data else None,
            components=components,
            faults_active=len(faults),
            # What each direction of each link carries: the netem `up` laid out from this
            # topology, or a link fault's where the ledger says one is on it.
            links=link_status(topo, entries),
            faults=faults,
            ledger_error=ledger_error,
        )

    def locations(self) -> dict[str, list[str]]:
        return {r.name: r.zone_names() for r in self.topology.regions}

    def wait_steady(self, region: str, timeout_s: float = 120.0) -> None:
        """Every cluster's mesh sees the others, every region healthy at the front door and the
        users' region served at home."""
        for step in mesh_mod.remote_sync_steps(self.topology):
            self.runner.run(step)
        url = self.entrypoint() + "/healthz"
        admin_port = self.layout().frontdoor_admin_port

        def not_yet() -> str | None:
            try:
                hosts = admin.cluster_hosts(admin_port, timeout=1.0)
                healthy = all(
                    all(f == "healthy" for f in hosts.get(f"mcs-{r}", {"": "missing"}).values())
                    for r in self.topology.region_names
                )
                req = urllib.request.Request(url, headers={"x-client-region": region})
                with urllib.request.urlopen(req, timeout=2.0) as resp:
                    return None if healthy and resp.headers.get("x-served-region") == region else "not yet"
            except OSError as exc:
                return str(exc)

        if poll(not_yet, timeout_s, 1.0) is None:
            return
        raise PlatformError(
            f"the kind fleet did not settle within {timeout_s:g} s (users in {region} not served at home)",
            hint="check `failover-drill status --platform kind` and `kubectl get pods -A --context kind-fd-<region>`",
        )

    def check_in_region_traffic(self) -> None:
        """Every kind fleet can run a Job in a region; whether the front door is reachable from
        the pods is known once the fleet is up (traffic_workers)."""

    def analysis_host(self) -> str:
        """The host's address on the kind network: the controllers' pods reach it; 127.0.0.1
        would be each pod's own loopback, and every AnalysisRun would error."""
        ip = self._kind_gateway_address()
        if ip is None:
            raise PlatformError(
                "the kind network's gateway is not an address of this machine (Docker in a VM, or no kind network): "
                "the Argo Rollouts controllers could not reach the drill's SLI endpoint",
                hint="name an address of this machine the clusters reach with --sli-host",
            )
        return ip

    def region_kubes(self) -> dict[str, Kube]:
        if self._load() is None:
            raise PlatformError("the kind fleet is down", hint="bring it up: failover-drill up --platform kind")
        kubes = self._kubes()
        return {region: kubes(n.context) for region, n in names(self.topology).items()}

    def traffic_workers(
        self, *, region: str, spec_json: str, duration_s: float, workers: int, key_prefix: str
    ) -> KindTrafficJobs:
        data = self._load() or {}
        pod_url = (data.get("frontdoor") or {}).get("pod_url")
        if not pod_url:
            raise PlatformError(
                "in-region traffic needs the front door on the kind network, and this host has no address there",
                hint="run traffic from the host (traffic.origin: host), or Docker on this machine rather than a VM",
            )
        return KindTrafficJobs(
            self.topology,
            self.runner,
            region=region,
            url=pod_url,
            spec_json=spec_json,
            duration_s=duration_s,
            workers=workers,
            key_prefix=key_prefix,
            kubes=getattr(self.runner, "kubes", None),
        )

    def plan_lines(self, faults: list[Fault]) -> list[str]:
        # Files the plan refers to (the Istio operator spec, the mesh CA) go to a plan folder.
        if self.topology is None:
            raise PlatformError("no topology given", hint="pass --topology or run from the project folder")
        return kind_plan_lines(self.topology, self.state_dir.parent / "kind-plan", faults)

    def recover_orphans(self, alive: Callable[[int], bool]) -> list[str]:
        if not self.fleet_file.exists():
            return []
        # In-region traffic of a drill that died would keep paying until its schedule ends.
        return [
            f"removed traffic job {job} left behind by a drill that died" for job in self.remove_traffic_jobs(alive)
        ]

    def capacity_warning(self, rate_per_worker: float) -> str | None:
        return None

    def repair_leftovers(self) -> list[str]:
        """What a fault left on the live fleet whatever the fault ledger says (it may be torn or
        lost): platforms/kind/leftovers.py, and the host front door's runtime. A damaged state
        file: `down` salvages it."""
        if not self.fleet_file.exists():
            return []
        with self._locked():
            try:
                data = self._load()
            except PlatformError as exc:
                return [f"{exc.message}: {self._state().salvage().describe()}"]
            if data is None:
                return []
            out = Repairs()
            leftovers.repair(KindFleet(self.topology, self.runner, pki_dir=self.state_dir / "pki"), out)
            spec = self._front_door_spec(data)
            if spec is not None and procs.alive(spec):
                reset_runtime("frontdoor", data["frontdoor_ports"]["frontdoor-admin"], out)
        if out.failed:
            done = f" (repaired: {'; '.join(out.done)})" if out.done else ""
            raise FaultError(
                f"could not repair: {'; '.join(out.failed)}{done}",
                hint="look at `failover-drill status --platform kind`; `failover-drill down --platform kind` "
                "deletes the clusters whatever their state",
            )
        return out.done

    def remove_traffic_jobs(self, keep: Callable[[int], bool]) -> list[str]:
        """Delete traffic Jobs whose drill is gone (keep(pid) says which owners still run)."""
        removed = []
        for ctx, job, pid in list_traffic_jobs(self.topology, self.runner):
            if pid is not None and keep(pid):
                continue
            self.runner.run(delete_job_step(ctx, job))
            removed.append(f"{ctx}/{job}")
        return removed

    # -- faults ---------------------------------------------------------------------------------
    def _faults(self, runner: Runner | None = None) -> FaultTable:
        data = self._load()
        port = (data or {}).get("frontdoor_ports", {}).get("frontdoor-admin")
        return fault_table(KindFleet(self.topology, runner or self.runner, port, pki_dir=self.state_dir / "pki"))

    def plan_fault(self, fault: Fault) -> dict[str, Any]:
        return self._faults().plan(fault)

    def inject(self, fault: Fault, plan: dict[str, Any]) -> dict[str, Any]:
        with self._locked():
            return self._faults().inject(fault, plan)

    def revert(self, fault: Fault, plan: dict[str, Any]) -> None:
        with self._locked():
            self._faults().revert(fault, plan)

    # -- observations ---------------------------------------------------------------------------
    def events(self, since_wall: float) -> list[PlatformEvent]:
        if self._load() is None:
            return []
        layout = self.layout()
        out: list[PlatformEvent] = []
        hc = layout.events_dir() / "frontdoor-hc.jsonl"
        if hc.exists():
            for line in hc.read_text(errors="replace").splitlines():
                try:
                    ev = parse_event(json.loads(line), "frontdoor-hc", layout)
                except (ValueError, KeyError, TypeError):
                    continue
                if ev is not None and ev.wall >= since_wall:
                    out.append(ev)
        return sorted(out, key=lambda e: e.wall)

    def ledger(self) -> list[LedgerCharge]:
        """Every pod's ledger, read by an exec into it through the API server (a pod on a dead node
        is read after revert)."""
        out: list[LedgerCharge] = []
        for n in names(self.topology).values():
            pods = self.runner.run(api.list_pods(n.context, f"list {APP} pods in {n.region}", NAMESPACE, f"app={APP}"))
            for pod in (p.strip() for p in pods.splitlines() if p.strip()):
                dump = self.runner.run(
                    pod_tools(n.context, pod, f"read the ledger of {pod}", "dump-ledger", LEDGER_PATH, timeout_s=60)
                )
                for line in dump.splitlines():
                    try:
                        c = json.loads(line)
                    except ValueError:
                        continue
                    out.append(
                        LedgerCharge(
                            c["idempotency_key"],
                            c["region"],
                            c["zone"],
                            c["replica"],
                            c["payment_id"],
                            c["amount_cents"],
                        )
                    )
        return out


def delete_cluster_step(cluster: str) -> Step:
    return Step(f"delete {cluster}", ("kind", "delete", "cluster", "--name", cluster), ok_to_fail=True)


def kind_plan_lines(topo: Topology, state_dir: Path, faults: list[Fault]) -> list[str]:
    """The commands of up, each fault's inject and revert, and down, as shell lines (dry run)."""
    # Addresses only Docker knows are shown as <placeholders>; the kind network as kind usually makes it.
    rec = RecordingRunner(answers={".Subnet}}": "172.18.0.0/16", ".Gateway}}": "172.18.0.1"})
    platform = KindPlatform(state_dir, topo, runner=rec)
    lines = [
        "# kubectl lines are Kubernetes API operations the tool makes itself (kube layer on the kubernetes",
        "# client; exec through the API server's streaming exec), shown as the kubectl command that does the same",
        "# up (assuming the Docker network 'kind' is 172.18.0.0/16)",
    ]
    lines += [f"# {s.title}\n{s.shell()}" for s in rec.record(platform.up_steps(rec))]
    lines.append("# start the front-door Envoy on the host (the MultiClusterService), health checks per BackendConfig")
    table = fault_table(KindFleet(topo, rec, frontdoor_admin_port=None, pki_dir=state_dir / "pki"))
    for fault in faults:
        try:
            handler = table.handler(fault)
            plan = handler.plan(fault)
        except FaultError as exc:
            lines.append(f"# {fault.label()}: {exc}")
            continue
        assert isinstance(handler, StepHandler)
        lines.append(f"# inject {fault.label()}")
        lines += [f"#   {s.title}\n{s.shell()}" for s in rec.record(handler.inject_steps(fault, plan)[0])]
        lines.append(f"# revert {fault.label()}")
        lines += [f"#   {s.title}\n{s.shell()}" for s in rec.record(handler.revert_steps(fault, plan))]
        after = rec.record(handler.after_revert_steps(fault, plan))
        if after:
            lines.append("# then (a restarted node has a fresh network namespace, and maybe another address)")
            lines += [f"#   {s.title}\n{s.shell()}" for s in after]
    lines.append("# down")
    lines += [delete_cluster_step(n.cluster).shell() for n in names(topo).values()]
    return lines
