"""result.json as a typed model: the product's contract, with its JSON Schema shipped beside it.

`build_result` (report/result.py) constructs a `Result` and writes `model_dump(mode="json")`, so
the file's keys, their order and their values are what the model declares. The schema in
result.schema.json is generated from this module; after changing a model, regenerate it with

    python -m failover_drill.report.result_model --write-schema

(tests/test_result_schema.py fails while the shipped schema and the model disagree).
Bump SCHEMA_VERSION when a key is added, removed or changes meaning (the schema allows no unknown keys).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema

SCHEMA_VERSION: Literal[8] = 8
SCHEMA_PATH = Path(__file__).with_name("result.schema.json")

# A measured figure exactly as computed: an int stays an int in the JSON (pydantic would make 5
# into 5.0 for a float field, and result.json must read as it always has).
Number = Annotated[int | float, WithJsonSchema({"type": "number"})]


class _Model(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        # Every key is always written, defaulted or not: the schema says so.
        json_schema_serialization_defaults_required=True,
        # Keys that are not identifiers ("1m", "schema") are aliases; Python code uses the names.
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
        # As json.dumps writes them (never expected, but never silently turned into null).
        ser_json_inf_nan="constants",
    )


class FaultSummary(_Model):
    kind: str = Field(description="the fault kinds, sorted and joined with '+'")
    target: str = Field(description="the targets, sorted and joined with ',' ('all' for an untargeted fault)")
    mode: str | None = Field(description="the first fault's mode (kill, freeze), when it has one")
    faults: list[dict[str, Any]] = Field(description="every fault as injected (or as planned, when none was)")
    details: list[dict[str, Any]] = Field(description="what the platform reported for each injection")
    injected_at_s: Number
    reverted_at_s: Number | None


class PhaseSpan(_Model):
    start_s: Number
    end_s: Number


class Phases(_Model):
    warmup: PhaseSpan
    baseline: PhaseSpan
    fault: PhaseSpan
    recovery: PhaseSpan


class GeneratorStats(_Model):
    """The journal's "gen" record as written (the traffic generators' counters, merged)."""

    t: Literal["gen"] = "gen"
    workers: int
    scheduled: int
    sent: int
    completed: int
    dropped: int
    late: int
    early: int = 0  # journals written before early sends were counted lack it
    max_lag_ms: Number


class Traffic(_Model):
    requests: int
    ok: int
    failed: int
    rate_rps: Number
    achieved_rps: Number
    dropped: int
    attempts: int
    raw_failures: int
    errors: dict[str, int] = Field(description="failures by class, most frequent first")
    generator: GeneratorStats | None


class FailoverFigures(_Model):
    ttd_s: Number | None
    ttr_s: Number | None
    shift_s: Number | None
    failback_s: Number | None
    return_s: Number | None
    outage_s: Number | None
    recovered: bool
    failed_back: bool
    measured_at: Literal["zone", "region"]
    targets: list[str]
    mesh_detected_s: Number | None
    mesh_restored_s: Number | None
    node_not_ready_s: Number | None = Field(
        description="Kubernetes platforms: the node lifecycle controller marked a target node NotReady (s after t0)"
    )
    endpoints_removed_s: Number | None = Field(
        description="a target's endpoint left the mesh (readiness, or its node's pods marked not ready), s after t0"
    )


class BurnRates(_Model):
    m1: Number = Field(alias="1m")
    m5: Number = Field(alias="5m")
    m30: Number = Field(alias="30m")
    h1: Number = Field(alias="1h")
    h6: Number = Field(alias="6h")


class ErrorBudget(_Model):
    slo: Number
    period_days: Number
    bad_requests: int
    budget_requests: Number
    budget_consumed_pct: Number
    peak_burn_rate: Number
    burn_rate: BurnRates
    page_alert_fired: bool
    ticket_alert_fired: bool
    minutes_to_exhaust_at_peak: Number | None


class FailedLatency(_Model):
    """How long the phase's failed requests took to fail (an instant 503, a timeout), in ms."""

    p50: Number | None
    p99: Number | None
    max: Number | None
    count: int


class Latency(_Model):
    """Milliseconds from the scheduled send, of the phase's successful requests (None when it had
    none); failed requests are counted apart, under `failed`."""

    p10: Number | None
    p50: Number | None
    p90: Number | None
    p99: Number | None
    max: Number | None
    count: int = Field(description="successful requests of the phase")
    failed: FailedLatency


