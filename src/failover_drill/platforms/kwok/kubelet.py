"""The kubelet of one kwok node: real payment-gateway processes behind the pods bound to it.

kwok keeps the node itself alive (its heartbeats and lease); this agent does what a kubelet does
for the node's pods, against the region's real API server:
- a pod bound here gets an IP from the node's spec.podCIDR and its container runs as a real
  process (the replica program, with the pod's own args) bound to that IP inside the pods'
  network namespace (netns.py); its status says Running, not Ready;
- the container's readinessProbe (httpGet, period, timeout, thresholds, initial delay) runs as the
  Deployment says, and the pod's Ready condition follows it: endpoints follow readiness, as on a
  real node;
- a container that exits is restarted (restartPolicy Always), a deleted pod's process is stopped
  and the pod removed.

When this agent dies with its zone (a zone loss), nobody reports the pods unready: the node stops
heartbeating and the real node lifecycle controller marks it NotReady after its grace period,
then the pods, and the EndpointSlice controller drops them.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import re
import signal
import sys
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from failover_drill import obs
from failover_drill.errors import PlatformError
from failover_drill.platforms import processes as procs
from failover_drill.platforms.kube.client import Kube
from failover_drill.platforms.kwok.control_plane import PROCESS_ENV
from failover_drill.platforms.kwok.netns import pod_ip, pod_slot

log = obs.get(__name__)
REPLICA_IMAGE = "failover-drill/payment-gateway:dev"
LEDGER_MOUNT = "/var/lib/ledger"
# Probes go straight to the pod, never through a proxy from the environment.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@dataclass
class Probe:
    path: str
    port: int
    period_s: float
    timeout_s: float
    failure_threshold: int
    success_threshold: int
    initial_delay_s: float

    @classmethod
    def of(cls, container: Any) -> Probe | None:
        rp = container.readiness_probe
        if rp is None or rp.http_get is None:
            return None
        port = rp.http_get.port
        if isinstance(port, str) and not port.isdigit():
            port = next((p.container_port for p in container.ports or [] if p.name == port), 8080)
        return cls(
            path=rp.http_get.path or "/",
            port=int(port),
            period_s=float(rp.period_seconds or 10),
            timeout_s=float(rp.timeout_seconds or 1),
            failure_threshold=int(rp.failure_threshold or 3),
            success_threshold=int(rp.success_threshold or 1),
            initial_delay_s=float(rp.initial_delay_seconds or 0),
        )


@dataclass
class PodRun:
    uid: str
    name: str
    namespace: str
    ip: str
    slot: int
    spec: procs.ProcSpec
    probe: Probe | None
    ready: bool = False
    restarts: int = 0
    started: str = field(default_factory=lambda: dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
    stop: threading.Event = field(default_factory=threading.Event)


def _env_value(env: list[Any], pod: Any) -> dict[str, str]:
    out = {}
    for e in env or []:
        if e.value is not None:
            out[e.name] = e.value
        elif e.value_from is not None and e.value_from.field_ref is not None:
            path = e.value_from.field_ref.field_path
            out[e.name] = {
                "metadata.name": pod.metadata.name,
                "metadata.namespace": pod.metadata.namespace,
                "spec.nodeName": pod.spec.node_name,
            }.get(path, "")
    return out


def container_argv(pod: Any, container: Any, ip: str, ledger_dir: Path) -> list[str]:
    """The replica program with the container's args: $(VAR) expanded, the pod IP as its host, and
    the ledger volume at the region's ledger directory (a regional database, as on the sandbox)."""
    if container.image != REPLICA_IMAGE:
        raise ValueError(f"image {container.image!r} has no program here (only {REPLICA_IMAGE})")
    env = _env_value(container.env, pod)
    args = [re.sub(r"\$\((\w+)\)", lambda m: env.get(m.group(1), m.group(0)), a) for a in container.args or []]
    out: list[str] = []
    i = 0
    while i < len(args):
        if args[i] == "--host":
            i += 2
            continue
        if args[i] == "--ledger" and i + 1 < len(args):
            out += ["--ledger", str(ledger_dir / Path(args[i + 1]).relative_to(LEDGER_MOUNT))]
            i += 2
            continue
        out.append(args[i])
        i += 1
    return [sys.executable, "-m", "failover_drill.platforms.service.replica", *out, "--host", ip]


