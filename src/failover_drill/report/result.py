"""result.json, rebuilt from the journal alone: the drill and `failover-drill report` share this path."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from failover_drill.config.scenario import Release, Scenario
from failover_drill.errors import ConfigError
from failover_drill.faults.model import parse_recorded_fault
from failover_drill.measure.budget import error_budget
from failover_drill.measure.failover import measure
from failover_drill.measure.timeline import Phase, Timeline
from failover_drill.measure.validity import judge_measurement
from failover_drill.measure.verdict import judge
from failover_drill.predict.check import judge as judge_prediction
from failover_drill.report import journal, records
from failover_drill.report.result_model import (
    BurnRates,
    Check,
    DeployFreezeOut,
    ErrorBudget,
    FailoverFigures,
    FaultSummary,
    GeneratorStats,
    JournalSummary,
    Latency,
    Measurement,
    MeasurementBounds,
    MeasurementPhases,
    PaymentExamples,
    Payments,
    PhaseLatency,
    Phases,
    PhaseShares,
    PhaseSpan,
    PlatformEventOut,
    PredictionCheck,
    PredictionOut,
    ReleaseOut,
    ReleaseRegionOut,
    Result,
    RolloutEventOut,
    RolloutsOut,
    SendLag,
    Timing,
    Traffic,
    VerdictOut,
)
from failover_drill.traffic.samples import Sample


class Replay:
    """Everything a journal holds, folded."""

    def __init__(self, path: Path) -> None:
        self.problems = journal.JournalProblems()
        self.events: list[records.Event] = []
        self.platform_events: list[records.PlatformEventRecord] = []
        self.payments: records.PaymentsRecord | None = None
        self.generator: records.GenRecord | None = None
        self.cpu: list[records.CpuRecord] = []
        self.timing: records.TimingRecord | None = None
        self.release: records.ReleaseRecord | None = None
        samples_seen = 0
        lines = journal.read(path, self.problems)
        first = next(lines, None)
        if first is None or first.get("t") != "meta":
            raise ConfigError(
                "journal has no header line",
                source=str(path),
                line=1,
                hint="a journal starts with the drill's meta record; this file is not one",
            )
        try:
            self.meta = records.MetaRecord.from_json(first)
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(
                f"journal header lacks {exc}", source=str(path), line=1, hint="the meta record is incomplete"
            ) from None
        sc = Scenario.model_validate(self.meta.scenario)
        self.scenario = sc
        horizon = sc.traffic.timeout_s * sc.traffic.retry.attempts + sc.traffic.retry.backoff_max_ms / 1000 + 1
        self.timeline = Timeline(horizon_s=horizon)
        self.timeline.set_phases(self.phases(planned_only=True))
        pending: list[Sample] = []
        phases_final = False
        last_t = 0.0
        for rec in lines:
            kind = rec["t"]
            if kind == "s":
                try:
                    s = Sample.from_json(rec)
                except (KeyError, TypeError, ValueError):
                    continue
                samples_seen += 1
                last_t = max(last_t, s.sched)
                if phases_final:
                    self.timeline.add(s)
                else:
                    pending.append(s)
                    if len(pending) > 50_000:
                        # Phases are refined by events; until then fold with the planned ones.
                        for p in pending:
                            self.timeline.add(p)
                        pending.clear()
            else:
                try:
                    self._fold(kind, rec)
                except (KeyError, TypeError, ValueError):
                    continue  # a record this version cannot read: skipped like a bad sample
        for p in pending:
            self.timeline.add(p)
        self.timeline.seal_all()
        self.samples = samples_seen
        self.last_t = last_t

    def _fold(self, kind: str, rec: dict[str, Any]) -> None:
        fold = _FOLDS.get(kind)
        if fold is not None:
            fold(self, rec)

    def _fold_event(self, rec: dict[str, Any]) -> None:
        ev = records.event_from_json(rec)
        self.events.append(ev)
        if isinstance(ev, records.FaultEvent | records.EndEvent):
            # Phases are refined by when faults and the drill really started and ended.
            self.timeline.set_phases(self.phases(planned_only=False))

    def _fold_platform_event(self, rec: dict[str, Any]) -> None:
        self.platform_events.append(records.PlatformEventRecord.from_json(rec))

    def _fold_payments(self, rec: dict[str, Any]) -> None:
        self.payments = records.PaymentsRecord.from_json(rec)

    def _fold_generator(self, rec: dict[str, Any]) -> None:
        self.generator = records.GenRecord.from_json(rec)

    def _fold_timing(self, rec: dict[str, Any]) -> None:
        self.timing = records.TimingRecord.from_json(rec)

    def _fold_release(self, rec: dict[str, Any]) -> None:
        self.release = records.ReleaseRecord.from_json(rec)

    def _fold_cpu(self, rec: dict[str, Any]) -> None:
        self.cpu.append(records.CpuRecord.from_json(rec))

    def cpu_by_phase(self) -> dict[str, dict[str, float | None]]:
        """CPU shares per phase, each record weighted by how much of its span lies in the phase: a
        starved drill samples late, and its one long record is the evidence for every phase it
        spans (attributing it by its end alone once left a starved fault phase without figures)."""
        out: dict[str, dict[str, float | None]] = {}
        for phase in self.timeline.phases:
            weighted = [
                (overlap, c)
                for c in self.cpu
                if (overlap := min(c.at, phase.end) - max(c.at - c.span_s, phase.start)) > 0
            ]
            total = sum(w for w, _ in weighted)
            if total > 0:
                out[phase.name] = {
                    name: round(sum(w * getattr(c, name) for w, c in weighted) / total, 1)
                    for name in ("busy_pct", "steal_pct", "own_pct")
                }
        return out

    def fault_events(self, kind: str) -> list[records.FaultEvent]:
        return [e for e in self.events if isinstance(e, records.FaultEvent) and e.kind == kind]

    def event_time(self, kind: str, which: str = "first") -> float | None:
        times = [float(e.at) for e in self.events if e.kind == kind and e.at is not None]
        if not times:
            return None
        return min(times) if which == "first" else max(times)

    def phases(self, planned_only: bool = False) -> list[Phase]:
        planned = {p.name: (p.start, p.end) for p in self.meta.phases}
        if planned_only:
            return [Phase(n, s, e) for n, (s, e) in planned.items()]
        t0 = _first_of(self.event_time("fault_injected"), planned["fault"][0])
        tr = _first_of(self.event_time("fault_reverted", "last"), planned["recovery"][0])
        end = _first_of(self.event_time("end"), planned["recovery"][1])
        # A session's fault may come before its planned warm-up is over (a Chaos Toolkit method that
        # injects at once): the warm-up ends there, so no phase runs backwards.
        warm_end = min(planned["warmup"][1], t0)
        return [
            Phase("warmup", planned["warmup"][0], warm_end),
            Phase("baseline", min(planned["baseline"][0], t0), t0),
            Phase("fault", t0, tr),
            Phase("recovery", tr, end),
        ]


# Journal record type -> how Replay folds it; a type this version does not know is skipped.
_FOLDS: dict[str, Callable[[Replay, dict[str, Any]], None]] = {
    "timing": Replay._fold_timing,
    "ev": Replay._fold_event,
    "pe": Replay._fold_platform_event,
    "payments": Replay._fold_payments,
    "gen": Replay._fold_generator,
    "cpu": Replay._fold_cpu,
    "release": Replay._fold_release,
}


def _first_of(recorded: float | None, planned: float) -> float:
    """A recorded time, even 0.0 (a fault at the origin), else the plan's."""
    return planned if recorded is None else recorded


