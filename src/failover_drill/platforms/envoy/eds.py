"""Which endpoints a region's gateway gets, at which priority: what istiod (locality failover) or
Cilium (global service, affinity local) would push. Shared by every platform's control plane."""

from __future__ import annotations

from typing import Any

from failover_drill.platforms.envoy.layout import Layout, ReplicaInfo


def endpoint_groups(
    layout: Layout,
    region: str,
    mesh: str,
    locality: bool,
    ready: list[ReplicaInfo],
    remote_ready: dict[str, int],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(payment-gateway groups, pg-local groups) for the gateway of `region`.

    Istio with locality LB: priority 0 the gateway's zone, 1 the rest of the region, then remote
    regions by RTT through their east-west gateways (renumbered without gaps, as pilot does).
    Cilium global service with affinity local: local backends only, remote ones only when no local
    backend is ready (all or nothing).
    """
    home = layout.gateways[region].home_zone
    zones: dict[str, list[ReplicaInfo]] = {}
    for r in ready:
        zones.setdefault(r.zone, []).append(r)
    local_groups = [
        {"priority": 0, "region": region, "zone": z, "endpoints": [(r.address(), 1, False) for r in rs]}
        for z, rs in sorted(zones.items())
    ]
    remote = [
        {"region": other, "endpoints": [(layout.gateways[other].eastwest_port, remote_ready[other], True)]}
        for other in layout.nearest[region]
        if other != region and remote_ready.get(other, 0) > 0
    ]
    tiers: list[list[dict[str, Any]]]
    if mesh == "cilium":
        tiers = [local_groups] if local_groups else [remote]
    elif locality:
        tiers = [
            [g for g in local_groups if g["zone"] == home],
            [g for g in local_groups if g["zone"] != home],
            *[[g] for g in remote],
        ]
    else:
        tiers = [local_groups + remote]
    groups = []
    prio = 0
    for tier in tiers:
        if not tier:
            continue
        for g in tier:
            groups.append({**g, "priority": prio})
        prio += 1
    return groups, local_groups
