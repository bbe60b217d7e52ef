"""Chaos Toolkit actions: the fleet, the traffic, and every fault of the catalogue.

No `from __future__ import annotations` here: `chaos discover` reads the annotations as objects."""

from typing import Any, Literal

from chaoslib.exceptions import ActivityFailed
from pydantic import ValidationError

from failover_drill import rollouts
from failover_drill.adapters.chaostoolkit import sessions
from failover_drill.config.scenario import RELEASES
from failover_drill.errors import ConfigError, DrillError, echo
from failover_drill.faults.model import FAULT_KINDS, Fault, explain, fault_from_args

__all__ = [
    "abort_rollout",
    "fleet_down",
    "fleet_up",
    "freeze_deploys",
    "inject_fault",
    "promote_rollout",
    "retry_rollout",
    "revert_fault",
    "start_release",
    "start_traffic",
    "stop_traffic",
    "thaw_deploys",
]


def _fail(exc: Exception) -> ActivityFailed:
    return ActivityFailed(str(exc))


def fleet_up(configuration: dict[str, Any] | None = None) -> str:
    """Bring the fleet up (sandbox by default) if it is not up yet."""
    s = sessions.get(configuration)
    assert s is not None
    try:
        s.up()
    except DrillError as exc:
        raise _fail(exc) from None
    return s.platform.entrypoint()


def fleet_down(configuration: dict[str, Any] | None = None) -> bool:
    """Stop traffic, revert every fault, and take the fleet down."""
    s = sessions.drop(configuration)
    if s is not None:
        s.keep_up = False
        s.owned = True
        s.stop()
    else:
        sessions.open_platform(configuration).down()
    return True


def start_traffic(configuration: dict[str, Any] | None = None) -> str:
    """Start open-loop payment traffic at the multi-cluster service; returns the run directory."""
    s = sessions.get(configuration)
    assert s is not None
    try:
        return str(s.start())
    except DrillError as exc:
        raise _fail(exc) from None


def stop_traffic(configuration: dict[str, Any] | None = None) -> dict[str, Any]:
    """Stop traffic, revert faults, write the drill's reports; returns the scorecard."""
    s = sessions.drop(configuration)
    if s is None:
        return {}
    result = s.stop() or {}
    return summary(result)


