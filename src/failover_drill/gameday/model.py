"""A game-day file: the title and roles, the fleet, and an ordered list of drills, each a scenario
(any fault or compound schedule) followed by checkpoints where the facilitator records what the
humans saw. Loaded through config/yamlio.py, so every error names the file, the line and the field,
and the drill it belongs to."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Self

from pydantic import Field, field_validator, model_validator

from failover_drill.config.scenario import Scenario, Strict
from failover_drill.config.topology import MESH_PROFILES
from failover_drill.config.yamlio import Loc, line_of, load_one, validate
from failover_drill.errors import ConfigError
from failover_drill.faults.model import FaultField
from failover_drill.gameday.answers import BadAnswer, check_default
from failover_drill.platforms.registry import PLATFORMS

HINT = "see examples/gameday.yaml for a complete game day"

CheckpointKind = Literal["yes-no", "time", "text"]


class Checkpoint(Strict):
    """A question put to the room once its drill is over (the fault reverted, traffic stopped).

    yes-no: answered y or n; `expect` makes a different answer a follow-up item.
    time: when something happened (the page fired, it was acknowledged), as a clock time HH:MM:SS
      or seconds after the fault ('95', '+95s'): placed on the drill's own time axis.
    text: free notes (which runbook step was used)."""

    name: str = Field(min_length=1, max_length=60, pattern=r"^[a-z0-9][a-z0-9-]*$")
    prompt: str = Field(min_length=1, max_length=300)
    kind: CheckpointKind = "text"
    expect: Literal["yes", "no"] | None = None
    # What --yes answers, and what a prompt left unanswered for timeout_s takes.
    default: str = ""
    timeout_s: float = Field(default=300.0, gt=0, le=86_400)

    @model_validator(mode="after")
    def _coherent(self) -> Self:
        if self.expect is not None and self.kind != "yes-no":
            raise ValueError("expect applies to yes-no checkpoints only")
        try:
            check_default(self.kind, self.default)
        except BadAnswer as exc:
            raise ValueError(f"default {self.default!r}: {exc}") from None
        return self


class GameDayDrill(Scenario):
    """One drill of the day: a scenario (name, region, faults, phases, traffic, slo, limits) and
    the checkpoints asked after it."""

    name: str = Field(min_length=1, max_length=80)
    # Required here (a scenario file defaults to a region loss): a game day says what it drills.
    # `faults: []` with a release (`rollout:`, kwok and kind) drills the release alone.
    faults: list[FaultField] = Field(max_length=20)
    checkpoints: list[Checkpoint] = Field(default_factory=list, max_length=20)

    @field_validator("checkpoints")
    @classmethod
    def _unique(cls, v: list[Checkpoint]) -> list[Checkpoint]:
        seen: set[str] = set()
        for c in v:
            if c.name in seen:
                raise ValueError(f"two checkpoints are named {c.name!r}")
            seen.add(c.name)
        return v

    def scenario(self) -> Scenario:
        data = self.model_dump(mode="json", exclude={"checkpoints"})
        # The drill's name is its scenario's: history groups runs by fault, not by this label.
        data["name"] = slug(self.name)
        return Scenario.model_validate(data)


class GameDay(Strict):
    title: str = Field(min_length=1, max_length=120)
    roles: dict[str, str] = Field(default_factory=dict, description="role -> who (facilitator, on-call, ...)")
    platform: str = "sandbox"
    topology: str | None = None
    mesh: str | None = None
    drills: list[GameDayDrill] = Field(min_length=1, max_length=50)

    @field_validator("platform")
    @classmethod
    def _known_platform(cls, v: str) -> str:
        if v not in PLATFORMS:
            raise ValueError(f"unknown platform {v!r}; one of {', '.join(PLATFORMS)}")
        return v

    @field_validator("mesh")
    @classmethod
    def _known_mesh(cls, v: str | None) -> str | None:
        # Here, not in load_topology: its error would name the drill command's --mesh option.
        if v is not None and v not in MESH_PROFILES:
            raise ValueError(f"unknown mesh profile {v!r}; one of {', '.join(MESH_PROFILES)}")
        return v

    @field_validator("drills")
    @classmethod
    def _unique_names(cls, v: list[GameDayDrill]) -> list[GameDayDrill]:
        seen: set[str] = set()
        for d in v:
            if d.name in seen:
                raise ValueError(f"two drills are named {d.name!r}: the report tells them apart by name")
            seen.add(d.name)
        return v


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:60] or "drill"


@dataclass(frozen=True)
class GameDayFile:
    day: GameDay
    path: Path
    # A resumed day must run the very file it started with.
    sha256: str
    # Where each field sits in the file, for errors found after validation (names the fleet knows).
    lines: dict[Loc, int]

    def line_of(self, loc: Loc) -> int | None:
        return line_of(self.lines, loc)


def load_gameday(path: Path) -> GameDayFile:
    """The validated game day, its file's SHA-256 and line map."""
    data, lines = load_one(path)
    if not isinstance(data, dict):
        raise ConfigError("a game day must be a mapping (title, drills, ...)", source=str(path), line=1, hint=HINT)
    try:
        day = validate(GameDay, data, lines, str(path), hint=HINT)
    except ConfigError as exc:
        raise _named_by_drill(exc, data) from None
    return GameDayFile(day, path, hashlib.sha256(path.read_bytes()).hexdigest(), lines)


def _named_by_drill(exc: ConfigError, data: dict[str, Any]) -> ConfigError:
    """`drills.2.faults.0.kind` is hard to find in a long file: the message names the drill too."""
    m = re.match(r"drills\.(\d+)(\.|$)", exc.field or "")
    drills = data.get("drills")
    if m is None or not isinstance(drills, list) or int(m.group(1)) >= len(drills):
        return exc
    i = int(m.group(1))
    entry = drills[i]
    name = entry.get("name") if isinstance(entry, dict) else None
    label = f"drill {i + 1}" + (f" ({name!r})" if isinstance(name, str) else "")
    return ConfigError(f"{label}: {exc.reason}", source=exc.source, field=exc.field, line=exc.line, hint=exc.hint)
