"""A region's mesh control plane on kwok: istiod (multi-primary, remote secrets to every cluster)
or clustermesh-apiserver, reduced to what decides failover.

It watches the payment-gateway EndpointSlices of every region's real API server and pushes its
gateway's endpoints over EDS files: the region's ready pods by zone (their pod IPs), remote regions
through their east-west gateways weighted by their ready pods. Readiness is Kubernetes' own: the
kubelet's probes, or the node lifecycle controller marking a lost node's pods not ready. When a
region's API server is unreachable its last-known endpoints are kept, as Istio and Cilium do.
Every change is logged as an event with its time, for the drill's timeline.

Under Istio it also follows the payment-gateway VirtualService, as istiod turns one into routes:
when its route sends users to a stable and a canary host (what Argo Rollouts' Istio traffic
routing writes), the gateway's users go to the two hosts' ready pods in this region by the
route's weights (Envoy runtime keys of a weighted-clusters route, config.SPLIT). The canary host's
endpoints are this region's only: a canary is released region by region.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from failover_drill.platforms.envoy import admin
from failover_drill.platforms.envoy.config import CANARY_CLUSTER, eds_response, split_runtime_keys, write_atomic
from failover_drill.platforms.envoy.eds import endpoint_groups
from failover_drill.platforms.envoy.layout import Layout, ReplicaInfo
from failover_drill.platforms.envoy.rotation import rotate_if_due
from failover_drill.platforms.kube.client import Kube

NAMESPACE = "payments"
SERVICE = "payment-gateway"
VIRTUAL_SERVICE = ("networking.istio.io/v1", "VirtualService", SERVICE)
VS_POLL_S = 0.5


@dataclass(frozen=True)
class Split:
    """What the VirtualService's route says: users to a stable and a canary host, by weight."""

    stable_host: str
    stable_weight: int
    canary_host: str
    canary_weight: int

    @classmethod
    def of(cls, vs: dict[str, Any] | None) -> Split | None:
        """The first HTTP route with two weighted destinations (Argo Rollouts manages exactly
        those); None without a VirtualService or such a route, when users go to the Service."""
        for route in ((vs or {}).get("spec") or {}).get("http") or []:
            dests = route.get("route") or []
            if len(dests) != 2:
                continue
            (a, b) = dests
            hosts = [str((d.get("destination") or {}).get("host", "")).split(".")[0] for d in (a, b)]
            # Istio knows no canary; the tool's clusters do: the host named so, else the second.
            canary = 0 if hosts[0].endswith("canary") and not hosts[1].endswith("canary") else 1
            stable = 1 - canary
            return cls(
                hosts[stable],
                int(dests[stable].get("weight") or 0),
                hosts[canary],
                int(dests[canary].get("weight") or 0),
            )
        return None

    def runtime(self) -> dict[str, int]:
        if self.stable_weight + self.canary_weight <= 0:
            return split_runtime_keys(100, 0)
        return split_runtime_keys(self.stable_weight, self.canary_weight)


