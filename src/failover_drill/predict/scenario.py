"""Predictions for what a drill (or `failover-drill predict`) runs: the scenario's faults, or
every kind in the catalogue, against the mesh profile's manifests."""

from __future__ import annotations

import math

from failover_drill.config.manifests import MeshPolicy, load_policy
from failover_drill.config.scenario import Scenario
from failover_drill.config.topology import Topology
from failover_drill.faults.catalogue import resolve
from failover_drill.faults.model import KIND_MODELS, Fault, parse_fault
from failover_drill.predict.faults import Context, predict
from failover_drill.predict.model import Prediction


def context(
    sc: Scenario, topo: Topology, platform: str, policy: MeshPolicy | None = None, max_outage_s: float | None = None
) -> Context:
    """What the predictions need from a drill's scenario; `max_outage_s` (predict --max-outage) is
    the budget the traps judge readiness against instead of the scenario's recovery objective."""
    return Context(
        policy=policy or load_policy(topo.manifests_dir(), topo.mesh),
        topo=topo,
        users=sc.region,
        platform=platform,
        window_s=sc.slo.window_s,
        client_timeout_s=sc.traffic.timeout_s,
        fault_s=sc.phases.fault_s,
        rto_s=max_outage_s if max_outage_s is not None else sc.limits.rto_s,
        slo_pct=sc.slo.target_pct,
        rate_rps=sc.traffic.rate_rps,
        stability_s=sc.slo.stability_s,
    )


def for_faults(faults: list[Fault], ctx: Context) -> list[Prediction]:
    return [predict(f, ctx) for f in faults]


def every_kind(ctx: Context) -> list[Prediction]:
    """Each kind of the catalogue with its defaults, aimed at the users' region."""
    return [predict(resolve(parse_fault({"kind": kind}), ctx.topo, ctx.users), ctx) for kind in KIND_MODELS]


def infrastructure_kinds() -> list[str]:
    """The kinds a configuration is expected to fail over from (what `--max-outage` checks by
    default): not the ones that by design leave nothing to fail over to (a blackout, answers
    lost, a share of gray failures no health check sees)."""
    return [k for k, m in KIND_MODELS.items() if m.model_validate({"kind": k}).recovers_while_on()]


def unseen_failover(p: Prediction, fault: Fault, fault_phase_s: float) -> str | None:
    """A warning for a drill whose fault is reverted before its predicted failover can be over: it
    would report "not recovered" for a fleet that does recover, only later than the drill looked
    (a kwok zone loss waits out the 50 s node-monitor grace period, v1.36's default; the fault phase is 25 s)."""
    if p.ttr_s is None:
        return None
    active_s = fault.duration_s if fault.duration_s is not None else fault_phase_s - fault.at_s
    if p.ttr_s.hi <= active_s:
        return None
    need_s = _room(p.ttr_s.hi)
    fix = (
        f"give the fault a duration_s of {need_s:g} or more"
        if fault.duration_s is not None
        else f"--set phases.fault_s={need_s + fault.at_s:g} gives it room"
    )
    return (
        f"warning: {p.fault} is predicted to fail over in {p.ttr_s.text()} ({p.decided_by}), but it is "
        f"reverted after {active_s:g} s: this drill will likely see no recovery; {fix}"
    )


def _room(ttr_hi_s: float) -> float:
    """Time for the slowest predicted failover and a stretch of recovered traffic after it."""
    return math.ceil((ttr_hi_s + 10.0) / 5.0) * 5.0


def sized_fault_phase(sc: Scenario, faults: list[Fault], ctx: Context) -> tuple[Scenario, str | None]:
    """sc with a fault phase long enough to see each fault's slowest predicted failover (faults
    that last as long as the phase only), and a line saying so when it had to be lengthened: for a
    drill whose user left the fault phase at its default."""
    need = sc.phases.fault_s
    why = ""
    for p, fault in zip(for_faults(faults, ctx), faults, strict=True):
        if p.ttr_s is None or fault.duration_s is not None:
            continue
        room = fault.at_s + _room(p.ttr_s.hi)
        if p.ttr_s.hi > sc.phases.fault_s - fault.at_s and room > need:
            need, why = room, f"{p.fault} is predicted to fail over in {p.ttr_s.text()} ({p.decided_by})"
    if not why:
        return sc, None
    longer = sc.model_copy(update={"phases": sc.phases.model_copy(update={"fault_s": need})})
    return longer, f"fault phase lengthened to {need:g} s: {why}; --set phases.fault_s=N chooses it"
