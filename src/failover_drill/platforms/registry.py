"""Which platform a name means, and where its state lives under the state directory."""

from __future__ import annotations

from pathlib import Path

from failover_drill.config.topology import Topology
from failover_drill.errors import ConfigError
from failover_drill.platforms.base import Platform
from failover_drill.platforms.doctor import Check, envoy_check

PLATFORMS = ("sandbox", "kwok", "kind")


def platform_dir(state_dir: Path, name: str) -> Path:
    return state_dir / name


def check_platform(name: str, field: str = "--platform") -> str:
    if name in PLATFORMS:
        return name
    raise ConfigError(f"unknown platform {name!r}", field=field, hint=f"choose one of {', '.join(PLATFORMS)}")


def open_platform(name: str, state_dir: Path, topology: Topology | None = None) -> Platform:
    check_platform(name)
    # Imported on demand: a sandbox drill never loads the kind platform's modules, and back.
    if name == "kind":
        from failover_drill.platforms.kind.platform import KindPlatform

        return KindPlatform(platform_dir(state_dir, name), topology)
    if name == "kwok":
        from failover_drill.platforms.kwok.platform import KwokPlatform

        return KwokPlatform(platform_dir(state_dir, name), topology)
    from failover_drill.platforms.sandbox.platform import SandboxPlatform

    return SandboxPlatform(platform_dir(state_dir, name), topology)


def all_platforms(state_dir: Path) -> list[Platform]:
    """Every platform's view of one state directory (for recovery)."""
    return [open_platform(name, state_dir) for name in PLATFORMS]


def host_checks(name: str, topology: Topology) -> list[Check]:
    """`failover-drill doctor`: what the platform needs from this host, each check with its fix."""
    check_platform(name)
    if name == "kind":
        from failover_drill.platforms.kind.doctor import kind_checks

        return kind_checks(topology)
    if name == "kwok":
        from failover_drill.platforms.kwok.doctor import kwok_checks

        return kwok_checks()
    return [envoy_check()]
