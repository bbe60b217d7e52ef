"""One region's real Kubernetes control plane: etcd, kube-apiserver, kube-controller-manager,
kube-scheduler, and kwok playing the kubelets of the region's nodes.

Everything listens on 127.0.0.1 at ports the caller gives. Each process runs niced with GOMAXPROCS=1
(idle control planes share the machine with the traffic generator), in its own session (its process
group is signalled on stop), logs to its own file under the state dir, and carries
FAILOVER_DRILL_FLEET=<fleet id> and FAILOVER_DRILL_PROCESS=<region>/<component> in its environment, so
`recover` finds it even when the state file is gone (`find_marked`, `stop_marked`).

Layout of the state dir: pki/ (CA, serving and client certs, service-account key), etcd-data/,
kubeconfig (the region's: context, cluster and user named after the region), kubeconfigs/ (one per
component), kwok.yaml (kwok's Stages), logs/<component>.log, control-plane.json (pids and ports).
"""

from __future__ import annotations

import base64
import contextlib
import ipaddress
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil
import yaml

from failover_drill import obs
from failover_drill.errors import PlatformError, PortInUse
from failover_drill.platforms import processes as _processes
from failover_drill.platforms.kwok import pki
from failover_drill.platforms.polling import poll, wait_until
from failover_drill.platforms.ports import allocate
from failover_drill.platforms.processes import start_ticks

log = obs.get(__name__)

FLEET_ENV = "FAILOVER_DRILL_FLEET"
PROCESS_ENV = _processes.PROCESS_ENV  # one name for it across the platforms (envoy/leftovers reads it)
COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")
STATE_FILE = "control-plane.json"


class ControlPlaneError(PlatformError):
    """A control-plane component did not start or did not become ready (exit 3)."""


@dataclass(frozen=True)
class Ports:
    etcd_client: int
    etcd_peer: int
    apiserver: int
    controller_manager: int
    scheduler: int
    kwok: int

    @classmethod
    def free(cls) -> Ports:
        """Six distinct free ports, below the range the kernel takes connections' source ports from
        (a control plane restarted after a region loss must get its ports back)."""
        names = ["etcd_client", "etcd_peer", "apiserver", "controller_manager", "scheduler", "kwok"]
        return cls(**allocate(names))


@dataclass(frozen=True)
class ControlPlaneSpec:
    region: str
    state_dir: Path
    ports: Ports
    fleet_id: str
    # Pod and Service CIDRs: non-overlapping across regions when a mesh joins them (Cilium needs it).
    pod_cidr: str = "10.244.0.0/16"
    service_cidr: str = "10.96.0.0/16"
    node_cidr_mask: int = 24
    # kwok plays the nodes that match this label selector ("" = every node of the region).
    kwok_node_selector: str = ""
    node_lease_duration_s: int = 40
    # kube-controller-manager's node lifecycle timing; None keeps upstream's defaults.
    node_monitor_grace_period_s: float | None = None
    node_monitor_period_s: float | None = None
    # tolerationSeconds for not-ready / unreachable nodes added to every pod; None keeps upstream's 300.
    pod_eviction_s: int | None = None
    # False when the platform plays its nodes itself (one kwok per zone: kwok/platform.py).
    run_kwok: bool = True
    # kwok serves the kubelet API's exec for the nodes it plays, as kwokctl sets it up: each node's
    # address 127.0.0.1 and kubelet port kwok's own (the API server dials it over TLS, kwok's
    # built-in test certificate, unverified as the API server is given no --kubelet-certificate-
    # authority), and a ClusterExec for every pod. The command runs on this host, in kwok's working
    # directory, not in the pod: what it proves is the API server's exec path, which the kube layer
    # and kubectl use. Off by default: the kwok platform's pods are played by kubelet.py.
    kwok_serves_exec: bool = False
    gomaxprocs: int = 1
    nice: int = 10
    ready_timeout_s: float = 90.0


@dataclass
class RunningProcess:
    component: str
    pid: int
    start_ticks: int | None
    log: str
    argv: list[str]


@dataclass
class _State:
    region: str
    fleet_id: str
    server: str
    kubeconfig: str
    ports: dict[str, int]
    processes: list[RunningProcess] = field(default_factory=list)


# --- processes ---------------------------------------------------------------------------------