def _fault_targets(faults: list[dict[str, Any]], zones: set[str]) -> tuple[set[str], str]:
    """Where the fault hit, and whether shift is measured between zones or regions."""
    targets: set[str] = set()
    for f in faults:
        try:
            target = parse_recorded_fault(f).served_target()
        except ValidationError:
            continue  # a fault this version does not know: it moved no measured share
        if target:
            targets.add(target)
    level = "zone" if targets and targets <= zones else "region"
    return targets, level


def build_result(path: Path, replay: Replay | None = None) -> dict[str, Any]:
    """result.json's content from a journal (or its Replay, when the caller has one already)."""
    return build_result_model(path, replay).model_dump(mode="json")


def build_result_model(path: Path, replay: Replay | None = None) -> Result:
    """The typed result (report/result_model.py) from a journal or its Replay."""
    rp = replay if replay is not None else Replay(path)
    sc = rp.scenario
    meta = rp.meta
    phases = {p.name: p for p in rp.phases()}
    injected = rp.fault_events("fault_injected")
    reverted = rp.fault_events("fault_reverted")
    complete = rp.event_time("end") is not None
    t0 = phases["fault"].start
    tr = phases["fault"].end
    t_end = phases["recovery"].end if complete else max(rp.last_t, tr)
    faults = [e.fault for e in injected] or [f for f in meta.scenario["faults"]]
    targets, level = _fault_targets(faults, set(meta.zones))
    baseline_share = sum(v for k, v in rp.timeline.served_by("baseline", level).items() if k in targets)
    fo = measure(
        rp.timeline,
        t0=t0,
        t_revert=tr,
        t_end=t_end,
        slo=sc.slo.ratio,
        window_s=sc.slo.window_s,
        stability_s=sc.slo.stability_s,
        targets=targets,
        level=level,
        baseline_share=baseline_share,
        rate_rps=sc.traffic.rate_rps,
    )
    start = phases["baseline"].start
    budget = error_budget(rp.timeline, start, t_end, sc.slo.target_pct, sc.slo.period_days, sc.traffic.rate_rps)
    series = rp.timeline.series(start, t_end)
    requests = sum(b.count for _, b in series)
    ok = sum(b.ok for _, b in series)
    raw_fail = sum(b.raw_failures for _, b in series)
    attempts = sum(b.attempts for _, b in series)
    dropped = sum(b.dropped for _, b in series)
    errors: dict[str, int] = {}
    for _, b in series:
        for k, v in b.errors.items():
            errors[k] = errors.get(k, 0) + v
    latency = {name: rp.timeline.phase_latency(name) for name in ("baseline", "fault", "recovery")}
    served = {name: rp.timeline.served_by(name, "region") for name in ("baseline", "fault", "recovery")}
    served_zone = {name: rp.timeline.served_by(name, "zone") for name in ("baseline", "fault", "recovery")}
    pay = rp.payments.rec if rp.payments is not None else None
    limits = sc.limits
    if not injected and _release_spec(rp) is not None:
        # Only a release ran (a Chaos Toolkit session that injected nothing): nothing failed over.
        limits = limits.model_copy(update={"rto_s": None, "failback_s": None})
    verdict = judge(
        limits,
        ttr_s=fo.ttr_s,
        recovered=fo.recovered,
        failback_s=fo.failback_s,
        failed_back=fo.failed_back,
        budget_pct=budget.budget_consumed_pct,
        fault_p99_ms=latency["fault"]["p99"],
        lost=pay.lost if pay is not None else 0,
        duplicated=pay.duplicated if pay is not None else 0,
    )
    rollouts_out = _rollouts(rp.platform_events, _release_spec(rp))
    release = rollouts_out.release if rollouts_out is not None else None
    if release is not None:
        seen = ", ".join(f"{r.region} {r.outcome}" for r in release.regions) or "never started"
        verdict.check(
            "release",
            release.met,
            seen,
            release.expected,
            f"the release ({release.version}) was expected {release.expected}, and was: {seen}",
            "",
        )
    if not complete:
        verdict.passed = False
        verdict.reasons.append("the drill did not finish (the journal ends early): numbers cover what was recorded")
    if rp.payments is None:
        verdict.reasons.append("payments were not reconciled for this run")
    validity = judge_measurement(rp.timeline, rp.cpu_by_phase())
    if not validity.valid:
        # The machine's starvation is not the mesh's failure, nor its success.
        verdict.passed = False
        verdict.reasons[:0] = validity.reasons
    mesh_events = _mesh_detection(rp.platform_events, t0, tr, targets)
    return Result(
        run_id=meta.run_id,
        scenario=sc.name,
        platform=meta.platform,
        mesh=meta.mesh,
        client_region=sc.region,
        started_at=meta.started_at,
        complete=complete,
        fault=FaultSummary(
            kind="+".join(sorted({f["kind"] for f in faults})),
            target=",".join(sorted({f.get("target") or "all" for f in faults})),
            mode=faults[0].get("mode") if faults else None,
            faults=faults,
            details=[_details(e, meta) for e in injected],
            injected_at_s=round(t0, 4),
            reverted_at_s=round(tr, 4) if reverted or complete else None,
        ),
        phases=Phases(**{p.name: PhaseSpan(start_s=round(p.start, 4), end_s=round(p.end, 4)) for p in phases.values()}),
        traffic=Traffic(
            requests=requests,
            ok=ok,
            failed=requests - ok,
            rate_rps=sc.traffic.rate_rps,
            achieved_rps=round(requests / (t_end - start), 2) if t_end > start else 0.0,
            dropped=dropped,
            attempts=attempts,
            raw_failures=raw_fail,
            errors=dict(sorted(errors.items(), key=lambda kv: -kv[1])),
            generator=GeneratorStats.model_validate(rp.generator.to_json()) if rp.generator is not None else None,
        ),
        failover=FailoverFigures(
            ttd_s=fo.ttd_s,
            ttr_s=fo.ttr_s,
            shift_s=fo.shift_s,
            failback_s=fo.failback_s,
            return_s=fo.return_s,
            outage_s=fo.outage_s,
            recovered=fo.recovered,
            failed_back=fo.failed_back,
            measured_at=level,
            targets=sorted(targets),
            mesh_detected_s=mesh_events["detected_s"],
            mesh_restored_s=mesh_events["restored_s"],
            node_not_ready_s=mesh_events["node_not_ready_s"],
            endpoints_removed_s=mesh_events["endpoints_removed_s"],
        ),
        error_budget=ErrorBudget(
            slo=sc.slo.target_pct,
            period_days=sc.slo.period_days,
            bad_requests=budget.bad_requests,
            budget_requests=budget.budget_requests,
            budget_consumed_pct=budget.budget_consumed_pct,
            peak_burn_rate=budget.burn_rate_1m,
            burn_rate=BurnRates(
                m1=budget.burn_rate_1m,
                m5=budget.burn_rate_5m,
                m30=budget.burn_rate_30m,
                h1=budget.burn_rate_1h,
                h6=budget.burn_rate_6h,
            ),
            page_alert_fired=budget.page_alert,
            ticket_alert_fired=budget.ticket_alert,
            minutes_to_exhaust_at_peak=budget.minutes_to_exhaust_at_peak,
        ),
        latency_ms=PhaseLatency(**{k: Latency(**v) for k, v in latency.items()}),
        served_by=PhaseShares(**served),
        served_by_zone=PhaseShares(**served_zone),
        payments=Payments(
            reconciled=rp.payments is not None,
            acknowledged=pay.acknowledged if pay is not None else None,
            charged=pay.charged if pay is not None else None,
            lost=pay.lost if pay is not None else None,
            duplicated=pay.duplicated if pay is not None else None,
            charged_unacknowledged=pay.charged_unacknowledged if pay is not None else None,
            examples=PaymentExamples(
                lost_keys=pay.lost_keys if pay is not None else [],
                duplicated_keys=pay.duplicated_keys if pay is not None else [],
                unacknowledged_keys=pay.unacknowledged_keys if pay is not None else [],
            ),
        ),
        platform_events=[
            PlatformEventOut(at=e.at, source=e.source, kind=e.kind, region=e.region, zone=e.zone, detail=e.detail)
            for e in rp.platform_events
        ][:500],
        verdict=VerdictOut(
            passed=verdict.passed,
            inconclusive=not validity.valid,
            reasons=verdict.reasons,
            checks=[Check(**c) for c in verdict.checks],
        ),
        measurement=Measurement(
            valid=validity.valid,
            reasons=validity.reasons,
            bounds=MeasurementBounds(**validity.bounds),
            phases=MeasurementPhases(**{k: SendLag(**v) for k, v in validity.phases.items()}),
        ),
        journal=JournalSummary(samples=rp.samples, skipped_lines=rp.problems.skipped[:50]),
        timing=timing_out(rp.timing),
        prediction=_prediction(meta.predictions, fo, tr - t0, validity.valid and complete),
        rollouts=rollouts_out,
    )


