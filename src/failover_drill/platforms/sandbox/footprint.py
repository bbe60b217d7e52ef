"""Will the fleet fit this machine? Counted from the topology before anything starts.

Resident memory per process was measured here (Envoy 1.40, uvicorn replicas, idle): a replica
~30 MiB, an Envoy ~76 MiB, a region's control plane ~47 MiB; under load a replica grows, so the
estimate takes 40 MiB. Processes per core bound whether the load generator keeps its schedule:
a fleet that wants every core leaves the stopwatch starved (its measurement turns inconclusive).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import psutil

from failover_drill.config.topology import Topology
from failover_drill.errors import ConfigError

REPLICA_MIB = 40
ENVOY_MIB = 76
CONTROL_PLANE_MIB = 47
MAX_MEMORY_SHARE = 0.8  # of MemAvailable: the rest is the drill's, the OS's and everyone else's
WARN_PROCESSES_PER_CORE = 20


@dataclass(frozen=True)
class Footprint:
    processes: int
    memory_mib: int


def footprint(topo: Topology) -> Footprint:
    replicas = sum(len(r.zones) for r in topo.regions) * topo.replicas_per_zone
    regions = len(topo.regions)
    envoys = regions + 1  # a gateway per region and the front door
    return Footprint(
        processes=replicas + envoys + regions,
        memory_mib=replicas * REPLICA_MIB + envoys * ENVOY_MIB + regions * CONTROL_PLANE_MIB,
    )


def available_mib() -> int | None:
    """Memory available for new processes without swapping (MemAvailable), in MiB."""
    try:
        return int(psutil.virtual_memory().available // (1024 * 1024))
    except (OSError, psutil.Error):
        return None


def check_fits(topo: Topology, cores: int | None = None, free_mib: int | None = None) -> str | None:
    """ConfigError when the fleet cannot fit in memory; a warning when it will crowd the CPUs."""
    fp = footprint(topo)
    free = available_mib() if free_mib is None else free_mib
    cores = cores or os.cpu_count() or 1
    if free is not None and fp.memory_mib > MAX_MEMORY_SHARE * free:
        raise ConfigError(
            f"this topology needs {fp.processes} processes and about {fp.memory_mib / 1024:.1f} GiB, but this "
            f"machine has {free / 1024:.1f} GiB available (at most {MAX_MEMORY_SHARE:.0%} of it is used for a fleet)",
            field="regions",
            hint="fewer regions, zones or replicas_per_zone (each replica takes ~40 MiB, each Envoy ~76 MiB)",
        )
    if fp.processes > WARN_PROCESSES_PER_CORE * cores:
        return (
            f"warning: {fp.processes} fleet processes on {cores} cores ({fp.processes / cores:.0f} per core): the load "
            "generator may not keep its schedule, and a starved stopwatch makes the drill inconclusive"
        )
    return None
