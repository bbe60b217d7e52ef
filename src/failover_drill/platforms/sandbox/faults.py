"""Sandbox fault mechanics: real signals to real processes, live Envoy runtime changes, replica
gray-failure switches, certificates that really lapse. One handler per fault type (TABLE); each
plan says what revert will need before anything is touched."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from failover_drill.errors import FaultError
from failover_drill.faults.model import (
    Blackout,
    Brownout,
    CertExpiry,
    ControlPlaneLoss,
    LinkLatency,
    LostResponse,
    Mode,
    Partition,
    RegionLoss,
    ZoneLoss,
)
from failover_drill.platforms import processes as procs
from failover_drill.platforms.envoy.faults import (
    BlackoutHandler,
    BrownoutHandler,
    CertExpiryHandler,
    LinkLatencyHandler,
    LostResponseHandler,
    PartitionHandler,
    raise_if,
)
from failover_drill.platforms.envoy.layout import Layout
from failover_drill.platforms.fault_table import FaultTable, Handler, Plan, kill_or_raise


@dataclass
class Fleet:
    """The running sandbox as a fault sees it; on_respawn records a restarted process's new pid."""

    layout: Layout
    specs: dict[str, procs.ProcSpec]
    on_respawn: Callable[[procs.ProcSpec], None]

    def alive(self, name: str) -> bool:
        spec = self.specs.get(name)
        return spec is not None and procs.alive(spec)

    def replica_urls(self, target: str | None) -> list[str]:
        return [f"http://127.0.0.1:{r.port}" for r in self.layout.replicas if target in (r.zone, r.region)]

    def replica_alive(self, url: str) -> bool:
        port = int(url.rsplit(":", 1)[1])
        return any(s.port == port and procs.alive(s) for s in self.specs.values())


# -- process loss: region, zone, control plane ----------------------------------------------------
class ProcessPlan(Plan):
    processes: list[str]
    mode: Mode


class _ProcessLoss(Handler[Any, ProcessPlan]):
    plan_type = ProcessPlan

    def __init__(self, fleet: Fleet) -> None:
        self.fleet = fleet

    def processes(self, fault: Any) -> list[str]:
        raise NotImplementedError

    def plan(self, fault: Any) -> ProcessPlan:
        names = self.processes(fault)
        if not names:
            raise FaultError(f"{fault.label()}: no sandbox process matches target {fault.target!r}")
        return ProcessPlan(processes=names, mode=fault.mode)

    def inject(self, fault: Any, plan: ProcessPlan) -> dict[str, Any]:
        specs = [self.fleet.specs[name] for name in plan.processes]
        try:
            if plan.mode == "freeze":
                for spec in specs:
                    procs.signal_proc(spec, signal.SIGSTOP)
            else:
                kill_or_raise([s.pid for s in specs if s.pid is not None and procs.alive(s)], fault)
        except OSError as exc:
            raise FaultError(f"could not inject {fault.label()}: {exc}", hint="check `failover-drill status`") from None
        return plan.model_dump(mode="json")

    def revert(self, fault: Any, plan: ProcessPlan) -> None:
        specs = [self.fleet.specs[n] for n in plan.processes if n in self.fleet.specs]
        restarted: list[procs.ProcSpec] = []
        for spec in specs:
            if procs.alive(spec):
                procs.signal_proc(spec, signal.SIGCONT)
            else:
                procs.spawn(spec, fleet=self.fleet.layout.state_dir)
                self.fleet.on_respawn(spec)
                restarted.append(spec)
        # A restart that dies at once (a port still held, a bad config) must not pass for a revert;
        # nor, as on kwok, may a process of the plan that is not running for any other reason.
        time.sleep(0.3 if restarted else 0)
        errors = []
        for spec in specs:
            if not procs.alive(spec):
                why = f"exited after restart: {procs.log_tail(spec.log, 3)}" if spec in restarted else "is not running"
                errors.append(f"{spec.name} {why}")
        raise_if(errors, fault)


class RegionLossHandler(_ProcessLoss):
    def processes(self, fault: RegionLoss) -> list[str]:
        # The whole region: replicas, its gateway and its control plane.
        return [s.name for s in self.fleet.specs.values() if s.region == fault.target]


class ZoneLossHandler(_ProcessLoss):
    def processes(self, fault: ZoneLoss) -> list[str]:
        t = fault.target
        if t in self.fleet.layout.regions:
            return [s.name for s in self.fleet.specs.values() if s.region == t and s.kind == "replica"]
        return [s.name for s in self.fleet.specs.values() if s.zone == t]


class ControlPlaneLossHandler(_ProcessLoss):
    def processes(self, fault: ControlPlaneLoss) -> list[str]:
        return [f"control-plane-{fault.target}"]


def fault_table(fleet: Fleet) -> FaultTable:
    return FaultTable(
        "the sandbox",
        {
            RegionLoss: RegionLossHandler(fleet),
            ZoneLoss: ZoneLossHandler(fleet),
            ControlPlaneLoss: ControlPlaneLossHandler(fleet),
            LinkLatency: LinkLatencyHandler(fleet),
            Partition: PartitionHandler(fleet),
            Brownout: BrownoutHandler(fleet),
            LostResponse: LostResponseHandler(fleet),
            Blackout: BlackoutHandler(fleet),
            CertExpiry: CertExpiryHandler(fleet),
        },
    )
