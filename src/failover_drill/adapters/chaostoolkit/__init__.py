"""Chaos Toolkit extension: actions, probes and a control that run a failover drill inside
`chaos run`. The only place that imports chaoslib."""

from __future__ import annotations

import importlib
import inspect
import types
import typing
from typing import Any

__version__ = "0.1.0"
ACTIONS = "failover_drill.adapters.chaostoolkit.actions"
PROBES = "failover_drill.adapters.chaostoolkit.probes"


def discover(discover_system: bool = True) -> dict[str, Any]:
    """What `chaos discover failover_drill` lists: every action and probe with typed arguments."""
    from chaoslib.discovery.discover import discover_actions, discover_probes, initialize_discovery_result

    discovery: dict[str, Any] = initialize_discovery_result("failover-drill", __version__, "failover-drill")
    for module, found in ((ACTIONS, discover_actions(ACTIONS)), (PROBES, discover_probes(PROBES))):
        for activity in found:
            _name_optional_types(importlib.import_module(module), activity)
        discovery["activities"].extend(found)
    return discovery


def _name_optional_types(module: Any, activity: dict[str, Any]) -> None:
    """chaoslib names only plain types: `str | None` comes out as "object". An optional argument
    is named by the type it takes when given (its default, None, already says it may be left out)."""
    sig = inspect.signature(getattr(module, activity["name"]))
    for arg in activity["arguments"]:
        arg["type"] = _portable(sig.parameters[arg["name"]].annotation, arg.get("type", "object"))
    if sig.return_annotation is not inspect.Signature.empty:
        activity["return_type"] = _portable(sig.return_annotation, activity.get("return_type", "object"))


def _portable(annotation: Any, named: str) -> str:
    from chaoslib.discovery.discover import portable_type_name

    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        given = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(given) != 1:
            return named
        annotation = given[0]
    # dict[str, Any] and list[str] are named by what they are: a mapping, a list.
    return str(portable_type_name(typing.get_origin(annotation) or annotation))
