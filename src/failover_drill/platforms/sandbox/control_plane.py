"""A region's control plane: plays kubelet readiness probing plus istiod / clustermesh-apiserver.

It probes the region's replicas as the Deployment's readinessProbe says, publishes which are ready
(what the region's API server would tell remote meshes), reads what the other regions published,
and pushes endpoints to its gateway through EDS files. When it is stopped (control-plane loss,
region loss) its gateway keeps the last endpoints it got, and remote regions keep the last
endpoints it published: the behaviour of Istio and Cilium when a remote API server is unreachable.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from failover_drill.platforms.envoy.config import eds_response, write_atomic
from failover_drill.platforms.envoy.eds import endpoint_groups
from failover_drill.platforms.envoy.layout import Layout, ReplicaInfo
from failover_drill.platforms.envoy.rotation import rotate_if_due


@dataclass
class ProbeSettings:
    period_s: float
    timeout_s: float
    failure_threshold: int
    success_threshold: int


class Agent:
    def __init__(self, layout: Layout, region: str, mesh: str, locality: bool, probe: ProbeSettings) -> None:
        self.layout = layout
        self.region = region
        self.mesh = mesh
        self.locality = locality
        self.probe = probe
        self.replicas = layout.region_replicas(region)
        self.ready: dict[str, bool] = {r.name: False for r in self.replicas}
        self.fails: dict[str, int] = {r.name: 0 for r in self.replicas}
        self.oks: dict[str, int] = {r.name: 0 for r in self.replicas}
        self.version = int(time.time() * 1000)
        self.last: Any = None
        self.events = (layout.events_dir() / f"control-plane-{region}.jsonl").open("a", buffering=1)

    def log(self, event: str, **kw: Any) -> None:
        self.events.write(
            json.dumps({"ts": time.time(), "source": f"control-plane-{self.region}", "event": event, **kw}) + "\n"
        )

    async def _probe_once(self, r: ReplicaInfo) -> bool:
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", r.port), self.probe.timeout_s)
        except (OSError, TimeoutError):
            return False
        try:
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: probe\r\nConnection: close\r\n\r\n")
            line = await asyncio.wait_for(reader.readline(), self.probe.timeout_s)
            parts = line.split()
            return len(parts) >= 2 and 200 <= int(parts[1]) < 400
        except (OSError, TimeoutError, ValueError):
            return False
        finally:
            writer.close()

    async def probe_loop(self, r: ReplicaInfo) -> None:
        while True:
            ok = await self._probe_once(r)
            if ok:
                self.fails[r.name] = 0
                self.oks[r.name] += 1
                if not self.ready[r.name] and self.oks[r.name] >= self.probe.success_threshold:
                    self.ready[r.name] = True
                    self.log("ready", replica=r.name, zone=r.zone, region=r.region)
            else:
                self.oks[r.name] = 0
                self.fails[r.name] += 1
                if self.ready[r.name] and self.fails[r.name] >= self.probe.failure_threshold:
                    self.ready[r.name] = False
                    self.log("not_ready", replica=r.name, zone=r.zone, region=r.region)
            await asyncio.sleep(self.probe.period_s)

    def _remote_ready(self) -> dict[str, int]:
        out = {}
        for other in self.layout.regions:
            if other == self.region:
                continue
            try:
                out[other] = len(json.loads(self.layout.published(other).read_text())["ready"])
            except (OSError, ValueError, KeyError):
                out[other] = 0
        return out

    def push(self) -> None:
        ready = [r for r in self.replicas if self.ready[r.name]]
        remote = self._remote_ready()
        state = ([r.name for r in ready], remote)
        if state == self.last:
            return
        self.last = state
        self.version += 1
        write_atomic(self.layout.published(self.region), {"region": self.region, "ready": state[0], "ts": time.time()})
        groups, local = endpoint_groups(self.layout, self.region, self.mesh, self.locality, ready, remote)
        eds = self.layout.eds_dir(self.region)
        write_atomic(eds / "pg-local.json", eds_response("pg-local", self.version, local))
        write_atomic(eds / "payment-gateway.json", eds_response("payment-gateway", self.version, groups))
        self.log(
            "eds_push",
            version=self.version,
            ready=len(ready),
            priorities=[[g["priority"], g.get("zone") or g["region"], len(g["endpoints"])] for g in groups],
        )

    def rotate(self) -> None:
        not_after = rotate_if_due(self.layout, self.region)
        if not_after:
            self.log("cert_rotated", not_after=not_after)

    async def rotation_loop(self) -> None:
        while True:
            await asyncio.to_thread(self.rotate)
            await asyncio.sleep(1.0)

    async def run(self) -> None:
        self.push()
        tasks = [asyncio.create_task(self.probe_loop(r)) for r in self.replicas]
        tasks.append(asyncio.create_task(self.rotation_loop()))
        try:
            while True:
                self.push()
                await asyncio.sleep(0.2)
        finally:
            for t in tasks:
                t.cancel()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="sandbox control plane for one region")
    p.add_argument("--state", type=Path, required=True)
    p.add_argument("--region", required=True)
    p.add_argument("--mesh", choices=["istio", "cilium"], required=True)
    p.add_argument("--no-locality", action="store_true")
    p.add_argument("--period", type=float, required=True)
    p.add_argument("--timeout", type=float, required=True)
    p.add_argument("--failure-threshold", type=int, required=True)
    p.add_argument("--success-threshold", type=int, default=1)
    a = p.parse_args(argv)
    layout = Layout.from_json(json.loads((a.state / "fleet.json").read_text())["layout"])
    agent = Agent(
        layout,
        a.region,
        a.mesh,
        not a.no_locality,
        ProbeSettings(a.period, a.timeout, a.failure_threshold, a.success_threshold),
    )
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(agent.run())


if __name__ == "__main__":
    main()