class PhaseLatency(_Model):
    baseline: Latency
    fault: Latency
    recovery: Latency


class PhaseShares(_Model):
    """Share of successful requests served per region (or zone) in each phase."""

    baseline: dict[str, Number]
    fault: dict[str, Number]
    recovery: dict[str, Number]


class PaymentExamples(_Model):
    lost_keys: list[str]
    duplicated_keys: list[str]
    unacknowledged_keys: list[str]


class Payments(_Model):
    reconciled: bool
    acknowledged: int | None
    charged: int | None
    lost: int | None
    duplicated: int | None
    charged_unacknowledged: int | None
    examples: PaymentExamples


class PlatformEventOut(_Model):
    at: Number | None
    source: str | None
    kind: str | None
    region: str | None
    zone: str | None
    detail: str | None


class Check(_Model):
    name: str
    passed: bool
    measured: Number | str | None = Field(description="a figure; for `release`, each region's outcome")
    limit: Number | str | None = Field(
        description="the largest measured value that passes; for `release`, the outcome expected"
    )
    unit: str = Field(description="of measured and limit: s, ms, % of the error budget, payments; empty for release")


class VerdictOut(_Model):
    passed: bool
    inconclusive: bool = Field(
        description="the load generator fell behind (see measurement): neither a pass nor a fail of the mesh"
    )
    reasons: list[str]
    checks: list[Check]


class SendLag(_Model):
    """How far behind schedule the generator sent a phase's requests, and what else used the CPU."""

    requests: int
    late: int = Field(description="requests sent more than measurement.bounds.late_ms after their scheduled time")
    late_share: Number
    p50_ms: Number | None
    p99_ms: Number | None
    max_ms: Number | None
    cpu_busy_pct: Number | None = Field(description="all cores, mean over the phase")
    cpu_steal_pct: Number | None = Field(description="taken by the hypervisor")
    own_cpu_pct: Number | None = Field(description="the drill process itself, of one core")


class MeasurementPhases(_Model):
    baseline: SendLag
    fault: SendLag
    recovery: SendLag


class MeasurementBounds(_Model):
    late_ms: Number
    max_late_share: Number
    max_lag_p99_ms: Number


class Measurement(_Model):
    """Whether the stopwatch can be trusted: beyond the bounds the drill is inconclusive."""

    valid: bool
    reasons: list[str]
    bounds: MeasurementBounds
    phases: MeasurementPhases


class JournalSummary(_Model):
    samples: int
    skipped_lines: list[int] = Field(description="line numbers of unreadable journal lines (the first 50)")


class Timing(_Model):
    """Seconds of wall time: the measured phases, and the overhead around them (issue 20)."""

    up_s: Number | None = Field(description="bringing the fleet up; null when it was up before the drill")
    steady_check_s: Number = Field(description="waiting for a steady fleet and starting traffic workers")
    measured_s: Number = Field(description="the phases themselves (warmup to the end of recovery)")
    reports_s: Number = Field(description="platform events, payment reconciliation, result.json and reports")
    down_s: Number | None = Field(description="stopping the fleet; null when it stays up")
    overhead_s: Number = Field(description="everything but measured_s")


class PredictionCheck(_Model):
    verdict: Literal["confirmed", "off", "not judged"]
    detail: str


class PredictionOut(_Model):
    """What `failover-drill predict` says of this drill's faults, made before it ran (predict/)."""

    faults: list[dict[str, Any]] = Field(description="one prediction per fault: expect, ttr_s, reasoning, findings")
    check: PredictionCheck = Field(description="the measured failover against the prediction")


class RolloutEventOut(_Model):
    at: Number | None = Field(description="seconds on the drill's axis (the controller's Events keep whole seconds)")
    region: str | None
    source: str = Field(description="argo-rollouts: the controller's own Event; failover-drill: the deploy freeze")
    reason: str = Field(
        description="the Event's reason (RolloutAborted, AnalysisRunFailed, ...), deploy-freeze, deploy-thaw"
    )
    detail: str


class DeployFreezeOut(_Model):
    frozen_at_s: Number | None = Field(description="when the page alert froze deploys; null if the freeze failed")
    thawed_at_s: Number | None = Field(description="when the drill lifted its freeze; null if it never did")
    held_s: Number | None
    failed: str | None = Field(description="why the freeze could not be made, if it could not")