def inject_fault(
    kind: str,
    target: str | None = None,
    source: str | None = None,
    mode: str | None = None,
    delay_ms: float | None = None,
    jitter_pct: float | None = None,
    fail_pct: float | None = None,
    cert: str | None = None,
    ttl_s: float | None = None,
    configuration: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Inject one fault (region-loss, zone-loss, link-latency, partition, brownout,
    control-plane-loss, cert-expiry, blackout); it is in the ledger before it is injected."""
    try:
        spec = fault_from_arguments(
            {
                "kind": kind,
                "target": target,
                "source": source,
                "mode": mode,
                "delay_ms": delay_ms,
                "jitter_pct": jitter_pct,
                "fail_pct": fail_pct,
                "cert": cert,
                "ttl_s": ttl_s,
            }
        )
    except ConfigError as exc:
        raise ActivityFailed(f"inject_fault {exc.reason}") from None
    s = sessions.get(configuration)
    assert s is not None
    try:
        return s.inject(spec)
    except DrillError as exc:
        raise _fail(exc) from None


def fault_from_arguments(arguments: dict[str, Any]) -> Fault:
    """inject_fault's arguments as the fault it injects, or a ConfigError naming the argument, its
    value and what is allowed. The control checks every experiment's inject_fault arguments with
    this same function before the run starts (validation.py), so both judge alike."""
    args = {k: v for k, v in arguments.items() if k != "kind"}
    try:
        return fault_from_args(str(arguments.get("kind")), **args)
    except ValidationError as exc:
        where, msg = explain(exc.errors()[0])
        loc = [str(p) for p in where]
        # A whole-model check (unknown kind, brownout with nothing to do) names no field.
        name = loc[0] if loc else ("kind" if arguments.get("kind") not in FAULT_KINDS else None)
        if name is None:
            raise ConfigError(f"arguments: {msg}", field="arguments") from None
        raise ConfigError(
            f"argument {name!r} is {echo(arguments.get(name))}: {msg}", field=f"arguments.{'.'.join(loc) or name}"
        ) from None


def revert_fault(kind: str | None = None, configuration: dict[str, Any] | None = None) -> list[str]:
    """Revert the session's faults (all, or those of one kind). Safe to call twice."""
    s = sessions.get(configuration, create=False)
    if s is None:
        from failover_drill.recovery import revert_open_faults

        return revert_open_faults(sessions.state_dir(configuration)).reverted
    try:
        return s.revert(kind)
    except DrillError as exc:
        raise _fail(exc) from None


def summary(result: dict[str, Any]) -> dict[str, Any]:
    if not result:
        return {}
    return {
        "run_dir": result.get("run_id"),
        "scenario": result.get("scenario"),
        # Where it ran: a journal read later must say which fleet its figures describe.
        "platform": result.get("platform"),
        "mesh": result.get("mesh"),
        "failover": result["failover"],
        "error_budget": {
            k: result["error_budget"][k]
            for k in ("slo", "bad_requests", "budget_consumed_pct", "peak_burn_rate", "page_alert_fired")
        },
        "traffic": {k: result["traffic"][k] for k in ("requests", "ok", "failed", "rate_rps")},
        "latency_ms": result["latency_ms"],
        "served_by": result["served_by"],
        "payments": {k: result["payments"][k] for k in ("acknowledged", "lost", "duplicated")},
        "verdict": result["verdict"]["passed"],
    }


# -- Argo Rollouts (kwok, kind): the kubectl plugin's actions, and the deploy freeze --------------


def _rollout(
    action: str, name: str, namespace: str, region: str | None, configuration: dict[str, Any] | None
) -> list[str]:
    try:
        return rollouts.act(sessions.open_platform(configuration), action, name, namespace, region)
    except DrillError as exc:
        raise _fail(exc) from None


def abort_rollout(
    name: str = "payment-gateway",
    namespace: str = "payments",
    region: str | None = None,
    configuration: dict[str, Any] | None = None,
) -> list[str]:
    """Abort the Rollout in every region that has it (or only region's): back to the stable version."""
    return _rollout("abort", name, namespace, region, configuration)


def retry_rollout(
    name: str = "payment-gateway",
    namespace: str = "payments",
    region: str | None = None,
    configuration: dict[str, Any] | None = None,
) -> list[str]:
    """Retry an aborted Rollout."""
    return _rollout("retry", name, namespace, region, configuration)


def promote_rollout(
    name: str = "payment-gateway",
    namespace: str = "payments",
    region: str | None = None,
    full: bool = False,
    configuration: dict[str, Any] | None = None,
) -> list[str]:
    """Promote the Rollout past its current pause, or fully (full: skip the remaining steps)."""
    return _rollout("promote-full" if full else "promote", name, namespace, region, configuration)


def start_release(
    scenario: Literal["bad-canary", "good-canary"] = "bad-canary", configuration: dict[str, Any] | None = None
) -> str:
    """Roll out a new payment-gateway version through every region's Argo Rollouts controller (kwok,
    kind), judged by the session's live SLIs: bad-canary fails 60% of its payments, good-canary is
    promoted once analysis passes. Followed in the background; the stable version is put back when
    the experiment ends. The drill_verdict probe then checks its outcome (release_outcome says it)."""
    s = sessions.get(configuration)
    assert s is not None
    try:
        return s.release(RELEASES[scenario])
    except DrillError as exc:
        raise _fail(exc) from None


def freeze_deploys(configuration: dict[str, Any] | None = None) -> list[str]:
    """The deploy freeze: pause every Rollout in flight in every region (thaw_deploys resumes them)."""
    try:
        paused = rollouts.freeze(sessions.open_platform(configuration), sessions.state_dir(configuration))
        return rollouts.freeze_lines(paused)
    except DrillError as exc:
        raise _fail(exc) from None


def thaw_deploys(configuration: dict[str, Any] | None = None) -> list[str]:
    """Lift the deploy freeze: resume exactly the Rollouts freeze_deploys paused."""
    try:
        return rollouts.thaw(sessions.open_platform(configuration), sessions.state_dir(configuration))
    except DrillError as exc:
        raise _fail(exc) from None
