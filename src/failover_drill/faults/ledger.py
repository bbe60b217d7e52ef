"""The fault ledger: every fault is written down, with how to revert it and a lease, before it is
injected. Whoever finds an entry not marked reverted (the drill's finally, the watchdog, or
`failover-drill recover`) can undo it."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from failover_drill.errors import StateDamaged
from failover_drill.faults.model import Fault, dump_fault, parse_recorded_fault


def ledger_path(state_dir: Path) -> Path:
    return state_dir / "faults.json"


@dataclass
class Entry:
    id: str
    platform: str
    fault: dict[str, Any]
    revert: dict[str, Any]
    state: str  # injecting | active | reverted
    owner_pid: int
    created_wall: float
    lease_expires_wall: float
    reverted_wall: float | None = None
    error: str | None = None

    def spec(self) -> Fault:
        return parse_recorded_fault(self.fault)


class FaultLedger:
    def __init__(self, path: Path) -> None:
        self.path = path
        # Where a torn ledger was moved: `recover` says so, since its faults are then unknown.
        self.set_aside: list[Path] = []

    @contextlib.contextmanager
    def _locked(self) -> Iterator[list[Entry]]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.with_suffix(".lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                entries = self._read()
                yield entries
                tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
                tmp.write_text(json.dumps([asdict(e) for e in entries], indent=1))
                with tmp.open("rb") as fh:
                    os.fsync(fh.fileno())
                os.replace(tmp, self.path)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _load(self) -> list[Entry]:
        """The entries on disk, [] for no ledger; ValueError or TypeError for a torn one."""
        try:
            raw = json.loads(self.path.read_bytes())
        except FileNotFoundError:
            return []
        return [Entry(**e) for e in raw]

    def _read(self) -> list[Entry]:
        try:
            return self._load()
        except (ValueError, TypeError):
            # A torn ledger (garbage, or JSON of the wrong shape) must not block recovery: keep it
            # aside and start a new one; `recover` checks the fleet itself for what it held.
            aside = self.path.with_suffix(f".corrupt-{int(time.time())}")
            self.path.rename(aside)
            self.set_aside.append(aside)
            return []

    def record(self, platform: str, fault: Fault, revert: dict[str, Any], lease_s: float, owner_pid: int) -> str:
        now = time.time()
        entry = Entry(
            id=uuid.uuid4().hex[:12],
            platform=platform,
            fault=dump_fault(fault),
            revert=revert,
            state="injecting",
            owner_pid=owner_pid,
            created_wall=now,
            lease_expires_wall=now + lease_s,
        )
        with self._locked() as entries:
            entries.append(entry)
        return entry.id

    def update(self, entry_id: str, **changes: Any) -> None:
        with self._locked() as entries:
            for e in entries:
                if e.id == entry_id:
                    for k, v in changes.items():
                        setattr(e, k, v)

    def open_entries(self) -> list[Entry]:
        with self._locked() as entries:
            return [e for e in entries if e.state != "reverted"]

    def snapshot(self) -> list[Entry]:
        """Every entry, reverted ones too, for readers that change nothing (`status`): read without
        the lock (writers replace the file whole, so a read sees one version or the other) and
        without writing; a missing ledger holds nothing. A torn ledger is not set aside here, so
        `recover` still finds it and says so: StateDamaged instead."""
        try:
            return self._load()
        except (ValueError, TypeError):
            raise StateDamaged(
                f"the fault ledger {self.path} is unreadable: which faults are in force is unknown",
                hint="run `failover-drill recover`: it sets the ledger aside and checks the fleet itself",
            ) from None

    def prune(self, keep: int = 200) -> None:
        with self._locked() as entries:
            if len(entries) > keep:
                closed = [e for e in entries if e.state == "reverted"]
                drop = {e.id for e in closed[: len(entries) - keep]}
                entries[:] = [e for e in entries if e.id not in drop]
