"""Traps: settings in the manifests that make a failover slow or impossible, each named with the
field that sets it and the change that fixes it. Found from the manifests alone, before anything
breaks (the prediction's findings, and what `predict --max-outage` fails a pipeline on)."""

from __future__ import annotations

from typing import Any

from failover_drill.config.manifests import MeshPolicy
from failover_drill.config.topology import Topology
from failover_drill.predict.model import Finding
from failover_drill.predict.timing import readiness_removal

DR = "DestinationRule.spec.trafficPolicy"
VS = "VirtualService.spec.http[0]"


def gateway_hosts(policy: MeshPolicy, topo: Topology, region: str) -> int:
    """Hosts in the gateway's cluster: the region's replicas and one east-west gateway per other region."""
    return len(topo.region(region).zones) * topo.replicas_per_zone + len(topo.regions) - 1


def ejectable(policy: MeshPolicy, topo: Topology, region: str) -> int:
    """How many hosts outlier detection may eject at once: Envoy ejects a host only while the
    ejected share stays within max_ejection_percent (measured here: 10% of 6 hosts ejects none)."""
    if policy.outlier is None:
        return 0
    return gateway_hosts(policy, topo, region) * policy.outlier.max_ejection_pct // 100


def findings(policy: MeshPolicy, topo: Topology, region: str, rto_s: float | None = None) -> list[Finding]:
    out: list[Finding] = []
    zone_hosts = topo.replicas_per_zone
    if policy.mesh == "istio":
        o, r = policy.outlier, policy.retry
        if o is None:
            out.append(
                Finding(
                    "no outlier detection",
                    "without outlierDetection istiod turns locality failover off: every locality shares the "
                    "traffic, and a dead endpoint keeps its share until readiness removes it",
                    "add outlierDetection (consecutiveGatewayErrors: 1, interval: 1s, maxEjectionPercent: 100)",
                    f"{DR}.outlierDetection",
                )
            )
        else:
            n, hosts = ejectable(policy, topo, region), gateway_hosts(policy, topo, region)
            if n < zone_hosts:
                out.append(
                    Finding(
                        "ejection cap",
                        f"maxEjectionPercent {o.max_ejection_pct}% of {hosts} hosts lets at most {n} be ejected; "
                        f"a lost zone has {zone_hosts}, so it keeps its traffic until readiness removes it",
                        "maxEjectionPercent: 100",
                        f"{DR}.outlierDetection.maxEjectionPercent",
                    )
                )
        if r is not None and r.attempts > 0:
            if r.per_try_timeout_s is None:
                out.append(
                    Finding(
                        "no per-try timeout",
                        "a hung replica holds each attempt until the route (or the client) gives up: "
                        "retries never get their turn",
                        "retries.perTryTimeout: 300ms (below the route timeout)",
                        f"{VS}.retries.perTryTimeout",
                    )
                )
            elif policy.route_timeout_s is not None and r.per_try_timeout_s >= policy.route_timeout_s:
                out.append(
                    Finding(
                        "per-try timeout not below the route timeout",
                        f"perTryTimeout {r.per_try_timeout_s:g} s >= route timeout {policy.route_timeout_s:g} s: "
                        "the first attempt uses the whole budget and no retry is ever sent",
                        f"perTryTimeout at most a third of the route timeout ({policy.route_timeout_s / 3:.2g} s)",
                        f"{VS}.retries.perTryTimeout",
                    )
                )
            if policy.locality_enabled and not r.remote_localities:
                out.append(
                    Finding(
                        "retries stay in the failing locality",
                        f"retries pick other hosts of the same priority: with the zone's {zone_hosts} replica(s) "
                        "gone they fail too",
                        "retries.retryRemoteLocalities: true",
                        f"{VS}.retries.retryRemoteLocalities",
                    )
                )
        out += _circuit_breakers(policy)
    elif not policy.cilium_global:
        out.append(
            Finding(
                "not a global service",
                "without service.cilium.io/global the Service has no backends in other clusters: "
                "a lost region has nowhere to fail over",
                'annotate the Service service.cilium.io/global: "true"',
                "Service.metadata.annotations",
            )
        )
    elif policy.cilium_affinity == "local" and len(topo.regions) < 2:
        out.append(
            Finding(
                "affinity local with one region",
                "affinity local prefers this cluster's backends and there is no other cluster to fall back on",
                "add a second region, or drop the affinity annotation",
                "Service.metadata.annotations",
            )
        )
    if rto_s is not None:
        kill, _ = readiness_removal(policy.readiness, "kill")
        if kill.hi > rto_s:
            probe = policy.readiness
            out.append(
                Finding(
                    "readiness slower than the budget",
                    f"{probe.failure_threshold} x {probe.period_s:g} s probes take up to {kill.hi:.3g} s to remove a dead "
                    f"replica, over the {rto_s:g} s budget (--max-outage, else the recovery objective)",
                    f"periodSeconds x failureThreshold under {rto_s:g} s (e.g. periodSeconds: 1, failureThreshold: 2)",
                    "Deployment.spec.template.spec.containers[0].readinessProbe",
                )
            )
    return out


def _circuit_breakers(policy: MeshPolicy) -> list[Finding]:
    """Istio's generated clusters allow practically unlimited connections and retries; a
    connectionPool that sets them low overflows at a few hundred requests a second (FACTS.md:
    Envoy's own default allows 3 concurrent retries, `upstream_rq_retry_overflow`)."""
    dr = next((o for o in policy.objects if o.get("kind") == "DestinationRule"), None)
    pool: dict[str, Any] = (((dr or {}).get("spec") or {}).get("trafficPolicy") or {}).get("connectionPool") or {}
    http = pool.get("http") or {}
    tcp = pool.get("tcp") or {}
    limits = {
        "http.maxRetries": http.get("maxRetries"),
        "http.http1MaxPendingRequests": http.get("http1MaxPendingRequests"),
        "http.http2MaxRequests": http.get("http2MaxRequests"),
        "tcp.maxConnections": tcp.get("maxConnections"),
    }
    low = {k: v for k, v in limits.items() if isinstance(v, int) and not isinstance(v, bool) and v < 100}
    if not low:
        return []
    said = ", ".join(f"{k} {v}" for k, v in low.items())
    return [
        Finding(
            "circuit breaker overflows",
            f"{said}: during a failover retries and queued requests pile up beyond these and overflow "
            "(503 UO) while healthy hosts wait; the sandbox copies Istio's unlimited defaults, so a drill "
            "there does not show it",
            "raise them to the peak in-flight count (rate x latency x (1 + retries)) or drop them",
            f"{DR}.connectionPool",
        )
    ]
