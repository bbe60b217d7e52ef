"""A fault's specification: pure data. The catalogue (faults/) checks it against a topology."""

from __future__ import annotations

from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

FAULT_KINDS = (
    "region-loss",
    "zone-loss",
    "link-latency",
    "partition",
    "brownout",
    "control-plane-loss",
    "blackout",
    "cert-expiry",
    "lost-response",
)
CERT_VARIANTS = ("leaf", "intermediate", "rotation-stopped")
Mode = Literal["kill", "freeze"]
FRONT_DOOR = "front-door"


class FaultSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: str
    # region or zone name; for link faults the destination region.
    target: str | None = None
    # link faults: the source region (or "front-door"); "*" means every source.
    source: str | None = None
    mode: Mode = "kill"
    delay_ms: float = Field(default=0.0, ge=0, le=60_000)
    jitter_pct: float = Field(default=0.0, ge=0, le=100)
    fail_pct: float = Field(default=0.0, ge=0, le=100)
    # cert-expiry: which certificate lapses; ttl_s is the short life left with rotation stopped.
    cert: Literal["leaf", "intermediate", "rotation-stopped"] = "leaf"
    ttl_s: float = Field(default=3.0, gt=0, le=3600)
    # Offsets inside the fault phase; None means "until the phase ends".
    at_s: float = Field(default=0.0, ge=0)
    duration_s: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _kind(self) -> Self:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault {self.kind!r}; choose one of {', '.join(FAULT_KINDS)}")
        if self.jitter_pct > 0 and self.kind != "link-latency":
            raise ValueError(f"jitter_pct applies to link-latency only, not {self.kind}")
        if self.kind == "link-latency" and self.delay_ms <= 0:
            raise ValueError("link-latency needs delay_ms > 0")
        if self.kind == "lost-response" and self.fail_pct <= 0:
            raise ValueError("lost-response needs fail_pct > 0 (the share of answers lost after the charge)")
        if self.kind == "brownout" and self.fail_pct <= 0 and self.delay_ms <= 0:
            raise ValueError("brownout needs fail_pct > 0 or delay_ms > 0")
        return self

    def label(self) -> str:
        if self.kind in ("link-latency", "partition"):
            return f"{self.kind} {self.source or '*'}->{self.target}"
        return f"{self.kind} {self.target}" if self.target else self.kind
