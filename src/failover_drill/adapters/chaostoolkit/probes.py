"""Chaos Toolkit probes: what users see (success ratio, p99), failover times, budget, payments.

No `from __future__ import annotations` here: `chaos discover` reads the annotations as objects."""

import time
from typing import Any

from chaoslib.exceptions import ActivityFailed

from failover_drill import rollouts
from failover_drill.adapters.chaostoolkit import sessions
from failover_drill.errors import DrillError
from failover_drill.session import Session

__all__ = [
    "drill_verdict",
    "error_budget_consumed_pct",
    "failover_time",
    "fleet_healthy",
    "p99_latency_ms",
    "payments_duplicated",
    "payments_lost",
    "release_outcome",
    "rollout_phase",
    "success_ratio",
    "time_to_detect",
]


def _session(configuration: dict[str, Any] | None) -> Session:
    s = sessions.get(configuration, create=False)
    if s is None or s.jr is None:
        raise ActivityFailed(
            "no failover-drill traffic is running: add the failover-drill control "
            "or a start_traffic action before this probe"
        )
    return s


def _window(configuration: dict[str, Any] | None, window_s: float) -> dict[str, Any]:
    s = _session(configuration)
    t = s.scenario.traffic
    # Wait until a whole window of finished requests exists (right after start there is none).
    needed = window_s + t.timeout_s * t.retry.attempts + 0.5
    while s.now() < needed:
        time.sleep(0.2)
    return s.window(window_s)


def success_ratio(window_s: float = 3.0, configuration: dict[str, Any] | None = None) -> float:
    """Share of payment requests that succeeded over the last window (as users saw them)."""
    w = _window(configuration, window_s)
    return float(w["success_ratio"] or 0.0)


def p99_latency_ms(window_s: float = 3.0, configuration: dict[str, Any] | None = None) -> float:
    """p99 latency of the successful requests of the last window, from each one's scheduled send
    time (infinite when none succeeded: no request was fast enough)."""
    w = _window(configuration, window_s)
    return float(w["p99_ms"] if w["p99_ms"] is not None else float("inf"))


def failover_time(configuration: dict[str, Any] | None = None) -> float | None:
    """TTR of the drill so far: seconds from the fault until the success ratio held the SLO."""
    return _session(configuration).result()["failover"]["ttr_s"]  # type: ignore[no-any-return]


def time_to_detect(configuration: dict[str, Any] | None = None) -> float | None:
    """Seconds from the fault to the first failure a user saw (None: nobody saw one)."""
    return _session(configuration).result()["failover"]["ttd_s"]  # type: ignore[no-any-return]


def error_budget_consumed_pct(configuration: dict[str, Any] | None = None) -> float:
    """Percent of the period's error budget this drill has burned so far."""
    return float(_session(configuration).result()["error_budget"]["budget_consumed_pct"])


def payments_lost(configuration: dict[str, Any] | None = None) -> int:
    """Acknowledged payments missing from every region's ledger (reconciled now)."""
    return int(_session(configuration).payments_now().lost)


def payments_duplicated(configuration: dict[str, Any] | None = None) -> int:
    """Payments charged in more than one region (reconciled now)."""
    return int(_session(configuration).payments_now().duplicated)


def drill_verdict(configuration: dict[str, Any] | None = None) -> str:
    """The drill's verdict so far against the scenario's limits (failover time, failback, error
    budget, p99): 'passed', 'failed: <reasons>' or 'inconclusive: <why>' (the load generator fell
    behind: the machine, not the mesh). Before any fault: 'passed: no fault injected yet'."""
    return _session(configuration).verdict_now()


def release_outcome(configuration: dict[str, Any] | None = None) -> str:
    """What the controllers did with the session's release: 'aborted' or 'healthy' (fully out) when
    every region's is that, 'in flight', each region's when they differ, or 'no release'."""
    return _session(configuration).release_outcome()


def fleet_healthy(configuration: dict[str, Any] | None = None) -> bool:
    """True when every process of the fleet is running (none killed or frozen)."""
    s = sessions.get(configuration)
    assert s is not None
    return s.platform.status().healthy


def rollout_phase(
    name: str = "payment-gateway",
    namespace: str = "payments",
    region: str | None = None,
    configuration: dict[str, Any] | None = None,
) -> dict[str, str]:
    """region -> the Rollout's phase as its controller set it (Healthy, Progressing, Paused,
    Degraded; "aborted" when aborted), read from each region's API server."""
    try:
        found = rollouts.status(sessions.open_platform(configuration), region, namespace)
    except DrillError as exc:
        raise ActivityFailed(str(exc)) from None
    return {r.region: "aborted" if r.state.aborted else str(r.state.phase) for r in found if r.state.name == name}
