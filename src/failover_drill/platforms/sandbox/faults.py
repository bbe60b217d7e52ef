"""Sandbox fault mechanics: real signals to real processes, live Envoy runtime changes, replica
gray-failure switches, certificates that really lapse. One handler per fault type (TABLE); each
plan says what revert will need before anything is touched."""

from __future__ import annotations

import datetime as dt
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from failover_drill.errors import FaultError
from failover_drill.faults.model import (
    FRONT_DOOR,
    Blackout,
    Brownout,
    CertExpiry,
    CertVariant,
    ControlPlaneLoss,
    LinkLatency,
    LostResponse,
    Mode,
    Partition,
    RegionLoss,
    ZoneLoss,
)
from failover_drill.platforms import processes as procs
from failover_drill.platforms.envoy import admin
from failover_drill.platforms.envoy.config import (
    PARTITION_DELAY_MS,
    jitter_key,
    jitter_steps_ms,
    link_key,
    sds_cert,
    write_atomic,
)
from failover_drill.platforms.envoy.layout import Layout
from failover_drill.platforms.fault_table import FaultTable, Handler, Plan
from failover_drill.platforms.pki import MeshCA


@dataclass
class Fleet:
    """The running sandbox as a fault sees it; on_respawn records a restarted process's new pid."""

    layout: Layout
    specs: dict[str, procs.ProcSpec]
    on_respawn: Callable[[procs.ProcSpec], None]

    def port_alive(self, port: int) -> bool:
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
        sig = signal.SIGSTOP if plan.mode == "freeze" else signal.SIGKILL
        try:
            for name in plan.processes:
                spec = self.fleet.specs[name]
                procs.signal_proc(spec, sig)
                if sig == signal.SIGKILL and spec.pid is not None:
                    procs.reap(spec.pid)  # our own child becomes a zombie otherwise
        except OSError as exc:
            raise FaultError(f"could not inject {fault.label()}: {exc}", hint="check `failover-drill status`") from None
        return plan.model_dump(mode="json")

    def revert(self, fault: Any, plan: ProcessPlan) -> None:
        restarted: list[procs.ProcSpec] = []
        for name in plan.processes:
            spec = self.fleet.specs.get(name)
            if spec is None:
                continue
            if procs.alive(spec):
                procs.signal_proc(spec, signal.SIGCONT)
            else:
                procs.spawn(spec, fleet=self.fleet.layout.state_dir)
                self.fleet.on_respawn(spec)
                restarted.append(spec)
        # A restart that dies at once (a port still held, a bad config) must not pass for a revert.
        time.sleep(0.3 if restarted else 0)
        errors = [
            f"{spec.name} exited after restart: {procs.log_tail(spec.log, 3)}"
            for spec in restarted
            if not procs.alive(spec)
        ]
        _raise_if(errors, fault)


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


# -- links: latency and partition, through each gateway's fault-filter runtime keys ---------------
class LinkPlan(Plan):
    # gateway region -> runtime key prefix -> [percent, delay ms]: while the fault is on, and after.
    links: dict[str, dict[str, list[int]]]
    baseline: dict[str, dict[str, list[int]]]


class _LinkHandler(Handler[Any, LinkPlan]):
    plan_type = LinkPlan

    def __init__(self, fleet: Fleet) -> None:
        self.fleet = fleet

    def values(self, fault: Any) -> dict[str, dict[str, tuple[int, int]]]:
        raise NotImplementedError

    def _baseline(self, src: str, dst: str) -> float:
        if src in (FRONT_DOOR, dst):
            return 0.0
        return float(self.fleet.layout.rtt_ms.get(src, {}).get(dst, 0.0))

    def _baseline_value(self, key: str) -> tuple[int, int]:
        """(percent, ms) of a runtime key when no fault is on: the topology's RTT, and no jitter."""
        parts = key.split(".")  # link.<src>.<dst>[.jitterN]
        if len(parts) > 3:
            return (0, 0)
        rtt = self._baseline(parts[1], parts[2])
        return (100 if rtt > 0 else 0, round(rtt))

    def plan(self, fault: Any) -> LinkPlan:
        links = self.values(fault)
        return LinkPlan(
            links={gw: {k: list(v) for k, v in keys.items()} for gw, keys in links.items()},
            baseline={gw: {k: list(self._baseline_value(k)) for k in keys} for gw, keys in links.items()},
        )

    def inject(self, fault: Any, plan: LinkPlan) -> dict[str, Any]:
        try:
            for gw, keys in plan.links.items():
                admin.runtime_modify(self.fleet.layout.gateways[gw].admin_port, _runtime_values(keys))
        except OSError as exc:
            raise FaultError(f"could not inject {fault.label()}: {exc}", hint="check `failover-drill status`") from None
        return plan.model_dump(mode="json")

    def revert(self, fault: Any, plan: LinkPlan) -> None:
        errors = []
        for gw, keys in plan.baseline.items():
            try:
                admin.runtime_modify(self.fleet.layout.gateways[gw].admin_port, _runtime_values(keys))
            except OSError:
                # A gateway that is down lost its admin overrides with it: nothing to revert there.
                if procs.alive(self.fleet.specs[f"gateway-{gw}"]):
                    errors.append(f"gateway-{gw}")
        _raise_if(errors, fault)


