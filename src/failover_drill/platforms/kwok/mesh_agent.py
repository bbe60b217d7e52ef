"""A region's mesh control plane on kwok: istiod (multi-primary, remote secrets to every cluster)
or clustermesh-apiserver, reduced to what decides failover.

It watches the payment-gateway EndpointSlices of every region's real API server and pushes its
gateway's endpoints over EDS files: the region's ready pods by zone (their pod IPs), remote regions
through their east-west gateways weighted by their ready pods. Readiness is Kubernetes' own: the
kubelet's probes, or the node lifecycle controller marking a lost node's pods not ready. When a
region's API server is unreachable its last-known endpoints are kept, as Istio and Cilium do.
Every change is logged as an event with its time, for the drill's timeline.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

from failover_drill.platforms.envoy.config import eds_response, write_atomic
from failover_drill.platforms.envoy.eds import endpoint_groups
from failover_drill.platforms.envoy.layout import Layout, ReplicaInfo
from failover_drill.platforms.envoy.rotation import rotate_if_due
from failover_drill.platforms.kube.client import Kube

NAMESPACE = "payments"
SERVICE = "payment-gateway"


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
        kube = self.kubes[region]
        for etype, sl in kube.watch(
            kube.discovery.list_namespaced_endpoint_slice,
            stop=self.done.is_set,
            namespace=NAMESPACE,
            label_selector=f"kubernetes.io/service-name={SERVICE}",
        ):
            with self.lock:
                if etype == "DELETED":
                    self.slices[region].pop(sl.metadata.name, None)
                else:
                    self.slices[region][sl.metadata.name] = self._endpoints(region, sl)

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

    def push(self) -> None:
        with self.lock:
            ready = {
                r: [info for eps in slices.values() for info, ok in eps if ok] for r, slices in self.slices.items()
            }
        for r, infos in ready.items():
            names = {i.name for i in infos}
            if r == self.region:
                for gone in self.ready_names[r] - names:
                    self.log("not_ready", replica=gone, region=r, zone=self.zone_of.get(gone))
                for new in names - self.ready_names[r]:
                    self.log("ready", replica=new, region=r, zone=self.zone_of.get(new))
                self.zone_of.update({i.name: i.zone for i in infos})
            self.ready_names[r] = names
        local = sorted(ready.get(self.region, []), key=lambda i: (i.zone, i.name))
        remote = {r: len(v) for r, v in ready.items() if r != self.region}
        state = ([(i.name, i.host) for i in local], remote)
        if state == self.last:
            return
        self.last = state
        self.version += 1
        groups, local_groups = endpoint_groups(self.layout, self.region, self.mesh, self.locality, local, remote)
        eds = self.layout.eds_dir(self.region)
        write_atomic(eds / "pg-local.json", eds_response("pg-local", self.version, local_groups))
        write_atomic(eds / "payment-gateway.json", eds_response("payment-gateway", self.version, groups))
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
        n = 0
        while not self.done.is_set():
            self.push()
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
