"""The raw sample journal: JSON lines appended while the drill runs, flushed often, so a drill
killed with SIGKILL still leaves a journal that `failover-drill report` can read."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from failover_drill import obs

log = obs.get(__name__)
FLUSH_EVERY_S = 0.2


class JournalWriter:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._fh: IO[str] = path.open("a", encoding="utf-8")
        self._pending: list[str] = []
        # Traffic may run in another thread than the one injecting faults (Chaos Toolkit sessions).
        self._lock = threading.Lock()

    def write(self, record: dict[str, Any]) -> None:
        line = json.dumps(record, separators=(",", ":"))
        with self._lock:
            self._pending.append(line)

    def write_now(self, record: dict[str, Any]) -> None:
        """Events that matter (fault injected/reverted) go to the OS at once: a killed process
        cannot lose them. No fsync here: it would stall the event loop that keeps the schedule."""
        self.write(record)
        self.flush()

    def flush(self, sync: bool = False) -> None:
        with self._lock:
            if self._fh.closed:
                return
            if self._pending:
                self._fh.write("\n".join(self._pending) + "\n")
                self._pending.clear()
            self._fh.flush()
        if sync:
            os.fsync(self._fh.fileno())

    def close(self) -> None:
        self.flush(sync=True)
        with self._lock:
            self._fh.close()


@dataclass
class JournalProblems:
    skipped: list[int] = field(default_factory=list)


def read(path: Path, problems: JournalProblems | None = None) -> Iterator[dict[str, Any]]:
    """Every readable record; a corrupt or truncated line is skipped with a warning naming it."""
    with path.open("r", encoding="utf-8", errors="replace") as fh:
        for n, raw in enumerate(fh, start=1):
            line = raw.strip()
            if not line:
                continue
            try:
                rec = json.loads(line)
                if not isinstance(rec, dict) or "t" not in rec:
                    raise ValueError("not a journal record")
            except ValueError:
                log.warning("journal line skipped", file=str(path), line=n)
                if problems is not None:
                    problems.skipped.append(n)
                continue
            yield rec
