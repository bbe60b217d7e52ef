"""The fleet's shape: regions, zones, replicas, inter-region latency, and the mesh profile."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from failover_drill.config.yamlio import At, load_one, validate
from failover_drill.errors import ConfigError, echo

# Region names end up in cluster, node and file names (kind: fd-<region>-worker2, a DNS label).
MAX_REGION_NAME = 41
_NAME = re.compile(r"^[a-z][a-z0-9-]*$")
MESH_PROFILES = ("istio", "istio-tuned", "cilium", "cilium-tuned")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Region(Strict):
    name: str
    zones: list[str] = Field(default_factory=lambda: ["a", "b", "c"], min_length=1, max_length=6)
    # The zone whose locality the region's gateway has: Istio ranks endpoints by the caller's zone.
    gateway_zone: str | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        # Length first: a name too long is refused for being too long, whatever its letters.
        if len(v) > MAX_REGION_NAME:
            raise ValueError(f"region name {echo(v)} is too long: the limit is {MAX_REGION_NAME} characters")
        if not _NAME.match(v):
            raise ValueError(
                f"region name {echo(v)} must start with a lower-case letter and hold only a-z, 0-9 and '-'"
            )
        return v

    @field_validator("zones")
    @classmethod
    def _zones(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError("zone suffixes must be unique")
        for z in v:
            if not re.match(r"^[a-z0-9]{1,8}$", z):
                raise ValueError(f"zone suffix {echo(z)} must be 1-8 lower-case letters or digits, e.g. 'a'")
        return v

    @model_validator(mode="after")
    def _gateway_zone(self) -> Self:
        if self.gateway_zone is not None and self.gateway_zone not in self.zones:
            raise At(("gateway_zone",), f"gateway_zone {echo(self.gateway_zone)} is not one of zones {self.zones}")
        return self

    def zone_names(self) -> list[str]:
        return [f"{self.name}-{z}" for z in self.zones]

    def home_zone(self) -> str:
        return f"{self.name}-{self.gateway_zone or self.zones[0]}"


class SandboxSettings(Strict):
    # 0 picks free ports; a fixed base makes ports predictable (and can collide: checked at `up`).
    base_port: int = Field(default=0, ge=0, le=65000)
    envoy_concurrency: int = Field(default=1, ge=1, le=8)


class KwokSettings(Strict):
    """Kubernetes' own failure detection on the kwok platform (kube-controller-manager flags);
    the defaults are upstream's (v1.36)."""

    node_monitor_grace_period_s: float = Field(default=50.0, ge=2, le=600)
    node_monitor_period_s: float = Field(default=5.0, gt=0, le=60)
    # How long kwok's node leases last; they are renewed every quarter of it. Kept well under the
    # grace period, as kubelets' 40 s leases are under upstream's 50 s.
    node_lease_duration_s: int = Field(default=40, ge=1, le=600)
    # How long a pod stays bound to a NotReady / unreachable node before it is evicted: the
    # tolerationSeconds the API server's DefaultTolerationSeconds admission adds to every pod
    # (kube-apiserver --default-not-ready-toleration-seconds / --default-unreachable-toleration-seconds).
    # Upstream's 300 s means a lost zone's pods are rescheduled only after five minutes.
    pod_eviction_s: int = Field(default=300, ge=0, le=86400)

    @model_validator(mode="after")
    def _lease_under_grace(self) -> Self:
        if self.node_lease_duration_s / 4 >= self.node_monitor_grace_period_s:
            raise ValueError(
                "node_lease_duration_s / 4 (the renewal interval) must be shorter than node_monitor_grace_period_s, "
                "or healthy nodes go NotReady"
            )
        return self


