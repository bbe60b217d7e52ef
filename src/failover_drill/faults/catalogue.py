"""A scenario's faults checked as a whole: every name resolved against the fleet, and the
schedule of a compound scenario fitting its fault phase with no fault on twice at once."""

from __future__ import annotations

from failover_drill.errors import ConfigError
from failover_drill.faults.model import Fault, Places


def resolve(fault: Fault, places: Places, client_region: str) -> Fault:
    """Fill defaults from the fleet and check every name; raises ConfigError naming the field."""
    return fault.resolved(places, client_region)


def _end(f: Fault, fault_phase_s: float) -> float:
    return f.at_s + (f.duration_s if f.duration_s is not None else fault_phase_s - f.at_s)


def check_schedule(faults: list[Fault], fault_phase_s: float) -> None:
    """A compound schedule must fit in the fault phase."""
    if not faults:
        raise ConfigError("a scenario needs at least one fault", field="faults")
    for i, f in enumerate(faults):
        end = _end(f, fault_phase_s)
        if f.at_s >= fault_phase_s or end > fault_phase_s + 1e-9:
            raise ConfigError(
                f"fault {i} ({f.label()}) runs from {f.at_s:g}s to {end:g}s but the fault phase is {fault_phase_s:g}s",
                field=f"faults[{i}]",
                hint="shorten at_s/duration_s or lengthen phases.fault_s",
            )
    seen: dict[tuple[str, ...], tuple[float, float]] = {}
    for i, f in enumerate(faults):
        end = _end(f, fault_phase_s)
        key = f.identity()
        if key in seen and not (end <= seen[key][0] or f.at_s >= seen[key][1]):
            raise ConfigError(
                f"fault {i} ({f.label()}) overlaps an earlier identical fault",
                field=f"faults[{i}]",
                hint="the same fault cannot be injected twice at once",
            )
        seen[key] = (f.at_s, end)
