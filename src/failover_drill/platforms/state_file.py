"""A platform's state: one JSON file written atomically, and a lock that serialises changes to the
fleet (bring-up, fault injection and revert) across processes: drill, watchdog, `recover`."""

from __future__ import annotations

import contextlib
import fcntl
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from failover_drill.errors import PlatformError


class StateFile:
    def __init__(self, state_dir: Path, platform: str) -> None:
        self.state_dir = state_dir
        self.platform = platform
        self.path = state_dir / "fleet.json"

    def load(self) -> dict[str, Any] | None:
        try:
            data: dict[str, Any] = json.loads(self.path.read_text())
        except FileNotFoundError:
            return None
        except ValueError as exc:
            raise PlatformError(
                f"{self.platform} state {self.path} is unreadable ({exc})",
                hint=f"run `failover-drill recover` to stop what it can find, then `failover-drill up --platform "
                f"{self.platform}`",
            ) from None
        return data

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
