"""runs/gamedays/<id>/day.jsonl: what happened on the day, one JSON line per step, written as it
happens (a crashed day resumes from it) and read back whole for the after-action report."""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from failover_drill.errors import ConfigError

DrillStatus = Literal["started", "finished", "skipped", "aborted", "error"]
# A drill with one of these is behind the day: a resumed day goes on after it.
DONE: frozenset[str] = frozenset({"finished", "skipped", "aborted", "error"})


@dataclass(frozen=True)
class DayStart:
    title: str
    file: str
    sha256: str
    drills: list[str]
    wall: float
    # role -> who, as the file names them: the report says who was in the room.
    roles: dict[str, str] = field(default_factory=dict)
    # Per drill, its checkpoints as [name, prompt]: the report names the ones never asked (a day
    # that stopped between a drill and its questions), and a resumed day asks them first.
    checkpoints: list[list[list[str]]] = field(default_factory=list)
    t: str = "start"


@dataclass(frozen=True)
class DrillStep:
    i: int
    name: str
    status: DrillStatus
    wall: float
    run_dir: str | None = None
    exit_code: int | None = None
    detail: str | None = None
    t: str = "drill"


@dataclass(frozen=True)
class Answer:
    i: int
    checkpoint: str
    prompt: str
    kind: str
    answer: str
    wall: float
    # Seconds after the drill's first fault when the answer is a time; None otherwise.
    at_s: float | None = None
    defaulted: bool = False
    # A yes-no checkpoint's expected answer: another one is a follow-up item.
    expect: str | None = None
    t: str = "answer"


@dataclass(frozen=True)
class DayEnd:
    status: Literal["completed", "ended", "interrupted"]
    wall: float
    t: str = "end"


@dataclass
class Day:
    """The journal folded: the latest record per drill, every answer, the last end."""

    start: DayStart
    steps: dict[int, DrillStep] = field(default_factory=dict)
    answers: list[Answer] = field(default_factory=list)
    ends: list[DayEnd] = field(default_factory=list)

    def unasked(self, i: int) -> list[tuple[str, str]]:
        """(name, prompt) of drill i's checkpoints with no answer on record, for a finished drill."""
        step = self.steps.get(i)
        if step is None or step.status != "finished" or i >= len(self.start.checkpoints):
            return []
        answered = {a.checkpoint for a in self.answers if a.i == i}
        return [(name, prompt) for name, prompt in self.start.checkpoints[i] if name not in answered]

    def next_drill(self) -> int:
        """The first drill not behind the day (one that was started and never ended runs again)."""
        i = 0
        while i in self.steps and self.steps[i].status in DONE:
            i += 1
        return i


class DayJournal:
    def __init__(self, path: Path) -> None:
        self.path = path

    def write(self, record: DayStart | DrillStep | Answer | DayEnd) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(asdict(record), separators=(",", ":")) + "\n")
            fh.flush()
            # A game day's record is a few lines an hour: each is made durable at once.
            os.fsync(fh.fileno())

    def read(self) -> Day:
        source = str(self.path)
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ConfigError(
                "no game-day journal here", source=source, hint="name a folder under runs/gamedays/"
            ) from None
        day: Day | None = None
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                rec: dict[str, Any] = json.loads(line)
                kind = rec.pop("t")
                if kind == "start":
                    day = Day(DayStart(**rec))
                elif day is None:
                    raise ValueError("the journal does not start with the day's start record")
                elif kind == "drill":
                    step = DrillStep(**rec)
                    day.steps[step.i] = step
                elif kind == "answer":
                    day.answers.append(Answer(**rec))
                elif kind == "end":
                    day.ends.append(DayEnd(**rec))
            except (ValueError, TypeError, KeyError) as exc:
                if n == len(text.splitlines()) and not text.endswith("\n"):
                    break  # a line torn by a crash mid-write: everything before it stands
                raise ConfigError(f"unreadable record: {exc}", source=source, line=n) from None
        if day is None:
            raise ConfigError("empty game-day journal", source=source, hint="start the game day again without --resume")
        return day


def now() -> float:
    return time.time()
