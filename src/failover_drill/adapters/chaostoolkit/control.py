"""Chaos Toolkit control: traffic for the whole experiment, faults reverted however the run ends
(chaoslib skips rollbacks on interrupt by default), and the drill's scorecard in the journal."""

from __future__ import annotations

from typing import Any

from chaoslib.exceptions import InterruptExecution

from failover_drill import rollouts
from failover_drill.adapters.chaostoolkit import sessions, validation
from failover_drill.adapters.chaostoolkit.actions import summary
from failover_drill.errors import ConfigError, DrillError

__all__ = ["after_experiment_control", "before_experiment_control", "cleanup_control"]


def before_experiment_control(
    context: Any, configuration: dict[str, Any] | None = None, secrets: Any = None, **kwargs: Any
) -> None:
    s = sessions.get(configuration)
    assert s is not None
    # Values first: a misspelt one would otherwise fail only its activity, and a run that injected
    # nothing would end "completed, deviated false".
    bad = validation.problems(context, configuration, secrets, s.topology, s.scenario.region)
    if bad:
        sessions.drop(configuration)
        raise InterruptExecution(
            f"failover-drill: nothing was run, {len(bad)} argument value(s) of this experiment are wrong: "
            + "; ".join(bad)
        )
    if validation.releases(context):
        # A release needs Argo Rollouts: refused on the sandbox before any traffic, not mid-method.
        try:
            rollouts.require_kubernetes(s.platform)
        except ConfigError as exc:
            sessions.drop(configuration)
            raise InterruptExecution(f"failover-drill: nothing was run: {exc}") from None
        except DrillError:
            pass  # a Kubernetes platform that is not up yet: the session brings it up
    # Named after what it injects, so history never compares a zone loss with a region loss.
    kinds = validation.injected_kinds(context, configuration, secrets)
    s.scenario = s.scenario.model_copy(update={"name": sessions.session_name(kinds, s.scenario.region)})
    try:
        s.start()
    except DrillError as exc:
        # A fleet that cannot come up is no experiment: stop before the hypothesis lies.
        raise InterruptExecution(f"failover-drill could not start: {exc}") from None


def after_experiment_control(
    context: Any, state: dict[str, Any], configuration: dict[str, Any] | None = None, secrets: Any = None, **kwargs: Any
) -> None:
    s = sessions.drop(configuration)
    if s is None:
        return
    result = s.stop() or {}
    if isinstance(state, dict):
        state["failover_drill"] = summary(result)


def cleanup_control() -> None:
    """Last line: whatever session is still alive gets its faults reverted and traffic stopped."""
    for s in sessions.all_sessions():
        s.stop()
    sessions.clear()
