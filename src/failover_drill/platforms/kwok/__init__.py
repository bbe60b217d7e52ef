"""The kwok platform: real Kubernetes control planes per region (built from source by
failover_drill.toolchain), with kwok playing the nodes."""

from __future__ import annotations

from failover_drill.platforms.kwok.control_plane import (
    COMPONENTS,
    FLEET_ENV,
    PROCESS_ENV,
    ControlPlane,
    ControlPlaneError,
    ControlPlaneSpec,
    MarkedProcess,
    Ports,
    find_marked,
    stop_marked,
)

__all__ = [
    "COMPONENTS",
    "FLEET_ENV",
    "PROCESS_ENV",
    "ControlPlane",
    "ControlPlaneError",
    "ControlPlaneSpec",
    "MarkedProcess",
    "Ports",
    "find_marked",
    "stop_marked",
]