class MeshAgent:
    def __init__(
        self, layout: Layout, region: str, mesh: str, locality: bool, kubes: dict[str, Kube], events: Path
    ) -> None:
        self.layout = layout
        self.region = region
        self.mesh = mesh
        self.locality = locality
        self.kubes = kubes
        # region -> slice name -> endpoints (as ReplicaInfo with the pod IP) and their readiness
        self.slices: dict[str, dict[str, list[tuple[ReplicaInfo, bool]]]] = {r: {} for r in kubes}
        # this region's other Services (a VirtualService's hosts): service -> slice name -> endpoints
        self.hosts: dict[str, dict[str, list[tuple[ReplicaInfo, bool]]]] = {}
        self.split: Split | None = None
        self.posted: dict[str, int] | None = None
        self.lock = threading.Lock()
        self.version = int(time.time() * 1000)
        self.last: Any = None
        self.ready_names: dict[str, set[str]] = {r: set() for r in kubes}
        self.zone_of: dict[str, str] = {}
        self.events = events.open("a", buffering=1)
        self.done = threading.Event()

    def log(self, event: str, **kw: Any) -> None:
        self.events.write(json.dumps({"ts": time.time(), "source": f"mesh-{self.region}", "event": event, **kw}) + "\n")

    def _endpoints(self, region: str, sl: Any) -> list[tuple[ReplicaInfo, bool]]:
        port = next((p.port for p in sl.ports or [] if p.port), 8080)
        out = []
        for ep in sl.endpoints or []:
            ready = bool(ep.conditions and ep.conditions.ready)
            name = ep.target_ref.name if ep.target_ref else ep.addresses[0]
            for addr in ep.addresses:
                out.append((ReplicaInfo(name=name, region=region, zone=ep.zone or "", port=port, host=addr), ready))
        return out

    def watch_region(self, region: str) -> None:
        """The payment-gateway's EndpointSlices of a region; in this region, every Service's, for
        the hosts a VirtualService may name."""
        kube = self.kubes[region]
        selector = "" if region == self.region else f"kubernetes.io/service-name={SERVICE}"
        for etype, sl in kube.watch(
            kube.discovery.list_namespaced_endpoint_slice,
            stop=self.done.is_set,
            namespace=NAMESPACE,
            label_selector=selector,
        ):
            service = (sl.metadata.labels or {}).get("kubernetes.io/service-name", "")
            store = self.slices[region] if service == SERVICE else self.hosts.setdefault(service, {})
            with self.lock:
                if etype == "DELETED":
                    store.pop(sl.metadata.name, None)
                else:
                    store[sl.metadata.name] = self._endpoints(region, sl)

    def watch_virtual_service(self) -> None:
        """This region's payment-gateway VirtualService, read as istiod would (polled: a custom
        object; its last-known route is kept while the API server is unreachable)."""
        kube = self.kubes[self.region]
        while not self.done.is_set():
            try:
                split = Split.of(kube.get(*VIRTUAL_SERVICE[:2], VIRTUAL_SERVICE[2], NAMESPACE))
            except Exception:  # the API server is down (control-plane loss) or the CRD is absent
                split = self.split
            if split != self.split:
                self.split = split
                self.log(
                    "route_weights",
                    region=self.region,
                    detail=(
                        f"{split.stable_host} {split.stable_weight} / {split.canary_host} {split.canary_weight}"
                        if split
                        else f"{SERVICE} 100 (no traffic split)"
                    ),
                )
            self.done.wait(VS_POLL_S)

    def set_weights(self, force: bool) -> None:
        """The split's weights into the gateway's runtime; force: ask the gateway what it holds (a
        restarted gateway forgot them) and put them back if it differs."""
        want = self.split.runtime() if self.split else split_runtime_keys(100, 0)
        port = self.layout.gateways[self.region].admin_port
        try:
            if force and self.posted == want:
                status, text = admin.request(f"http://127.0.0.1:{port}/runtime?format=json", timeout=1.0)
                entries = json.loads(text).get("entries", {}) if status == 200 else {}
                held = {k: str((entries.get(k) or {}).get("final_value", "")) for k in want}
                if held == {k: str(v) for k, v in want.items()}:
                    return
                self.posted = None
            if self.posted != want:
                admin.runtime_modify(port, want, timeout=1.0)
                self.posted = want
        except (OSError, ValueError):
            self.posted = None  # the gateway is down or starting: again on the next pass

    def watch_nodes(self) -> None:
        """The region's nodes as Kubernetes judges them: a Ready change is logged when it is seen
        (a node's conditions keep only their last transition, so the drill could not read it later)."""
        kube = self.kubes[self.region]
        ready: dict[str, str] = {}
        for etype, node in kube.watch(kube.core.list_node, stop=self.done.is_set):
            name = node.metadata.name
            status = next((c.status for c in (node.status.conditions or []) if c.type == "Ready"), "Unknown")
            before = ready.get(name)
            ready[name] = status
            if etype == "DELETED" or before is None or before == status:
                continue
            zone = (node.metadata.labels or {}).get("topology.kubernetes.io/zone")
            self.log("node_ready" if status == "True" else "node_not_ready", node=name, region=self.region, zone=zone)

    def _ready_of(self, service: str) -> list[ReplicaInfo]:
        return [info for eps in self.hosts.get(service, {}).values() for info, ok in eps if ok]

    def push(self) -> None:
        split = self.split
        with self.lock:
            ready = {
                r: [info for eps in slices.values() for info, ok in eps if ok] for r, slices in self.slices.items()
            }
            stable = self._ready_of(split.stable_host) if split else None
            canary = self._ready_of(split.canary_host) if split else []
        for r, infos in ready.items():
            names = {i.name for i in infos}
            if r == self.region:
                for gone in self.ready_names[r] - names:
                    self.log("not_ready", replica=gone, region=r, zone=self.zone_of.get(gone))
                for new in names - self.ready_names[r]:
                    self.log("ready", replica=new, region=r, zone=self.zone_of.get(new))
                self.zone_of.update({i.name: i.zone for i in infos})
            self.ready_names[r] = names

        def by_zone(infos: list[ReplicaInfo]) -> list[ReplicaInfo]:
            return sorted(infos, key=lambda i: (i.zone, i.name))

        local = by_zone(ready.get(self.region, []))
        # With a traffic split the users' stable side is the stable host's pods (in this region);
        # other regions still reach this one's Service through its east-west gateway.
        users = local if stable is None else by_zone(stable)
        canaries = by_zone(canary)
        remote = {r: len(v) for r, v in ready.items() if r != self.region}
        state = (
            [(i.name, i.host) for i in local],
            remote,
            [(i.name, i.host) for i in users],
            [i.name for i in canaries],
        )
        if state == self.last:
            return
        self.last = state
        self.version += 1
        groups, _ = endpoint_groups(self.layout, self.region, self.mesh, self.locality, users, remote)
        _, local_groups = endpoint_groups(self.layout, self.region, self.mesh, self.locality, local, remote)
        canary_groups, _ = endpoint_groups(self.layout, self.region, self.mesh, self.locality, canaries, {})
        eds = self.layout.eds_dir(self.region)
        write_atomic(eds / "pg-local.json", eds_response("pg-local", self.version, local_groups))
        write_atomic(eds / "payment-gateway.json", eds_response("payment-gateway", self.version, groups))
        if self.mesh == "istio":
            write_atomic(eds / f"{CANARY_CLUSTER}.json", eds_response(CANARY_CLUSTER, self.version, canary_groups))
        write_atomic(self.layout.published(self.region), {"region": self.region, "ready": state[0], "ts": time.time()})
        self.log(
            "eds_push",
            version=self.version,
            ready=len(local),
            priorities=[[g["priority"], g.get("zone") or g["region"], len(g["endpoints"])] for g in groups],
        )

    def run(self) -> None:
        for r in self.kubes:
            threading.Thread(target=self.watch_region, args=(r,), daemon=True, name=f"watch-{r}").start()
        threading.Thread(target=self.watch_nodes, daemon=True, name="watch-nodes").start()
        if self.mesh == "istio":
            threading.Thread(target=self.watch_virtual_service, daemon=True, name="watch-vs").start()
        n = 0
        while not self.done.is_set():
            self.push()
            if self.mesh == "istio":
                self.set_weights(force=n % 10 == 0)
            n += 1
            if n % 10 == 0:
                rotated = rotate_if_due(self.layout, self.region)
                if rotated:
                    self.log("cert_rotated", not_after=rotated)
            time.sleep(0.1)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="kwok platform: one region's mesh control plane")
    p.add_argument("--state", type=Path, required=True, help="the kwok platform's state dir (fleet.json)")
    p.add_argument("--region", required=True)
    p.add_argument("--mesh", choices=["istio", "cilium"], required=True)
    p.add_argument("--no-locality", action="store_true")
    a = p.parse_args(argv)
    data = json.loads((a.state / "fleet.json").read_text())
    layout = Layout.from_json(data["layout"])
    kubes = {r: Kube(Path(cfg)) for r, cfg in data["kubeconfigs"].items()}
    agent = MeshAgent(
        layout, a.region, a.mesh, not a.no_locality, kubes, layout.events_dir() / f"control-plane-{a.region}.jsonl"
    )
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    with contextlib.suppress(KeyboardInterrupt):
        agent.run()


if __name__ == "__main__":
    main()
