"""What the drill's live SLI endpoint serves (measure/live_sli.py), stated once where the manifests
that ask for it are checked: the fields of `/analysis` (Argo Rollouts' web provider reads one with
a jsonPath) and the metric families of `/metrics` with their labels (the prometheus provider
queries them). tests/test_live_sli.py holds the served endpoint to this, so the two cannot drift."""

from __future__ import annotations

ANALYSIS_FIELDS: frozenset[str] = frozenset(
    {
        "region",
        "version",
        "window_s",
        "requests",
        "errors",
        "success_ratio",
        "burn_rate",
        "p99_ms",
        "slo",
        "page_alert",
        "failover",
    }
)

_PER_SERIES = frozenset({"region", "version", "window"})
METRICS: dict[str, frozenset[str]] = {
    "failover_drill_success_ratio": _PER_SERIES,
    "failover_drill_burn_rate": _PER_SERIES,
    "failover_drill_latency_p99_seconds": _PER_SERIES,
    "failover_drill_requests": _PER_SERIES,
    "failover_drill_phase": frozenset({"phase"}),
    "failover_drill_faults_active": frozenset(),
    "failover_drill_page_alert": frozenset({"region"}),
}

# The windows /metrics exports each per-series family for (the SRE workbook's alerting windows).
METRIC_WINDOWS: tuple[str, ...] = ("1m", "5m", "30m", "1h", "6h")
