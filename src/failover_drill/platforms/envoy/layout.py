"""Where every sandbox component lives: ports, files and names, derived once at `up` and saved."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from failover_drill.config.topology import Topology
from failover_drill.platforms.ports import allocate
from failover_drill.platforms.processes import ProcSpec

FRONT_DOOR = "front-door"


@dataclass
class ReplicaInfo:
    name: str
    region: str
    zone: str
    port: int
    # A pod's own IP on the kwok platform; the sandbox's replicas listen on loopback.
    host: str = "127.0.0.1"

    def address(self) -> int | tuple[str, int]:
        """What an EDS endpoint tuple holds: a loopback port, or (host, port)."""
        return self.port if self.host == "127.0.0.1" else (self.host, self.port)


@dataclass
class GatewayInfo:
    region: str
    home_zone: str
    ingress_port: int
    eastwest_port: int
    admin_port: int


@dataclass
class Layout:
    state_dir: str
    frontdoor_port: int
    frontdoor_admin_port: int
    regions: list[str]
    gateways: dict[str, GatewayInfo]
    replicas: list[ReplicaInfo]
    # RTT between regions (ms) and the order each client region prefers.
    rtt_ms: dict[str, dict[str, float]] = field(default_factory=dict)
    nearest: dict[str, list[str]] = field(default_factory=dict)

    # -- paths ----------------------------------------------------------------------------------
    @property
    def root(self) -> Path:
        return Path(self.state_dir)

    def eds_dir(self, region: str) -> Path:
        return self.root / "eds" / region

    def sds_dir(self, region: str) -> Path:
        return self.root / "sds" / region

    def published(self, region: str) -> Path:
        return self.root / "cp" / f"{region}.json"

    def ledger(self, region: str) -> Path:
        return self.root / "ledgers" / f"{region}.sqlite"

    def events_dir(self) -> Path:
        return self.root / "events"

    def logs_dir(self) -> Path:
        return self.root / "logs"

    def envoy_dir(self) -> Path:
        return self.root / "envoy"

    def pki_dir(self) -> Path:
        return self.root / "pki"

    # -- queries --------------------------------------------------------------------------------
    def region_replicas(self, region: str) -> list[ReplicaInfo]:
        return [r for r in self.replicas if r.region == region]

    def frontdoor_url(self) -> str:
        return f"http://127.0.0.1:{self.frontdoor_port}"

    def admin_port(self, kind: str, region: str | None) -> int | None:
        """The Envoy admin port of a front door or gateway process (None for anything else)."""
        if kind == "frontdoor":
            return self.frontdoor_admin_port
        if kind == "gateway" and region in self.gateways:
            return self.gateways[region].admin_port
        return None

    def status_row(self, spec: ProcSpec, state: str) -> dict[str, Any]:
        """One process as `failover-drill status` shows it: its app port, and for an Envoy its
        admin port and the Prometheus stats endpoint that admin port serves."""
        admin = self.admin_port(spec.kind, spec.region)
        # An Envoy's spec watches its admin port for readiness; the port it serves is another.
        port = self.frontdoor_port if spec.kind == "frontdoor" else spec.port
        if spec.kind == "gateway" and spec.region in self.gateways:
            port = self.gateways[spec.region].ingress_port
        return {
            "name": spec.name,
            "kind": spec.kind,
            "region": spec.region,
            "zone": spec.zone,
            "pid": spec.pid,
            "port": port,
            "admin_port": admin,
            "metrics": f"http://127.0.0.1:{admin}/stats/prometheus" if admin else None,
            "state": state,
        }

    def port_owner(self, port: int, host: str = "127.0.0.1") -> tuple[str, str | None, str | None]:
        """(component, region, zone) listening on host:port, for naming hosts in Envoy's event logs."""
        for r in self.replicas:
            if r.port == port and r.host == host:
                return r.name, r.region, r.zone
        for g in self.gateways.values():
            if port in (g.ingress_port, g.eastwest_port):
                return f"gateway-{g.region}", g.region, None
        return f"{host}:{port}", None, None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Layout:
        return cls(
            state_dir=data["state_dir"],
            frontdoor_port=data["frontdoor_port"],
            frontdoor_admin_port=data["frontdoor_admin_port"],
            regions=list(data["regions"]),
            gateways={k: GatewayInfo(**v) for k, v in data["gateways"].items()},
            replicas=[ReplicaInfo(**r) for r in data["replicas"]],
            rtt_ms=data.get("rtt_ms", {}),
            nearest=data.get("nearest", {}),
        )


def routing(topo: Topology) -> dict[str, Any]:
    """RTT between regions and each client region's preferred order, as the front door needs them."""
    return {
        "rtt_ms": {a: {b: topo.rtt_ms(a, b) for b in topo.region_names} for a in topo.region_names},
        "nearest": {a: topo.nearest(a) for a in topo.region_names},
    }


def gateway_layout(topo: Topology, state_dir: Path, replicas: list[tuple[str, str, str]] | None = None) -> Layout:
    """Ports for the front door, a gateway per region and the given (name, region, zone) replicas
    on loopback (none where replicas have pod IPs of their own, as on kwok)."""
    names = ["frontdoor", "frontdoor-admin"]
    for region in topo.regions:
        names += [f"gw-{region.name}-in", f"gw-{region.name}-ew", f"gw-{region.name}-admin"]
    names += [key for key, _, _ in replicas or []]
    ports = allocate(names, topo.sandbox.base_port)
    return Layout(
        state_dir=str(state_dir),
        frontdoor_port=ports["frontdoor"],
        frontdoor_admin_port=ports["frontdoor-admin"],
        regions=topo.region_names,
        gateways={
            r.name: GatewayInfo(
                region=r.name,
                home_zone=r.home_zone(),
                ingress_port=ports[f"gw-{r.name}-in"],
                eastwest_port=ports[f"gw-{r.name}-ew"],
                admin_port=ports[f"gw-{r.name}-admin"],
            )
            for r in topo.regions
        },
        replicas=[ReplicaInfo(name=k, region=reg, zone=z, port=ports[k]) for k, reg, z in replicas or []],
        **routing(topo),
    )


def plan_layout(topo: Topology, state_dir: Path) -> Layout:
    replicas = [
        (f"payment-gateway-{zone}-{i}", region.name, zone)
        for region in topo.regions
        for zone in region.zone_names()
        for i in range(topo.replicas_per_zone)
    ]
    return gateway_layout(topo, state_dir, replicas)
