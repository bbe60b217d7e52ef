"""The drill session a `chaos run` is driving.

Chaos Toolkit calls plain module functions, one after the other, in one process; the session
(traffic thread, fault ledger, journal) has to outlive each call, so it is kept here, keyed by
the state directory the experiment's configuration names. This is the one module-level registry
in the project, and only the Chaos Toolkit adapter uses it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from chaoslib.exceptions import ActivityFailed

from failover_drill import obs
from failover_drill.config.scenario import build_scenario
from failover_drill.config.topology import load_topology
from failover_drill.errors import DrillError
from failover_drill.platforms.base import Platform
from failover_drill.platforms.registry import check_platform
from failover_drill.platforms.registry import open_platform as _open_platform
from failover_drill.session import Session

log = obs.get(__name__)
_SESSIONS: dict[Path, Session] = {}


def _cfg(configuration: dict[str, Any] | None, key: str, env: str, default: Any) -> Any:
    value = (configuration or {}).get(key)
    if value in (None, ""):
        value = os.environ.get(env, default)
    return value


def state_dir(configuration: dict[str, Any] | None) -> Path:
    return Path(
        str(_cfg(configuration, "failover_drill_state_dir", "FAILOVER_DRILL_STATE", ".failover-drill"))
    ).resolve()


def platform_name(configuration: dict[str, Any] | None) -> str:
    return str(_cfg(configuration, "failover_drill_platform", "FAILOVER_DRILL_PLATFORM", "sandbox"))


def open_platform(configuration: dict[str, Any] | None) -> Platform:
    try:
        return _open_platform(platform_name(configuration), state_dir(configuration))
    except DrillError as exc:
        raise ActivityFailed(str(exc)) from None


def get(configuration: dict[str, Any] | None, *, create: bool = True) -> Session | None:
    key = state_dir(configuration)
    if key in _SESSIONS or not create:
        return _SESSIONS.get(key)
    platform = platform_name(configuration)
    try:
        check_platform(platform, field="failover_drill_platform")
        topo_path = _cfg(configuration, "failover_drill_topology", "FAILOVER_DRILL_TOPOLOGY", "")
        mesh = _cfg(configuration, "failover_drill_mesh", "FAILOVER_DRILL_MESH", "") or None
        topology = load_topology(Path(topo_path) if topo_path else None, mesh=mesh, mesh_from="failover_drill_mesh")
        scenario = build_scenario(
            None,
            region=str(_cfg(configuration, "failover_drill_region", "FAILOVER_DRILL_REGION", "us-east1")),
            rate=float(_cfg(configuration, "failover_drill_rate", "FAILOVER_DRILL_RATE", 200)),
        )
        topology.region(scenario.region)
        # Not the default scenario's name (region-loss-...): a session injects what its caller asks.
        scenario = scenario.model_copy(update={"name": session_name([], scenario.region)})
    except DrillError as exc:
        raise ActivityFailed(str(exc)) from None
    runs = Path(str(_cfg(configuration, "failover_drill_runs_dir", "FAILOVER_DRILL_RUNS", "runs")))
    session = Session(
        scenario, topology, state_dir=key, runs_dir=runs, platform=_open_platform(platform, key, topology)
    )
    _SESSIONS[key] = session
    return session


def session_name(kinds: list[str], region: str) -> str:
    """`zone-loss-us-east1` for a session that injects zone loss; `session-us-east1` before it is
    known what a session will inject."""
    return "-".join([*kinds, region]) if kinds else f"session-{region}"


def drop(configuration: dict[str, Any] | None) -> Session | None:
    return _SESSIONS.pop(state_dir(configuration), None)


def all_sessions() -> list[Session]:
    return list(_SESSIONS.values())


def clear() -> None:
    """Forget every session, stopping each first: a session left running would keep its traffic,
    its faults and the fleet's ownership lock, and every later drill on that fleet would be refused."""
    for session in list(_SESSIONS.values()):
        try:
            session.stop()
        except DrillError as exc:
            log.error("could not stop a Chaos Toolkit session", error=str(exc))
    _SESSIONS.clear()
