"""Who owns a fleet: a drill, a Chaos Toolkit session or a game day holds its state directory for
its whole run, so nobody else injects into it or tears it down underneath.

The hold is an flock on `<state>/owner.lock`: the kernel drops it when the owner dies however it
dies (SIGKILL included), so a crash never leaves a fleet owned by nobody alive; `owner.json`
beside it says who holds it, for the refusal message.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

from failover_drill.errors import PlatformError


class FleetOwnership:
    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.lock_path = state_dir / "owner.lock"
        self.info_path = state_dir / "owner.json"
        self._fh: TextIO | None = None

    def _owner_text(self) -> str:
        try:
            info: dict[str, Any] = json.loads(self.info_path.read_text())
            since = time.strftime("%H:%M:%S", time.localtime(float(info["since_wall"])))
            return f"{info['what']} (pid {int(info['pid'])}, since {since})"
        except (OSError, ValueError, KeyError, TypeError):
            return "another process"

    def acquire(self, what: str) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        fh = self.lock_path.open("a")
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.close()
            raise PlatformError(
                f"the fleet in {self.state_dir} is in use by {self._owner_text()}",
                hint="wait for it to finish, or give this one its own fleet with --state-dir DIR",
            ) from None
        tmp = self.info_path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"what": what, "pid": os.getpid(), "since_wall": time.time()}))
        tmp.replace(self.info_path)
        self._fh = fh

    def release(self) -> None:
        if self._fh is not None:
            self.info_path.unlink(missing_ok=True)
            fcntl.flock(self._fh, fcntl.LOCK_UN)
            self._fh.close()
            self._fh = None

    @contextlib.contextmanager
    def held(self, what: str) -> Iterator[None]:
        self.acquire(what)
        try:
            yield
        finally:
            self.release()

    def refuse_if_owned(self, action: str) -> None:
        """For commands that change a fleet from outside its run (up, down, recover)."""
        if not self.lock_path.exists():
            return
        with self.lock_path.open("a") as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise PlatformError(
                    f"cannot {action}: the fleet in {self.state_dir} is in use by {self._owner_text()}",
                    hint="wait for it to finish (Ctrl-C there reverts its faults), or use another --state-dir",
                ) from None
            fcntl.flock(fh, fcntl.LOCK_UN)
