"""The one path every fault takes, for drills and step-by-step sessions alike.

Inject: the platform's plan goes into the fault ledger (with a lease) before anything changes, so
a crash mid-inject is still revertible; the inject is timed inside the calling thread around the
platform call itself; an error is written to the ledger entry; the journal records when the fault
took effect. Revert: the plan is read back from the ledger, the entry closed, the journal told.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from failover_drill.clock import Clock
from failover_drill.errors import DrillError, FaultError
from failover_drill.faults.ledger import FaultLedger
from failover_drill.faults.model import Fault, dump_fault
from failover_drill.platforms.base import Platform
from failover_drill.report import journal as journal_mod
from failover_drill.report import records
from failover_drill.traffic import gc_quiet


@dataclass(frozen=True)
class Injected:
    entry: str
    fault: Fault
    at_s: float  # on the drill's axis: the midpoint of the platform call
    details: dict[str, Any]


class FaultRunner:
    def __init__(
        self,
        platform: Platform,
        ledger: FaultLedger,
        clock: Clock,
        origin: Callable[[], float],
        journal: journal_mod.JournalWriter,
        *,
        lease_s: float,
        owner_pid: int,
    ) -> None:
        self.platform = platform
        self.ledger = ledger
        self.clock = clock
        self.origin = origin
        self.journal = journal
        self.lease_s = lease_s
        self.owner_pid = owner_pid

    def _timed(self, fn: Callable[..., Any], *args: Any) -> tuple[float, float, Any]:
        """Timestamps taken around the call itself (a hop into a thread pool can take tens of ms on
        a busy machine, which must not blur when a fault took effect), with no collector pause inside."""
        with gc_quiet.paused():
            before = self.clock.now()
            out = fn(*args)
            return before - self.origin(), self.clock.now() - self.origin(), out

    def inject(self, fault: Fault) -> Injected:
        plan = self.platform.plan_fault(fault)
        entry = self.ledger.record(self.platform.name, fault, plan, self.lease_s, self.owner_pid)
        try:
            before, after, details = self._timed(self.platform.inject, fault, plan)
        except (DrillError, OSError) as exc:
            self.ledger.update(entry, error=str(exc))
            if isinstance(exc, DrillError):
                raise
            raise FaultError(f"could not inject {fault.label()}: {exc}", hint="check `failover-drill status`") from None
        self.ledger.update(entry, state="active")
        self.journal.write_now(
            records.FaultEvent.timed("fault_injected", before, after, dump_fault(fault), entry, details).to_json()
        )
        return Injected(entry, fault, (before + after) / 2, details)

    def revert(self, fault: Fault, entry_id: str) -> bool:
        """False when the ledger holds no open entry of that id (reverted already by someone else:
        the watchdog, `recover`). The journal ends the fault either way, now, so its phase closes."""
        entry = next((e for e in self.ledger.open_entries() if e.id == entry_id), None)
        if entry is None:
            at = self.clock.now() - self.origin()
            self.journal.write_now(
                records.FaultEvent.timed(
                    "fault_reverted", at, at, dump_fault(fault), entry_id, {"reverted_by": "another process"}
                ).to_json()
            )
            return False
        try:
            before, after, _ = self._timed(self.platform.revert, fault, entry.revert)
        except DrillError as exc:
            self.ledger.update(entry_id, error=str(exc))
            raise FaultError(f"could not revert {fault.label()}: {exc}") from None
        self.ledger.update(entry_id, state="reverted", reverted_wall=time.time())
        self.journal.write_now(
            records.FaultEvent.timed("fault_reverted", before, after, dump_fault(fault), entry_id).to_json()
        )
        return True
