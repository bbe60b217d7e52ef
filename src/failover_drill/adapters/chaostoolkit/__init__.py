"""Chaos Toolkit extension: actions, probes and a control that run a failover drill inside
`chaos run`. The only place that imports chaoslib."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"


def discover(discover_system: bool = True) -> dict[str, Any]:
    """What `chaos discover failover-drill` lists."""
    from chaoslib.discovery.discover import discover_actions, discover_probes, initialize_discovery_result

    discovery: dict[str, Any] = initialize_discovery_result("failover-drill", __version__, "failover-drill")
    discovery["activities"].extend(discover_actions("failover_drill.adapters.chaostoolkit.actions"))
    discovery["activities"].extend(discover_probes("failover_drill.adapters.chaostoolkit.probes"))
    return discovery
