"""A platform's state: one JSON file written atomically, and a lock that serialises changes to the
fleet (bring-up, fault injection and revert) across processes: drill, watchdog, `recover`.

The file is checked against the platform's schema when it is read: a damaged file (garbage, `{}`,
`null`, a process without fields) is one StateDamaged error with the way out, never a KeyError
deep inside a platform. The way out does not trust the file: salvage() stops every process that
carries this fleet's mark (processes.spawn puts it on each) and sets the damaged file aside.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from failover_drill.config.yamlio import line_of, load_one
from failover_drill.errors import ECHO_CHARS, ConfigError, StateDamaged
from failover_drill.platforms import processes as procs


def _clip(text: str) -> str:
    return text if len(text) <= ECHO_CHARS else f"{text[:ECHO_CHARS]}… ({len(text)} characters)"


@dataclass
class Salvage:
    stopped: int = 0
    survivors: list[int] = field(default_factory=list)
    aside: Path | None = None

    def describe(self) -> str:
        what = f"stopped {self.stopped} process{'es' if self.stopped != 1 else ''} marked as this fleet's"
        if self.survivors:
            what += f"; still running: pids {', '.join(map(str, self.survivors))}"
        if self.aside is not None:
            what += f"; the damaged state file is set aside as {self.aside.name}"
        return what


class StateFile:
    def __init__(self, state_dir: Path, platform: str, schema: type[BaseModel] | None = None) -> None:
        self.state_dir = state_dir
        self.platform = platform
        self.path = state_dir / "fleet.json"
        self.schema = schema

    @property
    def mark(self) -> str:
        """What every process of this fleet carries in FAILOVER_DRILL_FLEET."""
        return str(self.state_dir.resolve())

    def load(self) -> dict[str, Any] | None:
        """The state, None when no fleet is up; StateDamaged when the file cannot be trusted, or is
        missing while processes of this fleet still run (a new `up` would strand them)."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            if procs.marked(self.mark):
                raise self.damaged("is missing") from None
            return None
        except OSError as exc:
            raise self.damaged(f"cannot be read ({exc.strerror or exc})") from None
        try:
            data = json.loads(raw)
        except UnicodeDecodeError:
            raise self.damaged("is not JSON text (binary garbage)") from None
        except json.JSONDecodeError as exc:
            raise self.damaged(f"is not JSON ({exc.msg})", line=exc.lineno) from None
        if self.schema is None:
            if not isinstance(data, dict):
                raise self.damaged(f"holds {type(data).__name__}, not a mapping") from None
            return data
        try:
            model = self.schema.model_validate(data)
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err["loc"])
            problem = f"{where}: {err['msg']}" if where else f"it holds {_clip(json.dumps(data))}"
            more = len(exc.errors()) - 1
            raise self.damaged(
                f"does not look like {self.platform} state ({problem}{f', and {more} more problems' if more else ''})",
                line=self._line_of(tuple(err["loc"])),
            ) from None
        # Only keys the file had (a platform tells "not written yet" by a key's absence).
        dumped: dict[str, Any] = model.model_dump(exclude_unset=True)
        return dumped

    def _line_of(self, loc: tuple[Any, ...]) -> int | None:
        """Best effort: the line of the offending field (JSON is YAML, whose loader keeps lines)."""
        if not loc:
            return None
        try:
            _, lines = load_one(self.path)
        except ConfigError:
            return None
        return line_of(lines, loc)

    def damaged(self, problem: str, line: int | None = None) -> StateDamaged:
        running = len(procs.marked(self.mark))
        where = f"{self.path}:{line}" if line else str(self.path)
        live = (
            f"{running} process{'es' if running != 1 else ''} of this fleet still running"
            if running
            else "no process of this fleet is running"
        )
        flag = "" if self.platform == "sandbox" else f" --platform {self.platform}"
        return StateDamaged(
            f"{self.platform} state {where} {problem}; {live}",
            hint=f"run `failover-drill down{flag}` (or `failover-drill recover`): it stops every process marked "
            f"FAILOVER_DRILL_FLEET={self.mark} and sets the file aside; then `failover-drill up{flag}`",
        )

    def salvage(self, grace_s: float = 3.0) -> Salvage:
        """The way out of damaged state: stop every process carrying this fleet's mark, then set the
        file aside (kept for a post-mortem, out of the way of the next `up`). Call under locked()."""
        stopped, survivors = procs.stop_marked(self.mark, grace_s)
        out = Salvage(stopped=stopped - len(survivors), survivors=survivors)
        if self.path.exists() or self.path.is_symlink():
            out.aside = self.path.with_name(f"{self.path.name}.damaged-{int(time.time())}")
            self.path.rename(out.aside)
        return out

    def save(self, data: dict[str, Any]) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=1))
        tmp.replace(self.path)

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        with (self.state_dir / "lock").open("w") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)
