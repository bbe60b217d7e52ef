"""failover-drill: rehearse multi-region failover and measure what users felt."""

from typing import Any

__version__ = "0.1.0"


def discover(discover_system: bool = True) -> dict[str, Any]:
    """`chaos discover failover_drill` looks for this function on the package it is given; the
    extension itself (and chaoslib) is imported only when it is called."""
    from failover_drill.adapters.chaostoolkit import discover as discover_extension

    return discover_extension(discover_system=discover_system)
