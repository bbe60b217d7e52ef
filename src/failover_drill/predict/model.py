"""What a prediction says: for one fault, on one mesh profile and platform, what users will see
(no outage, a failover within a bound, or no recovery while the fault is on), the chain of
reasoning from the manifests to that bound, and the traps found on the way."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Expect = Literal["no-outage", "failover", "no-recovery"]


@dataclass(frozen=True)
class Bound:
    """Seconds (or a percentage) from lo to hi, both included."""

    lo: float
    hi: float

    def __add__(self, other: Bound) -> Bound:
        return Bound(self.lo + other.lo, self.hi + other.hi)

    def shift(self, s: float) -> Bound:
        return Bound(self.lo + s, self.hi + s)

    def text(self, unit: str = " s") -> str:
        if abs(self.hi - self.lo) < 0.05:
            return f"{self.hi:.3g}{unit}"
        return f"{self.lo:.3g}-{self.hi:.3g}{unit}"

    def to_json(self) -> list[float]:
        return [round(self.lo, 3), round(self.hi, 3)]


@dataclass(frozen=True)
class Finding:
    """A setting that makes failover slower or impossible, with the change that fixes it."""

    trap: str  # a short name: "ejection cap", "no per-try timeout", ...
    detail: str
    fix: str
    where: str  # the manifest field

    def to_json(self) -> dict[str, str]:
        return asdict(self)


@dataclass
class Prediction:
    fault: str  # the fault's label, as the drill names it
    kind: str
    profile: str
    platform: str
    users: str  # the users' region
    expect: Expect
    # Time to recover (the drill's TTR) and the outage, from the injection; None when there is
    # nothing to recover from (no-outage) or nothing that recovers while the fault is on.
    ttr_s: Bound | None
    outage_s: Bound | None
    # The share of the users' requests that fail while the fault acts, before any failover.
    error_pct: Bound
    # What sets the bound: the assumption a miss puts in doubt first.
    decided_by: str
    reasoning: list[str] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    # A share of failures so thin that the drill's success-ratio windows may find a clean stretch
    # between them: "no recovery" and a brief one are then the same outcome.
    sparse: bool = False

    def headline(self) -> str:
        if self.expect == "no-outage":
            return f"no outage ({self.decided_by})"
        if self.expect == "no-recovery":
            return f"no recovery while the fault is on ({self.error_pct.text('%')} of requests fail)"
        assert self.ttr_s is not None
        return f"failover in {self.ttr_s.text()} ({self.error_pct.text('%')} of requests fail until then)"

    def to_json(self) -> dict[str, Any]:
        return {
            "fault": self.fault,
            "kind": self.kind,
            "profile": self.profile,
            "platform": self.platform,
            "users": self.users,
            "expect": self.expect,
            "ttr_s": self.ttr_s.to_json() if self.ttr_s else None,
            "outage_s": self.outage_s.to_json() if self.outage_s else None,
            "error_pct": self.error_pct.to_json(),
            "decided_by": self.decided_by,
            "headline": self.headline(),
            "reasoning": list(self.reasoning),
            "findings": [f.to_json() for f in self.findings],
            "sparse": self.sparse,
        }