class Kubelet:
    def __init__(self, kube: Kube, node: str, netns: str, ledger_dir: Path, state_dir: Path, fleet_id: str) -> None:
        self.kube = kube
        self.node = node
        self.netns = netns
        self.ledger_dir = ledger_dir
        self.state_dir = state_dir
        self.fleet_id = fleet_id
        self.pods: dict[str, PodRun] = {}
        self.lock = threading.Lock()
        self.node_cidr = ""
        self.claimed: dict[str, int] = {}  # pod uid -> the slot of the IP its status already holds
        self.host_ip = "169.254.0.1"
        self.done = threading.Event()

    # -- pods ------------------------------------------------------------------------------------
    def _slot(self, pod: Any) -> int:
        """The pod's address slot. A pod that ran before this agent restarted keeps the IP in its
        status: the API server refuses a pod IP that changes, and the mesh already routes to it."""
        used = {p.slot for p in self.pods.values()}
        own = self.claimed.get(pod.metadata.uid)
        if own is not None and own not in used:
            return own
        taken = used | set(self.claimed.values())
        return next(i for i in range(250) if i not in taken)

    def start_pod(self, pod: Any) -> None:
        uid = pod.metadata.uid
        container = pod.spec.containers[0]
        slot = self._slot(pod)
        ip = pod_ip(self.node_cidr, slot)
        try:
            argv = container_argv(pod, container, ip, self.ledger_dir)
        except ValueError as exc:
            log.error("cannot run pod", pod=pod.metadata.name, error=str(exc))
            return
        probe = Probe.of(container)
        spec = procs.ProcSpec(
            name=f"pod-{pod.metadata.name}",
            kind="replica",
            region=(pod.metadata.labels or {}).get("region"),
            zone=(pod.metadata.labels or {}).get("zone"),
            port=probe.port if probe else 8080,
            log=str(self.state_dir / "logs" / f"pod-{pod.metadata.name}.log"),
            argv=["ip", "netns", "exec", self.netns, *argv],
        )
        # (the container's pid is the replica's own: `ip netns exec` execs it)
        run = PodRun(uid, pod.metadata.name, pod.metadata.namespace, ip, slot, spec, probe)
        self.pods[uid] = run
        procs.spawn(spec, env=self._marks(run), fleet=self.fleet_id)
        self._report(run)
        threading.Thread(target=self._supervise, args=(run,), daemon=True, name=f"pod-{run.name}").start()
        log.info("pod started", pod=run.name, ip=ip, pid=spec.pid)

    def _marks(self, run: PodRun) -> dict[str, str]:
        # Found by these after this agent is gone: a zone loss kills the node's containers with it.
        return {PROCESS_ENV: f"{self.node}/pod/{run.name}"}

    def stop_pod(self, uid: str) -> PodRun | None:
        self.claimed.pop(uid, None)
        run = self.pods.pop(uid, None)
        if run is not None:
            run.stop.set()
            procs.stop_all([run.spec], grace_s=2.0)
        return run

    def _report(self, run: PodRun) -> None:
        now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        ready = "True" if run.ready else "False"
        status = {
            "phase": "Running",
            "hostIP": self.host_ip,
            "podIP": run.ip,
            "podIPs": [{"ip": run.ip}],
            "startTime": run.started,
            "conditions": [
                {"type": "PodScheduled", "status": "True"},
                {"type": "Initialized", "status": "True"},
                {"type": "ContainersReady", "status": ready, "lastTransitionTime": now},
                {"type": "Ready", "status": ready, "lastTransitionTime": now},
            ],
            "containerStatuses": [
                {
                    "name": "payment-gateway",
                    "image": REPLICA_IMAGE,
                    "imageID": "",
                    "ready": run.ready,
                    "started": True,
                    "restartCount": run.restarts,
                    "state": {"running": {"startedAt": run.started}},
                }
            ],
        }
        try:
            self.kube.patch_pod_status(run.name, run.namespace, status)
        except PlatformError as exc:
            # The container runs; the supervisor reports again on its next change. One pod's
            # refused status must not take the node's other pods down with this agent.
            log.error("pod status refused", pod=run.name, error=exc.message)

    def _probe_once(self, run: PodRun) -> bool:
        assert run.probe is not None
        url = f"http://{run.ip}:{run.probe.port}{run.probe.path}"
        try:
            with _OPENER.open(url, timeout=run.probe.timeout_s) as resp:
                status: int = resp.status
                return 200 <= status < 400
        except (urllib.error.URLError, OSError, ValueError):
            return False

    def _supervise(self, run: PodRun) -> None:
        """Readiness as the probe says; a container that exits is restarted and starts unready."""
        probe = run.probe
        if probe is None:
            run.ready = True
            self._report(run)
        elif probe.initial_delay_s:
            run.stop.wait(probe.initial_delay_s)
        fails = oks = 0
        while not run.stop.is_set() and not self.done.is_set():
            if not procs.alive(run.spec):
                run.restarts += 1
                run.ready = False
                oks = 0
                procs.spawn(run.spec, env=self._marks(run), fleet=self.fleet_id)
                self._report(run)
                log.warning("container restarted", pod=run.name, restarts=run.restarts)
            if probe is not None:
                if self._probe_once(run):
                    fails, oks = 0, oks + 1
                    if not run.ready and oks >= probe.success_threshold:
                        run.ready = True
                        self._report(run)
                else:
                    oks, fails = 0, fails + 1
                    if run.ready and fails >= probe.failure_threshold:
                        run.ready = False
                        self._report(run)
            run.stop.wait(probe.period_s if probe is not None else 1.0)

    # -- the watch -------------------------------------------------------------------------------
    def run(self) -> None:
        node: Any = self.kube.core.read_node(self.node)
        self.node_cidr = node.spec.pod_cidr
        for addr in node.status.addresses or []:
            if addr.type == "InternalIP":
                self.host_ip = addr.address
        listed: Any = self.kube.core.list_pod_for_all_namespaces(field_selector=f"spec.nodeName={self.node}")
        for pod in listed.items:
            slot = pod_slot(self.node_cidr, pod.status.pod_ip if pod.status else None)
            if slot is not None:
                self.claimed[pod.metadata.uid] = slot
        for etype, pod in self.kube.watch(
            self.kube.core.list_pod_for_all_namespaces,
            stop=self.done.is_set,
            field_selector=f"spec.nodeName={self.node}",
        ):
            uid = pod.metadata.uid
            with self.lock:
                if etype == "DELETED":
                    self.stop_pod(uid)
                elif pod.metadata.deletion_timestamp is not None:
                    self.stop_pod(uid)
                    self.kube.delete_pod(pod.metadata.name, pod.metadata.namespace, grace_s=0)
                elif uid not in self.pods and (pod.status.phase in (None, "Pending") or not pod.status.pod_ip):
                    self.start_pod(pod)
                elif uid not in self.pods:
                    # Running before this agent (re)started: the node crashed and came back, so
                    # its containers are gone; they start again, unready until probed.
                    self.start_pod(pod)

    def shutdown(self) -> None:
        self.done.set()
        with self.lock:
            for uid in list(self.pods):
                self.stop_pod(uid)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="kubelet of one kwok node: real replicas behind its pods")
    p.add_argument("--kubeconfig", type=Path, required=True)
    p.add_argument("--context", default=None)
    p.add_argument("--node", required=True)
    p.add_argument("--netns", required=True)
    p.add_argument("--ledger-dir", type=Path, required=True)
    p.add_argument("--state", type=Path, required=True)
    p.add_argument("--fleet", required=True)
    a = p.parse_args(argv)
    obs.configure(os.environ.get("FAILOVER_DRILL_LOG", "info"))
    (a.state / "logs").mkdir(parents=True, exist_ok=True)
    kubelet = Kubelet(Kube(a.kubeconfig, a.context), a.node, a.netns, a.ledger_dir, a.state, a.fleet)

    def on_term(*_: Any) -> None:
        kubelet.shutdown()
        os._exit(0)

    signal.signal(signal.SIGTERM, on_term)
    with contextlib.suppress(KeyboardInterrupt):
        kubelet.run()
    kubelet.shutdown()


if __name__ == "__main__":
    main()
