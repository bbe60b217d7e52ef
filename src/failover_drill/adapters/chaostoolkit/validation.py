"""Argument values of every failover-drill activity in an experiment, checked before it starts.

chaoslib checks argument names, not values: with `mode: frezee` the inject action alone failed,
the hypothesis still held, and the run ended "completed, deviated false" having injected nothing
(issue 16, point 5). The control runs these checks in its before-experiment hook and interrupts
the run, naming the activity, the argument and what is allowed, before traffic or any fault.
"""

from __future__ import annotations

import importlib
import inspect
import typing
from collections.abc import Callable, Iterator
from typing import Any

from chaoslib import substitute
from pydantic import TypeAdapter, ValidationError

from failover_drill.adapters.chaostoolkit.actions import fault_from_arguments
from failover_drill.config.scenario import RELEASES
from failover_drill.config.topology import Topology
from failover_drill.errors import ConfigError, echo
from failover_drill.faults.catalogue import resolve
from failover_drill.faults.model import FAULT_KINDS

PACKAGE = "failover_drill.adapters.chaostoolkit."
# Passed by chaoslib itself, never written in an experiment.
_INJECTED = {"configuration", "secrets"}


def problems(
    experiment: Any, configuration: dict[str, Any] | None, secrets: Any, topology: Topology, region: str
) -> list[str]:
    """One line per bad argument of a failover-drill activity: '<activity>: argument ... allowed'."""
    found: list[str] = []
    for activity in _activities(experiment):
        provider = activity.get("provider")
        if not isinstance(provider, dict) or provider.get("type") != "python":
            continue
        module = provider.get("module")
        if not isinstance(module, str) or not module.startswith(PACKAGE):
            continue
        name = echo(activity.get("name", "?"))
        func = _function(module, provider.get("func"))
        if func is None:
            found.append(f"{name}: {echo(module)} has no activity {echo(provider.get('func'))}")
            continue
        arguments = provider.get("arguments") or {}
        if not isinstance(arguments, dict):
            found.append(f"{name}: arguments must be a mapping, not {echo(arguments)}")
            continue
        # ${name} values come from the configuration or secrets, as chaoslib will fill them in.
        arguments = substitute(arguments, configuration or {}, secrets or {})
        found += [f"{name}: {problem}" for problem in _check(func, arguments, topology, region)]
    return found


def _activities(experiment: Any) -> Iterator[dict[str, Any]]:
    if not isinstance(experiment, dict):
        return
    hypothesis = experiment.get("steady-state-hypothesis")
    groups = [
        hypothesis.get("probes") if isinstance(hypothesis, dict) else None,
        experiment.get("method"),
        experiment.get("rollbacks"),
    ]
    for group in groups:
        if isinstance(group, list):
            # A {"ref": ...} entry has no provider: it names an activity checked where it is defined.
            yield from (a for a in group if isinstance(a, dict))


def _function(module: str, func: Any) -> Callable[..., Any] | None:
    try:
        mod = importlib.import_module(module)
    except ImportError:
        return None
    target = getattr(mod, func, None) if isinstance(func, str) else None
    exported = getattr(mod, "__all__", None)
    if not callable(target) or (exported is not None and func not in exported):
        return None
    return typing.cast(Callable[..., Any], target)


def _check(func: Callable[..., Any], arguments: dict[str, Any], topology: Topology, region: str) -> list[str]:
    params = {n: p for n, p in inspect.signature(func).parameters.items() if n not in _INJECTED}
    out = [f"argument {echo(k)} is not one of {', '.join(params) or 'none'}" for k in arguments if k not in params]
    out += [
        f"argument {n!r} is required"
        for n, p in params.items()
        if p.default is inspect.Parameter.empty and n not in arguments
    ]
    if out:
        return out
    hints = typing.get_type_hints(func)
    for key, value in arguments.items():
        try:
            TypeAdapter(hints.get(key, Any)).validate_python(value)
        except ValidationError as exc:
            out.append(f"argument {key!r} is {echo(value)}: {exc.errors()[0]['msg']}")
    if out:
        return out
    if func.__name__ == "inject_fault":
        # The action's own model, then the topology's names, as Session.inject will check them.
        try:
            resolve(fault_from_arguments(arguments), topology, region)
        except ConfigError as exc:
            # resolve() names its field fault.<argument>: say it as the experiment writes it.
            arg = exc.field.rsplit(".", 1)[-1] if exc.field and exc.field.startswith("fault.") else None
            where = f"argument {arg!r} is {echo(arguments.get(arg))}: " if arg else ""
            hint = f" ({exc.hint})" if exc.hint else ""
            return [f"{where}{exc.reason}{hint}"]
    elif func.__name__ == "revert_fault" and arguments.get("kind") not in (None, *FAULT_KINDS):
        return [f"argument 'kind' is {echo(arguments['kind'])}: choose one of {', '.join(FAULT_KINDS)}"]
    return []


def injected_kinds(experiment: Any, configuration: dict[str, Any] | None, secrets: Any) -> list[str]:
    """The fault kinds the experiment's method injects, in order, each once: what its session (and
    so its run in `failover-drill history`) is named after."""
    method = experiment.get("method") if isinstance(experiment, dict) else None
    kinds: list[str] = []
    for activity in method if isinstance(method, list) else []:
        provider = activity.get("provider") if isinstance(activity, dict) else None
        if not isinstance(provider, dict) or provider.get("module") != PACKAGE + "actions":
            continue
        func = provider.get("func")
        if func not in ("inject_fault", "start_release"):
            continue
        arguments = substitute(provider.get("arguments") or {}, configuration or {}, secrets or {})
        if not isinstance(arguments, dict):
            continue
        if func == "start_release":
            # A release is named after its scenario (bad-canary, good-canary), as `drill --rollout` is.
            kind = arguments.get("scenario", "bad-canary")
            known: tuple[str, ...] = tuple(RELEASES)
        else:
            kind, known = arguments.get("kind"), FAULT_KINDS
        if isinstance(kind, str) and kind in known and kind not in kinds:
            kinds.append(kind)
    return kinds


def releases(experiment: Any) -> bool:
    """Whether the experiment's method starts a release (it then needs a Kubernetes platform)."""
    method = experiment.get("method") if isinstance(experiment, dict) else None
    return any(
        isinstance(a, dict)
        and isinstance(a.get("provider"), dict)
        and a["provider"].get("module") == PACKAGE + "actions"
        and a["provider"].get("func") == "start_release"
        for a in (method if isinstance(method, list) else [])
    )