ROLLOUT_SOURCES = ("argo-rollouts", "failover-drill")


def _release_spec(rp: Replay) -> Release | None:
    """What was released: the journal's record of it (a Chaos Toolkit session releases mid-run),
    else the scenario's."""
    r = rp.release
    if r is None:
        return rp.scenario.rollout
    analysis = "prometheus" if r.analysis == "prometheus" else "web"
    return Release(version=r.version, fail_pct=r.fail_pct, promote=r.promote, analysis=analysis)


def _release(rel: Release | None, mine: list[records.PlatformEventRecord]) -> ReleaseOut | None:
    if rel is None:
        return None
    ours = [e for e in mine if e.source == "failover-drill"]
    started = next((e.at for e in ours if e.kind == "release"), None)

    def at(kind: str, region: str) -> float | None:
        return next((e.at for e in ours if e.kind == kind and e.region == region), None)

    # Every region the release reached; its outcome as recorded at the end of the run, or, while
    # a Chaos Toolkit session still runs, what has been seen so far.
    names = list(dict.fromkeys(e.region for e in ours if e.region is not None and (e.kind or "").startswith("release")))
    regions = []
    for region in names:
        final = next((e.detail or "" for e in ours if e.kind == "release-outcome" and e.region == region), None)
        aborted_at, healthy_at = at("release-aborted", region), at("release-healthy", region)
        if final is not None:
            outcome = final.split(":", 1)[0]
        else:
            outcome = "aborted" if aborted_at is not None else "healthy" if healthy_at is not None else "in flight"
        regions.append(
            ReleaseRegionOut(
                region=region,
                outcome=outcome,
                aborted_at_s=aborted_at,
                promote_at_s=at("release-promote", region),
                healthy_at_s=healthy_at,
                held_at_s=at("release-held", region),
                resumed_at_s=at("release-resumed", region),
            )
        )
    expected = rel.expected()
    outcomes = [r.outcome for r in regions]
    met = bool(outcomes) and (
        all(o == "aborted" for o in outcomes)
        if expected == "aborted"
        else all(o == "healthy" for o in outcomes)
        if expected == "promoted"
        else "aborted" not in outcomes
    )
    aborts = [r.aborted_at_s for r in regions if r.aborted_at_s is not None]
    healthy = [r.healthy_at_s for r in regions if r.healthy_at_s is not None]
    return ReleaseOut(
        version=rel.version,
        fail_pct=rel.fail_pct,
        promote=rel.promote,
        analysis=rel.analysis,
        started_at_s=started,
        expected=expected,
        met=met,
        time_to_abort_s=round(min(aborts) - started, 3) if aborts and started is not None else None,
        time_to_healthy_s=(
            round(max(healthy) - started, 3)
            if healthy and len(healthy) == len(regions) and started is not None
            else None
        ),
        regions=regions,
    )