def _alive(p: RunningProcess) -> bool:
    ticks = start_ticks(p.pid)
    return ticks is not None and (p.start_ticks is None or ticks == p.start_ticks)


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def _signal_group(pid: int, sig: signal.Signals) -> None:
    """The process leads its own session: signal its whole group, falling back to the pid."""
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        return
    except PermissionError:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def _stop_wave(procs: list[RunningProcess], grace_s: float) -> list[RunningProcess]:
    live = [p for p in procs if _alive(p)]
    for p in live:
        _signal_group(p.pid, signal.SIGCONT)
        _signal_group(p.pid, signal.SIGTERM)

    def not_yet() -> str | None:
        nonlocal live
        for p in live:
            _reap(p.pid)
        live = [p for p in live if _alive(p)]
        return ", ".join(p.component for p in live) or None

    poll(not_yet, grace_s, 0.02)
    for p in live:
        _signal_group(p.pid, signal.SIGKILL)
    poll(not_yet, 5.0, 0.02)
    return live


def _stop_processes(procs: list[RunningProcess], grace_s: float) -> list[str]:
    """SIGCONT + SIGTERM to each process group, SIGKILL after grace; returns the survivors.

    etcd goes last: an API server whose etcd is gone spends seconds on its shutdown hooks
    (peer_endpoint_controller RemoveEndpoints timed out) instead of the ~1 s it needs otherwise.
    """
    clients = [p for p in procs if not p.component.endswith("etcd")]
    stores = [p for p in procs if p.component.endswith("etcd")]
    left = _stop_wave(clients, grace_s) + _stop_wave(stores, grace_s)
    return [p.component for p in left]


def log_tail(path: Path | str, lines: int = 12) -> str:
    try:
        text = Path(path).read_text(errors="replace").strip().splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(text[-lines:]) or "(empty log)"


@dataclass(frozen=True)
class MarkedProcess:
    pid: int
    fleet_id: str
    label: str  # <region>/<component>


def _nice_its_group(pid: int, nice: int) -> None:
    """`nice` alone does not hold a control plane back from the drill's generator: each one runs in
    a session of its own, and with the kernel's autogroup scheduling (on by default) CPU time is
    shared between sessions first, so a niced process in its own session gets as much as the
    drill's whole session. Its session's group is niced too (any user may raise it). Seen: a
    region's control plane restarting in a region-loss revert left 59% of the generator's
    requests late and the Chaos Toolkit verdict inconclusive."""
    if nice <= 0:
        return
    with contextlib.suppress(OSError):  # no autogroup in this kernel, or the process already exited
        Path(f"/proc/{pid}/autogroup").write_text(f"{nice}\n")


def find_marked(fleet_id: str | None = None) -> list[MarkedProcess]:
    """Processes carrying FAILOVER_DRILL_FLEET (of `fleet_id`, or any), from the environment each
    started with (psutil reads /proc/<pid>/environ)."""
    out = []
    for proc in psutil.process_iter():
        # Gone, a zombie, or not ours to read: not a process of the fleet that still runs.
        with contextlib.suppress(psutil.Error):
            env = proc.environ()
            fleet = env.get(FLEET_ENV)
            if fleet is None or (fleet_id is not None and fleet != fleet_id):
                continue
            if proc.status() in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD):
                continue
            out.append(MarkedProcess(proc.pid, fleet, env.get(PROCESS_ENV, "")))
    return out


def stop_marked(fleet_id: str, *, grace_s: float = 5.0) -> list[str]:
    """Stop every process of a fleet found by its mark (orphans of a crashed drill); returns survivors."""
    procs = [RunningProcess(m.label, m.pid, start_ticks(m.pid), "", []) for m in find_marked(fleet_id)]
    return _stop_processes(procs, grace_s)


# --- readiness probes ----------------------------------------------------------------------------

_NO_PROXY = urllib.request.ProxyHandler({})


def _get(url: str, ctx: ssl.SSLContext | None, timeout_s: float = 2.0) -> tuple[int, str]:
    handlers: list[Any] = [_NO_PROXY]
    if ctx is not None:
        handlers.append(urllib.request.HTTPSHandler(context=ctx))
    opener = urllib.request.build_opener(*handlers)
    try:
        with opener.open(url, timeout=timeout_s) as resp:
            return int(resp.status), resp.read().decode(errors="replace")
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read().decode(errors="replace")
    except (OSError, ValueError) as exc:
        return 0, str(exc)


