"""One table per platform from fault type to the handler that injects it there.

A handler computes a typed plan before anything changes (it goes into the fault ledger, so a
crash mid-inject is still revertible), injects from that plan, and reverts from it: the plan read
back from the ledger is parsed with the handler's own plan type, never sniffed by its keys.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from failover_drill.errors import FaultError
from failover_drill.faults.model import Fault
from failover_drill.platforms import processes as procs

F = TypeVar("F")
P = TypeVar("P", bound="Plan")


class Plan(BaseModel):
    """What revert will need, saved before injecting. Inject's details may ride along (what a
    platform returned before plans were typed): they are not the plan's, and are ignored."""

    model_config = ConfigDict(extra="ignore", frozen=True)


class Handler(ABC, Generic[F, P]):
    plan_type: ClassVar[type[Plan]]

    @abstractmethod
    def plan(self, fault: F) -> P: ...

    @abstractmethod
    def inject(self, fault: F, plan: P) -> dict[str, Any]:
        """Returns details for the journal (e.g. when a certificate really expires)."""

    @abstractmethod
    def revert(self, fault: F, plan: P) -> None:
        """Idempotent; a target that is gone already is not an error."""


class FaultTable:
    def __init__(self, platform: str, handlers: Mapping[type[Any], Handler[Any, Any]], elsewhere: str = "") -> None:
        self.platform = platform
        self.handlers = handlers
        self.elsewhere = elsewhere

    def kinds(self) -> list[str]:
        return [str(t.model_fields["kind"].default) for t in self.handlers]

    def handler(self, fault: Fault) -> Handler[Any, Any]:
        h = self.handlers.get(type(fault))
        if h is None:
            raise FaultError(
                f"fault {fault.kind!r} is not available on {self.platform}",
                hint=f"{self.platform} offers {', '.join(self.kinds())}"
                + (f"; {self.elsewhere}" if self.elsewhere else ""),
            )
        return h

    def _parse(self, h: Handler[Any, Any], fault: Fault, plan: Mapping[str, Any]) -> Plan:
        try:
            return h.plan_type.model_validate(plan)
        except ValidationError as exc:
            raise FaultError(
                f"the saved plan of {fault.label()} does not fit {self.platform}'s {h.plan_type.__name__}: "
                f"{exc.errors()[0]['msg']}",
                hint="run `failover-drill recover`; it checks the fleet itself, not only the ledger",
            ) from None

    def plan(self, fault: Fault) -> dict[str, Any]:
        plan: Plan = self.handler(fault).plan(fault)
        return plan.model_dump(mode="json")

    def inject(self, fault: Fault, plan: Mapping[str, Any]) -> dict[str, Any]:
        h = self.handler(fault)
        details: dict[str, Any] = h.inject(fault, self._parse(h, fault, plan))
        return details

    def revert(self, fault: Fault, plan: Mapping[str, Any]) -> None:
        h = self.handler(fault)
        h.revert(fault, self._parse(h, fault, plan))


def kill_or_raise(pids: list[int], fault: Fault, timeout_s: float = 5.0) -> None:
    """A process-loss inject's kill, returning only once every process is dead. A revert right
    behind the kill (a control that interrupts after inject) would otherwise find a dying process
    alive, take it for a frozen one, SIGCONT it and restart nothing, and the process would die a
    moment later with its fault already marked reverted."""
    survivors = procs.kill_and_wait(pids, timeout_s)
    if survivors:
        raise FaultError(
            f"could not inject {fault.label()}: pids {', '.join(map(str, survivors))} still run "
            f"{timeout_s:g} s after SIGKILL (stuck in the kernel)",
            hint="check `failover-drill status`; `failover-drill recover` restarts what did die",
        )
