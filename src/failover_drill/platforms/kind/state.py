"""The shape of the kind platform's fleet.json, checked when it is read (platforms/state_file.py).
Bring-up writes it in steps (first mesh and topology, then the front door), so later keys are
optional; when present they must be whole."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict
from typing_extensions import TypedDict

# The keys have a dash: the functional form of TypedDict, whose keys pydantic requires.
FrontDoorPorts = TypedDict("FrontDoorPorts", {"frontdoor": int, "frontdoor-admin": int})


class FrontDoorProcess(BaseModel):
    model_config = ConfigDict(extra="allow")

    pid: int | None
    start_ticks: int | None
    log: str
    argv: list[str]
    pod_url: str | None = None


class KindState(BaseModel):
    model_config = ConfigDict(extra="allow")

    mesh: str
    topology_source: str | None = None
    frontdoor_ports: FrontDoorPorts | None = None
    host_port_base: int | None = None
    owner_pid: int | None = None
    frontdoor: FrontDoorProcess | None = None
