"""The shape of the sandbox's fleet.json, checked when it is read (platforms/state_file.py): every
key the platform indexes must be there with the right type, so a damaged file is one clear error."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from failover_drill.platforms.envoy.layout import Layout
from failover_drill.platforms.processes import ProcSpec


class SandboxState(BaseModel):
    # Other keys (envoy version, start time, what a later version adds) are kept as they are.
    model_config = ConfigDict(extra="allow")

    mesh: str
    owner_pid: int | None = None
    # Dataclasses: pydantic checks each of their fields, nested gateways and replicas included.
    layout: Layout
    processes: list[ProcSpec]
