"""pins.toml: one pinned module version per Kubernetes component and per upstream CRD source, and
one pinned Debian package version per binary fetched from Debian's archive (Prometheus)."""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from failover_drill.errors import ConfigError

PINS_FILE = Path(__file__).with_name("pins.toml")

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_VERSION = re.compile(r"^v(?P<major>\d+)\.(?P<minor>\d+)\.(?P<patch>\d+)(?P<rest>[-+].*)?$")


@dataclass(frozen=True)
class Component:
    """A binary built from `package` of `module`@`version`, stamped with `ldflags`."""

    name: str
    module: str
    version: str
    package: str
    ldflags: tuple[str, ...]
    # Files of the module's source the component needs at run time (kwok's Stages). Not part of
    # the fingerprint: they do not change the binary.
    data_files: tuple[str, ...] = ()

    def fingerprint(self) -> str:
        """What the stamp file holds: a change of any field means a rebuild."""
        return json.dumps(
            {
                "name": self.name,
                "module": self.module,
                "version": self.version,
                "package": self.package,
                "ldflags": list(self.ldflags),
            },
            sort_keys=True,
        )


@dataclass(frozen=True)
class CrdSource:
    """CRD files (paths inside the module) taken from the pinned module's source."""

    name: str
    module: str
    version: str
    files: tuple[str, ...]


@dataclass(frozen=True)
class Deb:
    """Binaries taken from a Debian package (`package`=`version`, whose .deb has `sha256`)."""

    name: str
    package: str
    version: str
    sha256: str
    binaries: tuple[str, ...]  # paths inside the package, e.g. usr/bin/prometheus

    def fingerprint(self) -> str:
        return json.dumps(
            {"package": self.package, "version": self.version, "sha256": self.sha256, "binaries": list(self.binaries)},
            sort_keys=True,
        )


@dataclass(frozen=True)
class Pins:
    components: dict[str, Component]
    crds: dict[str, CrdSource]
    source: Path
    debs: dict[str, Deb] = field(default_factory=dict)

    def component(self, name: str) -> Component:
        try:
            return self.components[name]
        except KeyError:
            raise ConfigError(
                f"unknown component {name!r}",
                source=str(self.source),
                hint="one of: " + ", ".join(self.components),
            ) from None

    def deb(self, name: str) -> Deb:
        try:
            return self.debs[name]
        except KeyError:
            raise ConfigError(
                f"unknown Debian package pin {name!r}",
                source=str(self.source),
                hint="one of: " + (", ".join(self.debs) or "none ([debs.*] in pins.toml)"),
            ) from None

    def crd_source(self, name: str) -> CrdSource:
        try:
            return self.crds[name]
        except KeyError:
            raise ConfigError(
                f"unknown CRD source {name!r}",
                source=str(self.source),
                hint="one of: " + ", ".join(self.crds),
            ) from None


def split_version(version: str) -> tuple[int, int, str]:
    """v1.36.3 -> (1, 36, "3"); v1.38.0-beta.0 -> (1, 38, "0-beta.0")."""
    m = _VERSION.match(version)
    if not m:
        raise ValueError(f"{version!r} is not a semantic version like v1.36.3")
    return int(m["major"]), int(m["minor"]), m["patch"] + (m["rest"] or "")


def _str(table: dict[str, Any], key: str, where: str, source: Path) -> str:
    value = table.get(key)
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{key} must be a non-empty string", source=str(source), field=f"{where}.{key}")
    return value


def _strings(table: dict[str, Any], key: str, where: str, source: Path) -> tuple[str, ...]:
    value = table.get(key)
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{key} must be a non-empty list of strings", source=str(source), field=f"{where}.{key}")
    return tuple(value)


def load_pins(path: Path = PINS_FILE) -> Pins:
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read the toolchain pins ({exc})", source=str(path)) from None
    stamps: dict[str, Any] = data.get("stamps", {})
    components: dict[str, Component] = {}
    for name, table in data.get("components", {}).items():
        where = f"components.{name}"
        version = _str(table, "version", where, path)
        try:
            split_version(version)
        except ValueError as exc:
            raise ConfigError(str(exc), source=str(path), field=f"{where}.version") from None
        stamp = table.get("stamp")
        flags: tuple[str, ...] = ()
        if stamp is not None:
            if stamp not in stamps:
                raise ConfigError(f"no [stamps] entry {stamp!r}", source=str(path), field=f"{where}.stamp")
            flags = _strings(stamps, stamp, "stamps", path)
        components[name] = Component(
            name=name,
            module=_str(table, "module", where, path),
            version=version,
            package=_str(table, "package", where, path),
            ldflags=flags,
            data_files=_strings(table, "data_files", where, path) if "data_files" in table else (),
        )
    crds: dict[str, CrdSource] = {}
    for name, table in data.get("crds", {}).items():
        where = f"crds.{name}"
        crds[name] = CrdSource(
            name=name,
            module=_str(table, "module", where, path),
            version=_str(table, "version", where, path),
            files=_strings(table, "files", where, path),
        )
    debs: dict[str, Deb] = {}
    for name, table in data.get("debs", {}).items():
        where = f"debs.{name}"
        sha = _str(table, "sha256", where, path)
        if not _SHA256.match(sha):
            raise ConfigError("sha256 must be 64 lowercase hex digits", source=str(path), field=f"{where}.sha256")
        debs[name] = Deb(
            name=name,
            package=_str(table, "package", where, path),
            version=_str(table, "version", where, path),
            sha256=sha,
            binaries=_strings(table, "binaries", where, path),
        )
    if not components:
        raise ConfigError("no [components.*] entries", source=str(path))
    return Pins(components=components, crds=crds, source=path, debs=debs)
