"""The journal's records, one type per kind, with their on-disk form (journal.jsonl, one JSON object a
line, told apart by "t"). to_json() writes exactly the keys and order drills have always written, and
from_json() reads journals written before these types existed (keys added later are optional).

    t="meta"      MetaRecord           the first line: what ran, where, the planned phases
    t="ev"        PhaseEvent, EndEvent, FaultEvent (fault_injected / fault_reverted)
    t="pe"        PlatformEventRecord  what the mesh or load balancer itself saw
    t="payments"  PaymentsRecord       the payment reconciliation
    t="gen"       GenRecord            the traffic generators' counters, merged
    t="s"         Sample (traffic/samples.py): one per request, written on the hot path with short
                  keys ("k" is the request's idempotency key)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from failover_drill.measure.payments import Reconciliation
from failover_drill.traffic.generator import GeneratorStats
from failover_drill.traffic.samples import Sample

__all__ = [
    "EndEvent",
    "Event",
    "FaultEvent",
    "GenRecord",
    "MetaRecord",
    "OtherEvent",
    "PaymentsRecord",
    "PhaseEvent",
    "PlannedPhase",
    "PlatformEventRecord",
    "Sample",
    "event_from_json",
]


@dataclass(frozen=True, slots=True)
class PlannedPhase:
    name: str
    start: float  # seconds on the drill's axis
    end: float

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "start": self.start, "end": self.end}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> PlannedPhase:
        return cls(str(d["name"]), d["start"], d["end"])


@dataclass(frozen=True, slots=True)
class MetaRecord:
    run_id: str
    scenario: dict[str, Any]  # Scenario.model_dump(mode="json")
    platform: str
    mesh: str
    phases: list[PlannedPhase]
    started_at: str | None  # ISO wall time
    origin_wall: float | None  # wall time of the drill's origin (0 on its axis)
    regions: list[str]
    zones: list[str]
    faults_resolved: list[dict[str, Any]] | None = None  # drills write it, step-by-step sessions do not
    # What the manifests predicted for each fault (predict/), made before anything ran: drills only.
    predictions: list[dict[str, Any]] | None = None

    def to_json(self) -> dict[str, Any]:
        rec: dict[str, Any] = {
            "t": "meta",
            "run_id": self.run_id,
            "scenario": self.scenario,
            "platform": self.platform,
            "mesh": self.mesh,
            "phases": [p.to_json() for p in self.phases],
            "started_at": self.started_at,
            "origin_wall": self.origin_wall,
            "regions": self.regions,
            "zones": self.zones,
        }
        if self.faults_resolved is not None:
            rec["faults_resolved"] = self.faults_resolved
        if self.predictions is not None:
            rec["predictions"] = self.predictions
        return rec

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> MetaRecord:
        return cls(
            run_id=str(d["run_id"]),
            scenario=d["scenario"],
            platform=str(d["platform"]),
            mesh=str(d["mesh"]),
            phases=[PlannedPhase.from_json(p) for p in d["phases"]],
            started_at=d.get("started_at"),
            origin_wall=d.get("origin_wall"),
            regions=list(d.get("regions", [])),
            zones=list(d.get("zones", [])),
            faults_resolved=d.get("faults_resolved"),
            predictions=d.get("predictions"),
        )


@dataclass(frozen=True, slots=True)
class PhaseEvent:
    name: str
    at: float
    kind: Literal["phase"] = "phase"

    def to_json(self) -> dict[str, Any]:
        return {"t": "ev", "kind": "phase", "name": self.name, "at": self.at}


@dataclass(frozen=True, slots=True)
class EndEvent:
    at: float
    kind: Literal["end"] = "end"

    def to_json(self) -> dict[str, Any]:
        return {"t": "ev", "kind": "end", "at": self.at}


@dataclass(frozen=True, slots=True)
class FaultEvent:
    kind: Literal["fault_injected", "fault_reverted"]
    at: float
    took_ms: float
    fault: dict[str, Any]  # dump_fault(fault)
    entry: str  # the fault ledger's entry id
    details: dict[str, Any] | None = None  # what the platform reported (injections only)

    @classmethod
    def timed(
        cls,
        kind: Literal["fault_injected", "fault_reverted"],
        before: float,
        after: float,
        fault: dict[str, Any],
        entry: str,
        details: dict[str, Any] | None = None,
    ) -> FaultEvent:
        """The fault took effect somewhere in [before, after] (seconds on the drill's axis), so the
        midpoint is recorded with the spread."""
        return cls(kind, (before + after) / 2, round((after - before) * 1000, 3), fault, entry, details)

    def to_json(self) -> dict[str, Any]:
        rec: dict[str, Any] = {
            "t": "ev",
            "kind": self.kind,
            "at": self.at,
            "took_ms": self.took_ms,
            "fault": self.fault,
            "entry": self.entry,
        }
        if self.details is not None:
            rec["details"] = self.details
        return rec


@dataclass(frozen=True, slots=True)
class OtherEvent:
    """An "ev" of a kind this version does not know: kept, never fatal."""

    kind: str
    at: float | None
    raw: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return self.raw


Event = PhaseEvent | EndEvent | FaultEvent | OtherEvent


def _phase_event(kind: str, d: dict[str, Any]) -> Event:
    return PhaseEvent(str(d["name"]), d["at"])


def _end_event(kind: str, d: dict[str, Any]) -> Event:
    return EndEvent(d["at"])


def _fault_event(kind: str, d: dict[str, Any]) -> Event:
    which: Literal["fault_injected", "fault_reverted"] = (
        "fault_injected" if kind == "fault_injected" else "fault_reverted"
    )
    return FaultEvent(which, d["at"], d.get("took_ms", 0.0), d["fault"], str(d.get("entry", "")), d.get("details"))


_EVENTS: dict[str, Callable[[str, dict[str, Any]], Event]] = {
    "phase": _phase_event,
    "end": _end_event,
    "fault_injected": _fault_event,
    "fault_reverted": _fault_event,
}


def event_from_json(d: dict[str, Any]) -> Event:
    kind = str(d.get("kind"))
    read = _EVENTS.get(kind)
    return read(kind, d) if read is not None else OtherEvent(kind, d.get("at"), d)


@dataclass(frozen=True, slots=True)
class PlatformEventRecord:
    at: float | None  # seconds on the drill's axis
    source: str | None
    kind: str | None
    region: str | None
    zone: str | None
    detail: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "t": "pe",
            "at": self.at,
            "source": self.source,
            "kind": self.kind,
            "region": self.region,
            "zone": self.zone,
            "detail": self.detail,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> PlatformEventRecord:
        return cls(d.get("at"), d.get("source"), d.get("kind"), d.get("region"), d.get("zone"), d.get("detail"))


@dataclass(frozen=True, slots=True)
class PaymentsRecord:
    """The reconciliation as written: the fields of measure.payments.Reconciliation, flat."""

    rec: Reconciliation

    def to_json(self) -> dict[str, Any]:
        return {"t": "payments", **vars(self.rec)}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> PaymentsRecord:
        known = Reconciliation.__dataclass_fields__
        return cls(Reconciliation(**{k: v for k, v in d.items() if k in known}))


@dataclass(frozen=True, slots=True)
class GenRecord:
    """The generators' counters, merged over `workers` workers."""

    workers: int
    stats: GeneratorStats

    def to_json(self) -> dict[str, Any]:
        return {"t": "gen", "workers": self.workers, **vars(self.stats)}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> GenRecord:
        known = GeneratorStats.__dataclass_fields__
        return cls(int(d.get("workers", 1)), GeneratorStats(**{k: v for k, v in d.items() if k in known}))


@dataclass(frozen=True, slots=True)
class CpuRecord:
    """How busy the machine was over the span_s seconds before `at` (cpu_load.py). The drill asks
    every second, but a starved drill asks late, and then one record covers many seconds."""

    at: float
    busy_pct: float
    steal_pct: float
    own_pct: float
    span_s: float = 1.0  # journals written before the span was recorded sampled every second

    def to_json(self) -> dict[str, Any]:
        return {
            "t": "cpu", "at": self.at, "busy": self.busy_pct, "steal": self.steal_pct, "own": self.own_pct,
            "span": self.span_s,
        }  # fmt: skip

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> CpuRecord:
        return cls(float(d["at"]), float(d["busy"]), float(d["steal"]), float(d["own"]), float(d.get("span", 1.0)))


@dataclass(frozen=True, slots=True)
class TimingRecord:
    """Where a drill's wall time went, in seconds: the measured phases and what surrounds them.
    Appended to the journal last, once the fleet is down (so after the reports were first drawn)."""

    up_s: float | None  # None: the fleet was up before the drill
    steady_check_s: float
    measured_s: float
    reports_s: float
    down_s: float | None  # None: the fleet stays up (it was up before, or --keep-up)

    def to_json(self) -> dict[str, Any]:
        return {"t": "timing", **{k: getattr(self, k) for k in self.__slots__}}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> TimingRecord:
        def opt(key: str) -> float | None:
            v = d.get(key)
            return None if v is None else float(v)

        return cls(
            opt("up_s"), float(d["steady_check_s"]), float(d["measured_s"]), float(d["reports_s"]), opt("down_s")
        )


@dataclass(frozen=True, slots=True)
class ReleaseRecord:
    """A release started (scenario `rollout:`, `--rollout`, or Chaos Toolkit's start_release):
    what was released, for the result's `rollouts.release` and its verdict check."""

    at: float
    version: str
    fail_pct: float
    promote: bool
    analysis: str = "web"  # journals written before rollout.analysis existed judged with web

    def to_json(self) -> dict[str, Any]:
        return {"t": "release", **{k: getattr(self, k) for k in self.__slots__}}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> ReleaseRecord:
        return cls(
            float(d["at"]), str(d["version"]), float(d["fail_pct"]), bool(d["promote"]), str(d.get("analysis", "web"))
        )