class LinkLatencyHandler(_LinkHandler):
    def values(self, fault: LinkLatency) -> dict[str, dict[str, tuple[int, int]]]:
        out: dict[str, dict[str, tuple[int, int]]] = {}
        dst = fault.target
        assert dst is not None
        src = fault.source or "*"
        sources = [*self.fleet.layout.regions, FRONT_DOOR] if src == "*" else [src]
        steps = jitter_steps_ms(fault.delay_ms * fault.jitter_pct / 100) if fault.jitter_pct else []
        for s in sources:
            key = link_key(s, dst)
            # The fixed layer sits at the low end of the spread; the jitter steps add the rest.
            out.setdefault(dst, {})[key] = (
                100,
                max(0, round(self._baseline(s, dst) + fault.delay_ms - sum(steps) / 2)),
            )
            for i, step in enumerate(steps):
                out[dst][jitter_key(key, i)] = (50 if step > 0 else 0, step)
        return out


class PartitionHandler(_LinkHandler):
    def values(self, fault: Partition) -> dict[str, dict[str, tuple[int, int]]]:
        out: dict[str, dict[str, tuple[int, int]]] = {}
        dst, src = fault.target, fault.source or FRONT_DOOR
        assert dst is not None
        if src == FRONT_DOOR:
            # Nothing from the front door gets through: health probes and every client's requests.
            for s in [*self.fleet.layout.regions, FRONT_DOOR]:
                out.setdefault(dst, {})[link_key(s, dst)] = (100, PARTITION_DELAY_MS)
        else:
            # Both directions between two regions: users of one reaching the other, and mesh traffic.
            out.setdefault(dst, {})[link_key(src, dst)] = (100, PARTITION_DELAY_MS)
            out.setdefault(src, {})[link_key(dst, src)] = (100, PARTITION_DELAY_MS)
        return out


# -- gray failure: the replicas' own fault switch --------------------------------------------------
class ReplicaPlan(Plan):
    replica_ports: list[int]


class _ReplicaSwitch(Handler[Any, ReplicaPlan]):
    plan_type = ReplicaPlan

    def __init__(self, fleet: Fleet) -> None:
        self.fleet = fleet

    def body(self, fault: Any) -> dict[str, Any]:
        raise NotImplementedError

    def plan(self, fault: Any) -> ReplicaPlan:
        ports = [r.port for r in self.fleet.layout.replicas if fault.target in (r.zone, r.region)]
        if not ports:
            raise FaultError(f"{fault.label()}: no replica in {fault.target!r}")
        return ReplicaPlan(replica_ports=ports)

    def inject(self, fault: Any, plan: ReplicaPlan) -> dict[str, Any]:
        try:
            for port in plan.replica_ports:
                admin.request(
                    f"http://127.0.0.1:{port}/_drill/faults", method="POST", body=self.body(fault), timeout=1.0
                )
        except OSError as exc:
            raise FaultError(f"could not inject {fault.label()}: {exc}", hint="check `failover-drill status`") from None
        return plan.model_dump(mode="json")

    def revert(self, fault: Any, plan: ReplicaPlan) -> None:
        errors = []
        for port in plan.replica_ports:
            try:
                admin.request(f"http://127.0.0.1:{port}/_drill/faults", method="POST", body={}, timeout=1.0)
            except OSError:
                # A replica that is not answering lost its fault switch or is already down.
                if self.fleet.port_alive(port):
                    errors.append(f"replica port {port}")
        _raise_if(errors, fault)


