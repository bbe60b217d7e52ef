"""The Kubernetes toolchain: pinned components built from source with go, and upstream CRDs.

Pins live in pins.toml beside this file. `python -m failover_drill.toolchain build` (`make k8s-bin`)
builds what changed; `... fetch` (`make prometheus-bin`) fetches the pinned Debian packages'
binaries (debs.py); `... crds` prints the CRD files taken from the pinned modules.
"""

from __future__ import annotations

from failover_drill.toolchain.build import (
    Built,
    binary_path,
    cache_root,
    component_dir,
    ensure_built,
    paths,
    reported_version,
    up_to_date,
)
from failover_drill.toolchain.debs import DebUnavailable, Fetched, deb_binary, deb_dir, ensure_fetched, resolve_binary
from failover_drill.toolchain.gocmd import BuildFailed, GoNotFound, ToolchainError
from failover_drill.toolchain.pins import Component, CrdSource, Deb, Pins, load_pins
from failover_drill.toolchain.sources import component_files, crd_files

__all__ = [
    "BuildFailed",
    "Built",
    "Component",
    "CrdSource",
    "Deb",
    "DebUnavailable",
    "Fetched",
    "GoNotFound",
    "Pins",
    "ToolchainError",
    "binary_path",
    "cache_root",
    "component_dir",
    "component_files",
    "crd_files",
    "deb_binary",
    "deb_dir",
    "ensure_built",
    "ensure_fetched",
    "load_pins",
    "paths",
    "reported_version",
    "resolve_binary",
    "up_to_date",
]