def _rollouts(events: list[records.PlatformEventRecord], rel: Release | None = None) -> RolloutsOut | None:
    """The controllers' Events, the drill's deploy freeze and its release, in time order."""
    mine = sorted((e for e in events if e.source in ROLLOUT_SOURCES), key=lambda e: -math.inf if e.at is None else e.at)
    if not mine and rel is None:
        return None
    out = [
        RolloutEventOut(at=e.at, region=e.region, source=str(e.source), reason=str(e.kind), detail=e.detail or "")
        for e in mine
    ]

    def first(kind: str) -> records.PlatformEventRecord | None:
        return next((e for e in mine if e.source == "failover-drill" and e.kind == kind), None)

    frozen, thawed, failed = first("deploy-freeze"), first("deploy-thaw"), first("deploy-freeze-failed")
    freeze = None
    if frozen is not None or failed is not None:
        at = frozen.at if frozen is not None else None
        until = thawed.at if thawed is not None else None
        freeze = DeployFreezeOut(
            frozen_at_s=at,
            thawed_at_s=until,
            held_s=round(until - at, 3) if at is not None and until is not None else None,
            failed=failed.detail if failed is not None else None,
        )
    aborted = any(e.source == "argo-rollouts" and e.kind == "RolloutAborted" for e in mine)
    return RolloutsOut(events=out, aborted=aborted, freeze=freeze, release=_release(rel, mine))


