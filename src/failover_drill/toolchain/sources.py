"""Files taken from the pinned modules' sources in the Go module cache: upstream CRDs, kwok's Stages.

They are read where go unpacked them (read-only), never copied into the repository.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from failover_drill.toolchain.gocmd import ToolchainError, mod_download
from failover_drill.toolchain.pins import Pins, load_pins


def _files(module: str, version: str, rels: Iterable[str], where: str, pins: Pins) -> list[Path]:
    src = mod_download(module, version)
    out = []
    for rel in rels:
        path = src.dir / rel
        if not path.is_file():
            raise ToolchainError(f"{module}@{version} has no {rel}", hint=f"fix {where} in {pins.source}")
        out.append(path)
    return out


def crd_files(sources: Iterable[str] | None = None, *, pins: Pins | None = None) -> list[Path]:
    """Paths of the CRD files of each named source (default: all), downloading the module if needed."""
    pins = pins or load_pins()
    out: list[Path] = []
    for name in sources or pins.crds:
        src = pins.crd_source(name)
        out += _files(src.module, src.version, src.files, f"crds.{name}.files", pins)
    return out


def component_files(name: str, *, pins: Pins | None = None) -> list[Path]:
    """A component's `data_files` from its pinned module source (e.g. kwok's default Stages)."""
    pins = pins or load_pins()
    c = pins.component(name)
    return _files(c.module, c.version, c.data_files, f"components.{name}.data_files", pins)