class BrownoutHandler(_ReplicaSwitch):
    def body(self, fault: Brownout) -> dict[str, Any]:
        return {"fail_pct": fault.fail_pct, "delay_ms": fault.delay_ms}


class LostResponseHandler(_ReplicaSwitch):
    def body(self, fault: LostResponse) -> dict[str, Any]:
        return {"drop_after_commit_pct": fault.fail_pct}


# -- blackout: the front door aborts everything ----------------------------------------------------
class BlackoutPlan(Plan):
    frontdoor_admin: int


class BlackoutHandler(Handler[Blackout, BlackoutPlan]):
    plan_type = BlackoutPlan

    def __init__(self, fleet: Fleet) -> None:
        self.fleet = fleet

    def plan(self, fault: Blackout) -> BlackoutPlan:
        return BlackoutPlan(frontdoor_admin=self.fleet.layout.frontdoor_admin_port)

    def inject(self, fault: Blackout, plan: BlackoutPlan) -> dict[str, Any]:
        try:
            admin.runtime_modify(plan.frontdoor_admin, {"blackout.abort_percent": 100, "blackout.http_status": 503})
        except OSError as exc:
            raise FaultError(f"could not inject {fault.label()}: {exc}", hint="check `failover-drill status`") from None
        return plan.model_dump(mode="json")

    def revert(self, fault: Blackout, plan: BlackoutPlan) -> None:
        try:
            admin.runtime_modify(plan.frontdoor_admin, {"blackout.abort_percent": 0})
        except OSError:
            if procs.alive(self.fleet.specs["frontdoor"]):
                _raise_if(["frontdoor"], fault)


# -- certificate expiry: a real lapsed certificate, delivered over SDS ------------------------------
class CertPlan(Plan):
    cert: CertVariant
    region: str


class CertExpiryHandler(Handler[CertExpiry, CertPlan]):
    plan_type = CertPlan

    def __init__(self, fleet: Fleet) -> None:
        self.fleet = fleet

    def plan(self, fault: CertExpiry) -> CertPlan:
        assert fault.target is not None
        return CertPlan(cert=fault.cert, region=fault.target)

    def inject(self, fault: CertExpiry, plan: CertPlan) -> dict[str, Any]:
        """Make the region's gateway certificate lapse for real; rotation is stopped meanwhile."""
        layout = self.fleet.layout
        ca = MeshCA(layout.pki_dir())
        region = plan.region
        ca.rotation_flag(region).touch()
        if plan.cert == "leaf":
            leaf = ca.issue_leaf(region, expired=True)
            expired_at = leaf.not_after
        elif plan.cert == "intermediate":
            ca.issue_intermediate(region, expired=True)
            leaf = ca.issue_leaf(region, clamp=False)
            expired_at = ca.intermediate_not_after(region)
        else:  # rotation-stopped: a short-lived leaf that nobody renews
            leaf = ca.issue_leaf(region, valid_for=dt.timedelta(seconds=fault.ttl_s))
            expired_at = leaf.not_after
        write_atomic(layout.sds_dir(region) / "cert.json", sds_cert(leaf.cert_pem, leaf.key_pem))
        return {
            **plan.model_dump(mode="json"),
            "expired_at_wall": expired_at.timestamp(),
            "expired_at": expired_at.isoformat(),
        }

    def revert(self, fault: CertExpiry, plan: CertPlan) -> None:
        layout = self.fleet.layout
        ca = MeshCA(layout.pki_dir())
        if plan.cert == "intermediate":
            ca.issue_intermediate(plan.region)
        leaf = ca.issue_leaf(plan.region)
        write_atomic(layout.sds_dir(plan.region) / "cert.json", sds_cert(leaf.cert_pem, leaf.key_pem))
        ca.rotation_flag(plan.region).unlink(missing_ok=True)


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


def _raise_if(errors: list[str], fault: Any) -> None:
    if errors:
        raise FaultError(
            f"could not revert {fault.label()} on {', '.join(errors)}", hint="run `failover-drill recover` to retry"
        )


def _runtime_values(keys: dict[str, list[int]]) -> dict[str, int]:
    values: dict[str, int] = {}
    for key, (pct, ms) in keys.items():
        values[f"{key}.delay_percent"] = pct
        values[f"{key}.delay_ms"] = max(1, ms)
    return values
