"""The kind bring-up plan (placeholder until the kind platform lands: it only lists steps)."""

from __future__ import annotations

from failover_drill.config.topology import Topology


def kind_plan(topo: Topology) -> list[str]:
    steps = []
    for i, r in enumerate(topo.regions, start=1):
        steps.append(
            f"kind create cluster --name {r.name} (pod subnet 10.{i}.0.0/16, zones {', '.join(r.zone_names())})"
        )
    return steps