def _insecure_ctx() -> ssl.SSLContext:
    # kube-controller-manager and kube-scheduler serve /healthz with a self-signed in-memory cert.
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


# --- the control plane ---------------------------------------------------------------------------


def _kubeconfig(name: str, server: str, ca: Path, cert: Path, key: Path) -> dict[str, Any]:
    def b64(p: Path) -> str:
        return base64.b64encode(p.read_bytes()).decode()

    user = f"{name}-admin" if name else "user"
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": name, "cluster": {"server": server, "certificate-authority-data": b64(ca)}}],
        "users": [{"name": user, "user": {"client-certificate-data": b64(cert), "client-key-data": b64(key)}}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": user}}],
        "current-context": name,
    }


def _first_ip(cidr: str) -> str:
    return str(next(ipaddress.ip_network(cidr).hosts()))


def _duration(seconds: float) -> str:
    return f"{int(seconds * 1000)}ms"


class ControlPlane:
    """Start, find and stop one region's control plane. `start()` leaves nothing running on failure."""

    def __init__(self, spec: ControlPlaneSpec, binaries: dict[str, Path] | None = None) -> None:
        self.spec = spec
        self.dir = spec.state_dir
        self.logs = self.dir / "logs"
        self.kubeconfig = self.dir / "kubeconfig"
        self.server = f"https://127.0.0.1:{spec.ports.apiserver}"
        self._binaries = binaries
        self.processes: list[RunningProcess] = []
        self._popen: dict[int, subprocess.Popen[bytes]] = {}
        self.pki: pki.ClusterPKI | None = None

    # -- public --

    def start(self) -> None:
        """Bring every component up and wait until each is ready (raises ControlPlaneError, exit 3)."""
        self._check_ports()
        binaries = self._binaries or self._build()
        t0 = time.monotonic()
        try:
            self._prepare()
            self._start_etcd(binaries["etcd"])
            self._start_apiserver(binaries["kube-apiserver"])
            self._start_controller_manager(binaries["kube-controller-manager"])
            self._start_scheduler(binaries["kube-scheduler"])
            if self.spec.run_kwok:
                self._start_kwok(binaries["kwok"])
            self._wait_rest_ready()
        except BaseException:
            survivors = self.stop()
            if survivors:
                log.error("kwok.control_plane.survivors", region=self.spec.region, survivors=survivors)
            raise
        log.info("kwok.control_plane.ready", region=self.spec.region, seconds=round(time.monotonic() - t0, 1))

    def stop(self, grace_s: float = 5.0) -> list[str]:
        """Stop everything this control plane started; returns the components that survived SIGKILL."""
        survivors = _stop_processes(self.processes, grace_s)
        for proc in self._popen.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=1)
        self._popen.clear()
        self.processes = [p for p in self.processes if p.component in survivors]
        self._save()
        log.info("kwok.control_plane.stopped", region=self.spec.region, survivors=survivors)
        return survivors

    def alive(self) -> dict[str, bool]:
        return {p.component: _alive(p) for p in self.processes}

    def process(self, component: str) -> RunningProcess:
        for p in self.processes:
            if p.component == component:
                return p
        raise KeyError(component)

    def restart(self, component: str, timeout_s: float = 60.0) -> None:
        """Start a stopped component again with the argv it ran with (a control-plane-loss revert),
        and wait for the API server to answer when that is what came back."""
        old = self.process(component)
        if _alive(old):
            return
        self.processes.remove(old)
        rp = self._spawn(component, old.argv)
        if component == "kube-apiserver":
            ctx = _insecure_ctx()

            def probe() -> tuple[bool, str]:
                code, body = _get(f"{self.server}/readyz", ctx)
                return code in (200, 401, 403), f"{code} {body.strip()[-200:]}"

            self._wait(rp, probe, time.monotonic() + timeout_s)

    @classmethod
    def load(cls, spec: ControlPlaneSpec) -> ControlPlane:
        """A handle on a control plane started by another process (from its state file)."""
        cp = cls(spec)
        try:
            data = json.loads((spec.state_dir / STATE_FILE).read_text())
        except (OSError, ValueError):
            return cp
        cp.processes = [RunningProcess(**p) for p in data.get("processes", [])]
        return cp

    @contextlib.contextmanager
    def running(self) -> Iterator[ControlPlane]:
        self.start()
        try:
            yield self
        finally:
            self.stop()

    # -- steps --

    def _build(self) -> dict[str, Path]:
        from failover_drill import toolchain

        return toolchain.paths(COMPONENTS)

    def _check_ports(self) -> None:
        taken = [f"{name} {port}" for name, port in asdict(self.spec.ports).items() if not _port_free(port)]
        if taken:
            raise PortInUse(
                f"{self.spec.region} control plane: port {taken[0].split()[1]} ({taken[0].split()[0]}) is already in use"
                + (f" (and {len(taken) - 1} more)" if len(taken) > 1 else ""),
                hint=f"stop what listens there (`ss -ltnp | grep {taken[0].split()[1]}`) or pick other ports",
            )
        if len(set(asdict(self.spec.ports).values())) != 6:
            raise PortInUse(f"{self.spec.region} control plane: the six ports must differ ({self.spec.ports})")

    def _prepare(self) -> None:
        s = self.spec
        for sub in ("etcd-data", "pki", "kubeconfigs"):
            shutil.rmtree(self.dir / sub, ignore_errors=True)
        self.logs.mkdir(parents=True, exist_ok=True)
        (self.dir / "kubeconfigs").mkdir(parents=True)
        self.pki = pki.create(self.dir / "pki", region=s.region, service_ip=_first_ip(s.service_cidr))
        p = self.pki
        self.kubeconfig.write_text(
            yaml.safe_dump(_kubeconfig(s.region, self.server, p.ca.cert, p.admin.cert, p.admin.key))
        )
        self.kubeconfig.chmod(0o600)
        for name, pair in (
            ("kube-controller-manager", p.controller_manager),
            ("kube-scheduler", p.scheduler),
            ("kwok", p.kwok),
        ):
            path = self.dir / "kubeconfigs" / f"{name}.kubeconfig"
            path.write_text(yaml.safe_dump(_kubeconfig(name, self.server, p.ca.cert, pair.cert, pair.key)))
            path.chmod(0o600)
        self._write_kwok_config()
        self._save()

    def _write_kwok_config(self) -> None:
        from failover_drill import toolchain

        docs = [f.read_text().strip() for f in toolchain.component_files("kwok")]
        if self.spec.kwok_serves_exec:
            # No selector: every pod on kwok's nodes; no containers named: every container.
            exec_all = {
                "apiVersion": "kwok.x-k8s.io/v1alpha1",
                "kind": "ClusterExec",
                "metadata": {"name": "local"},
                "spec": {"execs": [{"local": {"workDir": str(self.dir)}}]},
            }
            docs.append(yaml.safe_dump(exec_all, sort_keys=False).strip())
        (self.dir / "kwok.yaml").write_text("\n---\n".join(docs) + "\n")

    def _spawn(self, component: str, argv: list[str]) -> RunningProcess:
        s = self.spec
        log_path = self.logs / f"{component}.log"
        env = {
            **os.environ,
            "GOMAXPROCS": str(s.gomaxprocs),
            FLEET_ENV: s.fleet_id,
            PROCESS_ENV: f"{s.region}/{component}",
        }
        nice = shutil.which("nice")
        full = [nice, "-n", str(s.nice), *argv] if nice and s.nice else argv
        with log_path.open("ab") as fh:
            fh.write(f"\n# {time.strftime('%Y-%m-%dT%H:%M:%S')} {' '.join(argv)}\n".encode())
            fh.flush()
            try:
                proc = subprocess.Popen(
                    full,
                    stdin=subprocess.DEVNULL,
                    stdout=fh,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    env=env,
                    cwd=self.dir,
                )
            except OSError as exc:
                raise ControlPlaneError(f"{s.region}: cannot start {component} ({exc})") from None
        _nice_its_group(proc.pid, s.nice)
        ticks = None
        for _ in range(200):
            ticks = start_ticks(proc.pid)
            if ticks is not None or proc.poll() is not None:
                break
            time.sleep(0.001)
        rp = RunningProcess(component, proc.pid, ticks, str(log_path), argv)
        self.processes.append(rp)
        self._popen[proc.pid] = proc
        self._save()
        log.info("kwok.control_plane.spawned", region=s.region, component=component, pid=proc.pid)
        return rp

    def _wait(self, rp: RunningProcess, probe: Callable[[], tuple[bool, str]], deadline: float) -> None:
        def not_yet() -> str | None:
            proc = self._popen.get(rp.pid)
            code = proc.poll() if proc is not None else (None if _alive(rp) else -1)
            if code is not None:
                raise ControlPlaneError(
                    f"{self.spec.region}: {rp.component} exited (code {code}) before it became ready; "
                    f"last lines of {rp.log}:\n{log_tail(rp.log)}",
                    hint="a port taken by another program, or a flag this version does not know, shows in the log",
                )
            ok, said = probe()
            return None if ok else said

        wait_until(
            not_yet,
            max(0.0, deadline - time.monotonic()),
            0.2,
            lambda last: ControlPlaneError(
                f"{self.spec.region}: {rp.component} did not become ready within {self.spec.ready_timeout_s:.0f} s"
                f" (last probe: {last[:300]}); last lines of {rp.log}:\n{log_tail(rp.log)}",
                hint="a busy machine starts the API server slowly: raise ready_timeout_s, or look at the log",
            ),
        )

    def _start_etcd(self, exe: Path) -> None:
        s, ports = self.spec, self.spec.ports
        client = f"http://127.0.0.1:{ports.etcd_client}"
        peer = f"http://127.0.0.1:{ports.etcd_peer}"
        rp = self._spawn(
            "etcd",
            [
                str(exe),
                f"--name={s.region}",
                f"--data-dir={self.dir / 'etcd-data'}",
                f"--listen-client-urls={client}",
                f"--advertise-client-urls={client}",
                f"--listen-peer-urls={peer}",
                f"--initial-advertise-peer-urls={peer}",
                f"--initial-cluster={s.region}={peer}",
                "--initial-cluster-state=new",
                "--auto-compaction-retention=1",
                "--quota-backend-bytes=536870912",
                # A throw-away store: fsync would only make the API server slow on a shared disk.
                "--unsafe-no-fsync=true",
                "--log-level=warn",
            ],
        )

        def probe() -> tuple[bool, str]:
            code, body = _get(f"{client}/health", None)
            return code == 200 and '"true"' in body, f"{code} {body.strip()}"

        self._wait(rp, probe, time.monotonic() + s.ready_timeout_s)

    def _start_apiserver(self, exe: Path) -> None:
        s, p = self.spec, self.pki
        assert p is not None
        rp = self._spawn(
            "kube-apiserver",
            [
                str(exe),
                f"--etcd-servers=http://127.0.0.1:{s.ports.etcd_client}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={s.ports.apiserver}",
                f"--tls-cert-file={p.apiserver.cert}",
                f"--tls-private-key-file={p.apiserver.key}",
                f"--client-ca-file={p.ca.cert}",
                f"--service-account-key-file={p.sa_pub}",
                f"--service-account-signing-key-file={p.sa_key}",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-cluster-ip-range={s.service_cidr}",
                "--authorization-mode=Node,RBAC",
                "--allow-privileged=true",
                # One API server per region: no lease-based endpoint reconciliation of the
                # `kubernetes` Service (its endpoint would be the loopback address).
                "--endpoint-reconciler-type=none",
                "--enable-priority-and-fairness=false",
                "--profiling=false",
                *(
                    [
                        f"--default-not-ready-toleration-seconds={s.pod_eviction_s}",
                        f"--default-unreachable-toleration-seconds={s.pod_eviction_s}",
                    ]
                    if s.pod_eviction_s is not None
                    else []
                ),
            ],
        )
        ctx = ssl.create_default_context(cafile=str(p.ca.cert))
        ctx.load_cert_chain(str(p.admin.cert), str(p.admin.key))

        def probe() -> tuple[bool, str]:
            code, body = _get(f"{self.server}/readyz?verbose", ctx)
            failing = [line for line in body.splitlines() if "failed" in line]
            return code == 200, f"{code} {'; '.join(failing) or body.strip()[-200:]}"

        self._wait(rp, probe, time.monotonic() + s.ready_timeout_s)

    def _start_controller_manager(self, exe: Path) -> None:
        s, p = self.spec, self.pki
        assert p is not None
        argv = [
            str(exe),
            f"--kubeconfig={self.dir / 'kubeconfigs' / 'kube-controller-manager.kubeconfig'}",
            "--leader-elect=false",
            "--bind-address=127.0.0.1",
            f"--secure-port={s.ports.controller_manager}",
            "--use-service-account-credentials=true",
            f"--service-account-private-key-file={p.sa_key}",
            f"--root-ca-file={p.ca.cert}",
            "--allocate-node-cidrs=true",
            f"--cluster-cidr={s.pod_cidr}",
            f"--node-cidr-mask-size={s.node_cidr_mask}",
            f"--service-cluster-ip-range={s.service_cidr}",
            "--profiling=false",
        ]
        if s.node_monitor_grace_period_s is not None:
            argv.append(f"--node-monitor-grace-period={_duration(s.node_monitor_grace_period_s)}")
        if s.node_monitor_period_s is not None:
            argv.append(f"--node-monitor-period={_duration(s.node_monitor_period_s)}")
        self._spawn("kube-controller-manager", argv)

    def _start_scheduler(self, exe: Path) -> None:
        s = self.spec
        self._spawn(
            "kube-scheduler",
            [
                str(exe),
                f"--kubeconfig={self.dir / 'kubeconfigs' / 'kube-scheduler.kubeconfig'}",
                "--leader-elect=false",
                "--bind-address=127.0.0.1",
                f"--secure-port={s.ports.scheduler}",
                "--profiling=false",
            ],
        )

    def _start_kwok(self, exe: Path) -> None:
        s = self.spec
        select = (
            ["--manage-all-nodes=false", f"--manage-nodes-with-label-selector={s.kwok_node_selector}"]
            if s.kwok_node_selector
            else ["--manage-all-nodes=true"]
        )
        self._spawn(
            "kwok",
            [
                str(exe),
                f"--kubeconfig={self.dir / 'kubeconfigs' / 'kwok.kubeconfig'}",
                f"--config={self.dir / 'kwok.yaml'}",
                *select,
                # Pod IPs come from each node's spec.podCIDR (allocated by the controller manager);
                # --cidr only serves nodes without one.
                f"--cidr={s.pod_cidr}",
                f"--node-lease-duration-seconds={s.node_lease_duration_s}",
                f"--server-address=127.0.0.1:{s.ports.kwok}",
                *(["--node-ip=127.0.0.1", f"--node-port={s.ports.kwok}"] if s.kwok_serves_exec else []),
            ],
        )

    def _wait_rest_ready(self) -> None:
        s = self.spec
        deadline = time.monotonic() + s.ready_timeout_s
        insecure = _insecure_ctx()
        urls = {
            "kube-controller-manager": (f"https://127.0.0.1:{s.ports.controller_manager}/healthz", insecure),
            "kube-scheduler": (f"https://127.0.0.1:{s.ports.scheduler}/healthz", insecure),
            "kwok": (f"http://127.0.0.1:{s.ports.kwok}/healthz", None),
        }
        if not s.run_kwok:
            del urls["kwok"]
        for component, (url, ctx) in urls.items():

            def probe(url: str = url, ctx: ssl.SSLContext | None = ctx) -> tuple[bool, str]:
                code, body = _get(url, ctx)
                return code == 200, f"{code} {body.strip()[-200:]}"

            self._wait(self.process(component), probe, deadline)
        # Ready for workloads: the controller manager has created the default ServiceAccount (pods
        # are refused without it, and the ReplicaSet controller would back off and retry).
        assert self.pki is not None
        admin = ssl.create_default_context(cafile=str(self.pki.ca.cert))
        admin.load_cert_chain(str(self.pki.admin.cert), str(self.pki.admin.key))

        def default_sa() -> tuple[bool, str]:
            code, body = _get(f"{self.server}/api/v1/namespaces/default/serviceaccounts/default", admin)
            return code == 200, f"{code} {body.strip()[-200:]}"

        self._wait(self.process("kube-controller-manager"), default_sa, deadline)

    def _save(self) -> None:
        s = self.spec
        state = _State(
            region=s.region,
            fleet_id=s.fleet_id,
            server=self.server,
            kubeconfig=str(self.kubeconfig),
            ports=asdict(s.ports),
            processes=self.processes,
        )
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = self.dir / (STATE_FILE + ".tmp")
        tmp.write_text(json.dumps(asdict(state), indent=1))
        tmp.replace(self.dir / STATE_FILE)
