"""What a drill does: client region, faults, phase lengths, traffic, SLO and verdict limits."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from failover_drill.config.yamlio import load_one, validate
from failover_drill.errors import ConfigError
from failover_drill.faults.model import KIND_MODELS, Fault, FaultField, RegionLoss, explain


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Phases(Strict):
    warmup_s: float = Field(default=2.0, ge=0, le=3600)
    baseline_s: float = Field(default=5.0, gt=0, le=3600)
    fault_s: float = Field(default=25.0, gt=0, le=86_400)
    recovery_s: float = Field(default=12.0, gt=0, le=86_400)

    def total_s(self) -> float:
        return self.warmup_s + self.baseline_s + self.fault_s + self.recovery_s


class RetryPolicy(Strict):
    """The payment client's own retries (after the mesh's); the same Idempotency-Key each time."""

    attempts: int = Field(default=1, ge=1, le=10)
    backoff_ms: float = Field(default=50.0, ge=0, le=60_000)
    backoff_max_ms: float = Field(default=1_000.0, ge=0, le=600_000)
    on: tuple[str, ...] = ("connect", "timeout", "5xx")

    @field_validator("on")
    @classmethod
    def _on(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        known = {"connect", "timeout", "5xx", "reset"}
        bad = [x for x in v if x not in known]
        if bad:
            raise ValueError(f"cannot retry on {bad}; choose from {sorted(known)}")
        return v


class TrafficSpec(Strict):
    rate_rps: float = Field(default=200.0, gt=0, le=50_000)
    timeout_s: float = Field(default=2.0, gt=0, le=120)
    workers: int = Field(default=1, ge=1, le=16)
    max_in_flight: int = Field(default=4000, ge=1)
    retry: RetryPolicy = Field(default_factory=RetryPolicy)
    # host: the drill's own process(es) send; in-region: workers run inside the users' region
    # (kind: a Job in that region's cluster), so requests cross that region's network first.
    origin: Literal["host", "in-region"] = "host"


class SLO(Strict):
    target_pct: float = 99.9
    period_days: float = Field(default=30.0, gt=0)
    stability_s: float = Field(default=5.0, gt=0)
    window_s: float = Field(default=1.0, gt=0)

    @field_validator("target_pct")
    @classmethod
    def _target(cls, v: float) -> float:
        if not 0 < v < 100:
            raise ValueError(f"SLO target {v} must be between 0 and 100 (exclusive), e.g. 99.9")
        return v

    @property
    def ratio(self) -> float:
        return self.target_pct / 100.0


class Limits(Strict):
    """Verdict limits; None disables a check."""

    rto_s: float | None = Field(default=30.0, gt=0)
    failback_s: float | None = Field(default=30.0, gt=0)
    max_budget_pct: float | None = Field(default=5.0, gt=0)
    max_p99_ms: float | None = Field(default=None, gt=0)
    max_lost: int | None = Field(default=0, ge=0)
    max_duplicated: int | None = Field(default=0, ge=0)


class Release(Strict):
    """A new payment-gateway version that the Argo Rollouts controllers roll out while the drill
    runs (kwok, kind): the repo's canary Rollout in every region, judged by the drill's live SLIs."""

    # What the new pods report in x-served-version, and what the canary analysis judges.
    version: str = Field(default="canary", pattern=r"^[a-z0-9][a-z0-9.-]{0,39}$")
    # The share of payments the new version fails (a bad canary browns out).
    fail_pct: float = Field(default=0.0, ge=0, le=100)
    # Seconds into the fault phase when the release starts; negative: during the baseline, so the
    # canary is already in flight when the faults come.
    at_s: float = 0.0
    # Promote fully once analysis has passed and the canary waits at its pause step.
    promote: bool = False
    # How the controllers' analysis reads the drill's SLIs: `web` asks its /analysis endpoint;
    # `prometheus` asks a Prometheus server the drill starts to scrape its /metrics every second
    # (the repo's prometheus AnalysisTemplate, as a team whose analysis queries Prometheus has it).
    analysis: Literal["web", "prometheus"] = "web"

    def expected(self) -> Literal["aborted", "promoted", "not aborted"]:
        """What the controllers should make of this release: the verdict's check, and plan's words."""
        return "aborted" if self.fail_pct > 0 else "promoted" if self.promote else "not aborted"

    # Where to release; by default the users' region. The analysis judges a canary on the traffic
    # its own pods serve: a region with no users gives it nothing to judge (no data: the
    # AnalysisRun errors and the controller aborts), unless a fault sends the users there.
    regions: list[str] | None = Field(default=None, min_length=1, max_length=20)

    @field_validator("version")
    @classmethod
    def _not_stable(cls, v: str) -> str:
        if v == "stable":
            raise ValueError("the release's version must not be 'stable': that is what it replaces")
        return v

    def where(self, users: str) -> list[str]:
        return list(self.regions) if self.regions else [users]

    def label(self) -> str:
        share = f", failing {self.fail_pct:g}%" if self.fail_pct else ""
        judged = ", judged through Prometheus" if self.analysis == "prometheus" else ""
        return f"release {self.version}{share}{judged}" + (", promoted once analysis passes" if self.promote else "")


# `--rollout NAME`: the scenarios. bad-canary: does analysis abort it, and how fast?
# good-canary: does it get through (during a fault: is it blamed for the fault's errors)?
RELEASES: dict[str, Release] = {
    "bad-canary": Release(fail_pct=60.0),
    "good-canary": Release(promote=True),
}


def _default_faults() -> list[Fault]:
    return [RegionLoss()]


class Scenario(Strict):
    name: str = "drill"
    region: str = "us-east1"  # where the users are
    faults: list[FaultField] = Field(default_factory=_default_faults)
    phases: Phases = Field(default_factory=Phases)
    traffic: TrafficSpec = Field(default_factory=TrafficSpec)
    slo: SLO = Field(default_factory=SLO)
    limits: Limits = Field(default_factory=Limits)
    rollout: Release | None = None

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.slo.stability_s >= self.phases.fault_s + self.phases.recovery_s:
            raise ValueError("slo.stability_s must be shorter than the fault and recovery phases")
        r = self.rollout
        if r is not None and not -self.phases.baseline_s <= r.at_s < self.phases.fault_s:
            raise ValueError(
                f"rollout.at_s {r.at_s:g} must fall in the baseline or the fault phase "
                f"(-{self.phases.baseline_s:g} <= at_s < {self.phases.fault_s:g})"
            )
        if not self.faults and r is None:
            raise ValueError("a scenario needs at least one fault (or a rollout to watch)")
        return self


def load_scenario(path: Path) -> tuple[Scenario, str]:
    data, lines = load_one(path)
    if not isinstance(data, dict):
        raise ConfigError("a scenario must be a mapping", source=str(path), line=1)
    return validate(Scenario, data, lines, str(path), hint="see experiments/scenarios/ for examples"), str(path)


def _recovers(entry: dict[str, Any]) -> bool:
    """Whether a fault leaves the fleet a way to recover while it is on; a fault that does not
    validate yet counts as one that does (Scenario.model_validate names its problem next)."""
    model = KIND_MODELS.get(entry.get("kind", ""))
    try:
        return model is None or model.model_validate(entry).recovers_while_on()
    except ValidationError:
        return True


def build_scenario(
    base: Scenario | None,
    *,
    region: str | None = None,
    fault: str | None = None,
    mode: str | None = None,
    target: str | None = None,
    rate: float | None = None,
    overrides: dict[str, Any] | None = None,
    fault_params: dict[str, Any] | None = None,
    rollout: str | None = None,
) -> Scenario:
    """A scenario from a file (or the defaults) with command-line flags on top, re-validated whole.
    rollout: one of RELEASES; without a fault named too, the release is all the drill does."""
    data = (base or Scenario()).model_dump(mode="json")
    if rollout is not None:
        if rollout not in RELEASES:
            raise ConfigError(
                f"unknown rollout scenario {rollout!r}", field="--rollout", hint=f"choose one of {', '.join(RELEASES)}"
            )
        data["rollout"] = RELEASES[rollout].model_dump(mode="json")
        if not fault and base is None:
            data["faults"] = []
    if region:
        data["region"] = region
    params = {k: v for k, v in (fault_params or {}).items() if v is not None}
    if fault or mode or target or params:
        faults = data["faults"] if not fault else [{"kind": fault}]
        for fe in faults:
            if mode:
                fe["mode"] = mode
            if target:
                fe["target"] = target
            fe.update(params)
        data["faults"] = faults
    if rate is not None:
        data["traffic"]["rate_rps"] = rate
    for path, value in (overrides or {}).items():
        node: Any = data
        keys: list[Any] = [int(k) if k.isdigit() else k for k in path.split(".")]
        try:
            for k in keys[:-1]:
                node = node[k] if isinstance(k, int) else node.setdefault(k, {})
            node[keys[-1]] = value
        except (IndexError, KeyError, TypeError):
            raise ConfigError(
                f"--set {path}: no such field", field="--set", hint="e.g. phases.fault_s=30 or faults.0.delay_ms=100"
            ) from None
    if base is None or fault or rollout:
        kinds = [fe["kind"] for fe in data["faults"]] + ([rollout] if rollout else [])
        data["name"] = "-".join(kinds) + f"-{data['region']}"
    recovering = any(_recovers(fe) for fe in data["faults"])
    if not data["faults"]:
        # A release alone fails nothing over: its verdict is the budget, the payments and what
        # the controller did with it.
        for key in ("rto_s", "failback_s"):
            if f"limits.{key}" not in (overrides or {}):
                data["limits"][key] = None
    if fault and "limits.rto_s" not in (overrides or {}) and data["faults"] and not recovering:
        # A blackout is the stopwatch's calibration: nothing can recover while it is on, so its
        # verdict does not ask for a failover time (the old default failed every one); so too a
        # share of requests failing or going unanswered.
        data["limits"]["rto_s"] = None
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc, msg = explain(err)
        raise ConfigError(msg, field=".".join(str(p) for p in loc), hint="see `failover-drill drill --help`") from None