class Topology(Strict):
    name: str = "default"
    mesh: str = "istio"
    regions: list[Region] = Field(min_length=1, max_length=8)
    replicas_per_zone: int = Field(default=2, ge=1, le=10)
    # Round-trip time between regions in ms; symmetric, so one direction is enough.
    latency_ms: dict[str, dict[str, float]] = Field(default_factory=dict)
    manifests: Path = Path("manifests/payment-gateway")
    sandbox: SandboxSettings = Field(default_factory=SandboxSettings)
    kwok: KwokSettings = Field(default_factory=KwokSettings)
    source: Path | None = Field(default=None, exclude=True)

    @field_validator("mesh")
    @classmethod
    def _mesh(cls, v: str) -> str:
        if v not in MESH_PROFILES:
            raise ValueError(f"unknown mesh profile {echo(v)}; choose one of {', '.join(MESH_PROFILES)}")
        return v

    @model_validator(mode="after")
    def _check(self) -> Self:
        # Each complaint points at the offending entry (At), so the error names its line and path.
        names = [r.name for r in self.regions]
        first: dict[str, int] = {}
        for i, name in enumerate(names):
            if name in first:
                raise At(
                    ("regions", i, "name"),
                    f"region name {echo(name)} is used twice (first as regions.{first[name]}); names must be unique",
                )
            first[name] = i
        known = ", ".join(names)
        for a, row in self.latency_ms.items():
            if a not in first:
                raise At(("latency_ms", a), f"latency_ms names unknown region {echo(a)}; regions are {known}")
            for b, ms in row.items():
                if b not in first:
                    raise At(
                        ("latency_ms", a, b), f"latency_ms.{a} names unknown region {echo(b)}; regions are {known}"
                    )
                if not ms >= 0:  # also refuses NaN, which compares false both ways
                    raise At(("latency_ms", a, b), f"latency_ms.{a}.{b} is {ms}: latency must be a number >= 0")
        return self

    # -- queries -------------------------------------------------------------------------------

    @property
    def region_names(self) -> list[str]:
        return [r.name for r in self.regions]

    def region(self, name: str) -> Region:
        for r in self.regions:
            if r.name == name:
                return r
        raise ConfigError(
            f"unknown region {echo(name)}",
            field="region",
            hint=f"choose one of: {', '.join(self.region_names)}",
        )

    def rtt_ms(self, a: str, b: str) -> float:
        if a == b:
            return 0.0
        return self.latency_ms.get(a, {}).get(b, self.latency_ms.get(b, {}).get(a, 0.0))

    def nearest(self, origin: str) -> list[str]:
        """Regions ordered by RTT from origin, origin first; ties keep file order."""
        order = {n: i for i, n in enumerate(self.region_names)}
        return sorted(self.region_names, key=lambda n: (n != origin, self.rtt_ms(origin, n), order[n]))

    def home_zone(self, region: str) -> str:
        return self.region(region).home_zone()

    def zone_region(self, zone: str) -> str | None:
        for r in self.regions:
            if zone in r.zone_names():
                return r.name
        return None

    def all_zones(self) -> list[str]:
        return [z for r in self.regions for z in r.zone_names()]

    def manifests_dir(self) -> Path:
        """`manifests:` resolved against the topology file's own folder; a topology copied out of
        the checkout (whose manifests did not come along) falls back to the shipped manifests."""
        if self.manifests.is_absolute() or self.source is None:
            return self.manifests
        beside = (self.source.parent / self.manifests).resolve()
        if beside.exists():
            return beside
        shipped = (default_topology_path().parent / self.manifests).resolve()
        return shipped if shipped.exists() else beside


def default_topology_path() -> Path:
    """clusters/topology.yaml of this checkout, or the copy shipped inside the package."""
    here = Path.cwd() / "clusters" / "topology.yaml"
    if here.exists():
        return here
    return Path(__file__).resolve().parents[3] / "clusters" / "topology.yaml"


def load_topology(path: Path | None = None, *, mesh: str | None = None, mesh_from: str = "--mesh") -> Topology:
    """The topology file, with `mesh` (when given, from `mesh_from`: an option or a field of another
    file, which a bad profile's error names instead of the topology's own `mesh:` line)."""
    if mesh is not None and mesh not in MESH_PROFILES:
        raise ConfigError(
            f"unknown mesh profile {echo(mesh)}",
            field=mesh_from,
            hint=f"choose one of {', '.join(MESH_PROFILES)}",
        )
    path = path or default_topology_path()
    data, lines = load_one(path)
    if not isinstance(data, dict):
        raise ConfigError("a topology must be a mapping", source=str(path), line=1)
    if mesh is not None:
        data = {**data, "mesh": mesh}
    topo = validate(Topology, data, lines, str(path), hint="see clusters/topology.yaml for a valid example")
    topo = topo.model_copy(update={"source": path.resolve()})
    if not topo.manifests_dir().is_dir():
        raise ConfigError(
            f"manifests directory {topo.manifests_dir()} does not exist",
            source=str(path),
            field="manifests",
            line=lines.get(("manifests",)),
            hint="'manifests' is read relative to the topology file's folder (then this checkout's "
            "clusters/): copy the payment-gateway manifests there, or give an absolute path",
        )
    return topo
