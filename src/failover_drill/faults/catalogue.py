"""Fault specifications: pure data, validated against the topology before anything is injected."""

from __future__ import annotations

from failover_drill.config.faultspec import FRONT_DOOR, FaultSpec
from failover_drill.config.topology import Topology
from failover_drill.errors import ConfigError


def resolve(spec: FaultSpec, topo: Topology, client_region: str) -> FaultSpec:
    """Fill defaults from the topology and check every name; raises ConfigError naming the field."""
    regions = topo.region_names
    target = spec.target
    kind = spec.kind
    if kind == "blackout":
        return spec.model_copy(update={"target": None})
    if kind in ("region-loss", "control-plane-loss", "cert-expiry"):
        target = target or client_region
        if target not in regions:
            raise ConfigError(
                f"unknown region {target!r} for {kind}",
                field="fault.target",
                hint=f"choose one of {', '.join(regions)}",
            )
    elif kind in ("zone-loss", "brownout", "lost-response"):
        target = target or topo.region(client_region).home_zone()
        if target in regions and kind == "zone-loss":
            target = topo.region(target).home_zone()
        if target not in topo.all_zones() and target not in regions:
            raise ConfigError(
                f"unknown zone {target!r} for {kind}",
                field="fault.target",
                hint=f"zones are {', '.join(topo.all_zones())}",
            )
    elif kind in ("link-latency", "partition"):
        target = target or client_region
        if target not in regions:
            raise ConfigError(
                f"unknown region {target!r} for {kind}",
                field="fault.target",
                hint=f"choose one of {', '.join(regions)}",
            )
        source = spec.source or ("*" if kind == "link-latency" else FRONT_DOOR)
        allowed = [*regions, "*", FRONT_DOOR]
        if source not in allowed:
            raise ConfigError(
                f"unknown source {source!r} for {kind}",
                field="fault.source",
                hint=f"choose one of {', '.join(allowed)}",
            )
        if source == target:
            raise ConfigError(f"{kind} needs two different ends, got {source!r} twice", field="fault.source")
        return spec.model_copy(update={"target": target, "source": source})
    return spec.model_copy(update={"target": target})


def check_schedule(faults: list[FaultSpec], fault_phase_s: float) -> None:
    """A compound schedule must fit in the fault phase."""
    if not faults:
        raise ConfigError("a scenario needs at least one fault", field="faults")
    for i, f in enumerate(faults):
        end = f.at_s + (f.duration_s if f.duration_s is not None else fault_phase_s - f.at_s)
        if f.at_s >= fault_phase_s or end > fault_phase_s + 1e-9:
            raise ConfigError(
                f"fault {i} ({f.label()}) runs from {f.at_s:g}s to {end:g}s but the fault phase is {fault_phase_s:g}s",
                field=f"faults[{i}]",
                hint="shorten at_s/duration_s or lengthen phases.fault_s",
            )
    seen: dict[tuple[str, str | None, str | None], tuple[float, float]] = {}
    for i, f in enumerate(faults):
        end = f.at_s + (f.duration_s if f.duration_s is not None else fault_phase_s - f.at_s)
        key = (f.kind, f.target, f.source)
        if key in seen and not (end <= seen[key][0] or f.at_s >= seen[key][1]):
            raise ConfigError(
                f"fault {i} ({f.label()}) overlaps an earlier identical fault",
                field=f"faults[{i}]",
                hint="the same fault cannot be injected twice at once",
            )
        seen[key] = (f.at_s, end)