class ReleaseRegionOut(_Model):
    region: str
    outcome: str = Field(description="aborted, healthy (fully rolled out), in flight, or no Rollout")
    aborted_at_s: Number | None = Field(description="when the drill saw the controller's abort")
    promote_at_s: Number | None = Field(description="when the drill asked for the full promotion")
    healthy_at_s: Number | None = Field(description="when the new version was fully out")
    held_at_s: Number | None = Field(
        default=None, description="when the drill first saw it paused (spec.paused: a deploy freeze or a person)"
    )
    resumed_at_s: Number | None = Field(default=None, description="when the drill first saw that pause lifted")


class ReleaseOut(_Model):
    """The scenario's release (`rollout:`, `--rollout`): what the controllers did with it."""

    version: str
    fail_pct: Number = Field(description="the share of payments the new version fails")
    promote: bool = Field(description="asked to promote fully once analysis passed")
    analysis: str = Field(description="web (the drill's /analysis) or prometheus (a Prometheus scraping its /metrics)")
    started_at_s: Number | None = Field(description="when the drill applied it; null if it never started")
    expected: str = Field(description="aborted (a failing version), promoted, or not aborted")
    met: bool = Field(description="every region's outcome is the expected one")
    time_to_abort_s: Number | None = Field(description="from the release to the first abort the drill saw")
    time_to_healthy_s: Number | None = Field(description="from the release until every region had it fully out")
    regions: list[ReleaseRegionOut]


class RolloutsOut(_Model):
    """What the Argo Rollouts controllers did while the drill ran (kwok, kind)."""

    events: list[RolloutEventOut]
    aborted: bool = Field(description="a controller aborted a rollout during the drill")
    freeze: DeployFreezeOut | None = Field(description="the drill's deploy freeze (--freeze-deploys), if it fired")
    release: ReleaseOut | None = Field(description="the scenario's release, if it has one")


class Result(_Model):
    """result.json."""

    model_config = ConfigDict(title="failover-drill result.json")

    schema_: Literal[8] = Field(8, alias="schema", description="the same as schema_version, kept for older readers")
    schema_version: Literal[8] = Field(
        SCHEMA_VERSION,
        description="2: adds `measurement` (the stopwatch's own health) and verdict.inconclusive; "
        "3: latency_ms percentiles are of successful requests, failed ones under latency_ms.<phase>.failed; "
        "4: adds `timing` (where a drill's wall time went); "
        "5: adds `prediction` (what the manifests predicted, and whether the drill confirmed it); "
        "6: adds `rollouts` (what the Argo Rollouts controllers did, and the drill's deploy freeze); "
        "7: adds `rollouts.release` (the scenario's release and its outcome) and scenario-less faults "
        "(a release alone has none)",
    )
    run_id: str
    scenario: str
    platform: str
    mesh: str
    client_region: str
    started_at: str | None
    complete: bool
    fault: FaultSummary
    phases: Phases
    traffic: Traffic
    failover: FailoverFigures
    error_budget: ErrorBudget
    latency_ms: PhaseLatency
    served_by: PhaseShares
    served_by_zone: PhaseShares
    payments: Payments
    platform_events: list[PlatformEventOut] = Field(description="what the platform itself saw (the first 500)")
    verdict: VerdictOut
    measurement: Measurement
    journal: JournalSummary
    timing: Timing | None = Field(
        description="where the drill's wall time went; null for a Chaos Toolkit session, or a drill "
        "that ended with an error before its fleet was down"
    )
    prediction: PredictionOut | None = Field(
        default=None, description="null for a Chaos Toolkit session, or when the manifests gave no prediction"
    )
    rollouts: RolloutsOut | None = Field(
        default=None, description="null where no controller recorded anything and no deploy freeze fired"
    )


def json_schema() -> dict[str, Any]:
    """The JSON Schema of result.json as written (serialization mode: every key present)."""
    schema = Result.model_json_schema(mode="serialization")
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}


def schema_text() -> str:
    return json.dumps(json_schema(), indent=2) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m failover_drill.report.result_model", description=__doc__)
    ap.add_argument("--write-schema", action="store_true", help=f"write {SCHEMA_PATH.name} beside this module")
    args = ap.parse_args(argv)
    if args.write_schema:
        SCHEMA_PATH.write_text(schema_text())
        print(SCHEMA_PATH)
    else:
        sys.stdout.write(schema_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