def _prediction(preds: list[dict[str, Any]] | None, fo: Any, fault_on_s: float, valid: bool) -> PredictionOut | None:
    """The drill's own prediction, judged on its failover figures and on how long the fault was on.
    A compound schedule has one set of figures for several faults: each fault's prediction is
    shown, none is judged."""
    if not preds:
        return None
    figures = {
        "fault_on_s": fault_on_s,
        "ttr_s": fo.ttr_s,
        "outage_s": fo.outage_s,
        "recovered": fo.recovered,
        "error_pct": fo.outage_error_pct,
        "error_requests": fo.outage_requests,
    }
    if len(preds) == 1:
        check = judge_prediction(preds[0], figures, valid=valid)
    else:
        check = {"verdict": "not judged", "detail": "several faults share one set of failover figures"}
    return PredictionOut(faults=preds, check=PredictionCheck(**check))


def timing_out(t: records.TimingRecord | None) -> Timing | None:
    if t is None:
        return None
    overhead = t.steady_check_s + t.reports_s + (t.up_s or 0.0) + (t.down_s or 0.0)
    return Timing(
        up_s=t.up_s,
        steady_check_s=t.steady_check_s,
        measured_s=t.measured_s,
        reports_s=t.reports_s,
        down_s=t.down_s,
        overhead_s=round(overhead, 3),
    )


def _mesh_detection(
    events: list[records.PlatformEventRecord], t0: float, tr: float, targets: set[str]
) -> dict[str, float | None]:
    """When the platform itself first reacted to the fault (ejection, health flip, endpoint removal)."""
    detect_kinds = {"health_check_eject", "health_check_failure", "outlier_eject", "not_ready"}
    restore_kinds = {"health_check_healthy", "outlier_uneject", "ready"}

    def hits(kinds: set[str], lo: float, hi: float) -> list[float]:
        return sorted(
            float(e.at)
            for e in events
            if e.at is not None
            and e.kind in kinds
            and lo <= float(e.at) < hi
            and (not targets or e.region in targets or e.zone in targets)
        )

    det = hits(detect_kinds, t0, tr)
    res = hits(restore_kinds, tr, math.inf)
    # Kubernetes' own detection (the node lifecycle controller) and the endpoints leaving the
    # mesh, apart from the users' view (ttd/ttr) and the load balancers' (ejections, health flips).
    node = hits({"node_not_ready"}, t0, tr)
    removed = hits({"not_ready"}, t0, tr)
    return {
        "detected_s": round(det[0] - t0, 4) if det else None,
        "restored_s": round(res[0] - tr, 4) if res else None,
        "node_not_ready_s": round(node[0] - t0, 4) if node else None,
        "endpoints_removed_s": round(removed[0] - t0, 4) if removed else None,
    }


def _details(event: records.FaultEvent, meta: records.MetaRecord) -> dict[str, Any]:
    """What the platform reported for an injection; wall times also on the drill's axis."""
    d = dict(event.details or {})
    if "expired_at_wall" in d and meta.origin_wall:
        d["expired_at_s"] = round(float(d["expired_at_wall"]) - float(meta.origin_wall), 3)
    return {"fault": event.fault.get("kind"), "target": event.fault.get("target"), **d}
