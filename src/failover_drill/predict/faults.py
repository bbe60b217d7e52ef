"""One predictor per fault kind (PREDICTORS): from the mesh policy, the topology and where the
users are, what they will see and why. Each predictor follows the request path the platforms
build (front door -> the users' region's gateway -> replicas by locality priority), so the
reasoning reads as a walk down that path."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from failover_drill.config.manifests import MeshPolicy
from failover_drill.config.topology import Topology
from failover_drill.faults.model import (
    FRONT_DOOR,
    Blackout,
    Brownout,
    CertExpiry,
    ControlPlaneLoss,
    Fault,
    LinkLatency,
    LostResponse,
    Partition,
    RegionLoss,
    ZoneLoss,
)
from failover_drill.predict.model import Bound, Expect, Prediction
from failover_drill.predict.timing import health_check_removal, kind_node, node_not_ready, readiness_removal
from failover_drill.predict.traps import ejectable, findings

NONE = Bound(0.0, 0.0)
# Fewer expected failures than this per stability window and a clean stretch is likely enough.
SPARSE_ERRORS = 10.0


@dataclass(frozen=True)
class Context:
    policy: MeshPolicy
    topo: Topology
    users: str  # the users' region
    platform: str  # sandbox | kwok | kind
    window_s: float = 1.0  # the drill's success-ratio window: TTR is known to one window
    client_timeout_s: float = 2.0
    fault_s: float | None = None  # the fault phase, for faults that last as long as they are on
    rto_s: float | None = None
    slo_pct: float = 99.9
    rate_rps: float = 200.0
    stability_s: float = 5.0

    @property
    def kube(self) -> bool:
        return self.platform in ("kwok", "kind")


def _make(
    fault: Fault,
    ctx: Context,
    expect: Expect,
    why: list[str],
    *,
    ttr: Bound | None = None,
    errors: Bound = NONE,
    decided_by: str = "",
) -> Prediction:
    # TTR is the start of the first good window, so a removal at t shows as t up to one window later.
    ttr_s = None if ttr is None else Bound(ttr.lo, ttr.hi + ctx.window_s)
    outage = ttr_s if expect == "failover" else None
    if expect == "no-recovery" and ctx.fault_s is not None:
        outage = Bound(ctx.fault_s, ctx.fault_s)
    return Prediction(
        fault=fault.label(),
        kind=fault.kind,
        profile=ctx.policy.profile,
        platform=ctx.platform,
        users=ctx.users,
        expect=expect,
        ttr_s=ttr_s,
        outage_s=outage,
        error_pct=errors,
        decided_by=decided_by or ("nothing: users are not on the fault's path" if expect == "no-outage" else ""),
        reasoning=why,
        findings=findings(ctx.policy, ctx.topo, ctx.users, ctx.rto_s),
    )


def _endpoint_removal(ctx: Context, mode: str, zone: str) -> tuple[Bound, str, str]:
    """When the lost replicas leave the gateway's endpoints: readiness on the sandbox, the node
    lifecycle controller on Kubernetes (the kubelet that would probe them is gone with the node)."""
    if ctx.kube:
        settings = ctx.topo.kwok if ctx.platform == "kwok" else kind_node()
        b, why = node_not_ready(settings, f"node {zone}")
        return b, why, "node-monitor-grace-period"
    b, why = readiness_removal(ctx.policy.readiness, mode)
    r = ctx.policy.readiness
    return b, why, f"readiness removal ({r.failure_threshold} x {r.period_s:g} s probes)"


# The platforms' (and Istio's) retryRemoteLocalities: Envoy's previous_priorities with
# update_frequency 2, so the first two attempts go to priority 0 and only the third to the next one.
ATTEMPTS_PER_PRIORITY = 2


def _budget(ctx: Context) -> tuple[float, str]:
    """How long a request may take before it fails: the gateway's route timeout or the client's, the shorter."""
    rt, client = ctx.policy.route_timeout_s, ctx.client_timeout_s
    if rt is not None and rt < client:
        return rt, f"the route's {rt:g} s timeout"
    if rt == client:
        return client, f"the route's and the client's {client:g} s timeouts"
    return client, f"the client's {client:g} s timeout"


def _leaves_locality(ctx: Context, priorities: int = 1) -> bool:
    """Retries reach the first healthy priority after `priorities` failing ones."""
    r = ctx.policy.retry
    return r is not None and r.remote_localities and r.attempts >= ATTEMPTS_PER_PRIORITY * priorities


def _stuck(ctx: Context, priorities: int) -> str:
    """Why retries do not leave the failing localities."""
    r = ctx.policy.retry
    assert r is not None
    if not r.remote_localities:
        return f"the {r.attempts} retries stay in the failing locality (no retryRemoteLocalities)"
    need = ATTEMPTS_PER_PRIORITY * priorities
    return (
        f"{r.attempts} retries are too few to leave the failing localities: retryRemoteLocalities moves on after "
        f"{ATTEMPTS_PER_PRIORITY} attempts per priority, so {priorities} failing priorities take {need} failed "
        "attempts before a retry reaches a healthy one"
    )


def _hung_retries(ctx: Context, priorities: int = 1) -> tuple[bool, str]:
    """Whether retries rescue requests to replicas that do not answer in time (hung, or slower than
    the timeouts): only if each attempt on them is cut by a per-try timeout early enough that the
    retry reaching a healthy priority (after `priorities` failing ones) still fits in the budget."""
    r = ctx.policy.retry
    budget, who = _budget(ctx)
    ptt = r.per_try_timeout_s if r is not None else None
    if r is None or ptt is None:
        return False, f"no per-try timeout: an attempt on a hung replica holds the request until {who} fails it"
    if not r.remote_localities or r.attempts < ATTEMPTS_PER_PRIORITY * priorities:
        return (
            False,
            f"each attempt is cut at the {ptt:g} s per-try timeout, but {_stuck(ctx, priorities)}",
        )
    lost = ATTEMPTS_PER_PRIORITY * priorities * ptt
    if lost >= budget:
        if ptt >= budget:
            return False, (
                f"the {ptt:g} s per-try timeout is not below {who}: the first attempt on a hung replica uses "
                "the whole budget and no retry is sent in time"
            )
        return False, (
            f"{ATTEMPTS_PER_PRIORITY * priorities} attempts on hung replicas, each cut at the {ptt:g} s per-try "
            f"timeout, take {lost:g} s before a retry reaches a healthy priority: not within {who}"
        )
    return True, (
        f"each attempt on a hung replica is cut at the {ptt:g} s per-try timeout; {r.attempts} retries with "
        f"retryRemoteLocalities reach a healthy priority after {lost:g} s, within {who}: users see latency, not errors"
    )


def _timeout_ejection(ctx: Context, hosts: int, removal: Bound | None, why: list[str]) -> tuple[Bound, str] | None:
    """Hung requests eject their replicas only if a timeout of the gateway's own (per-try or route)
    fails them: Envoy reports that timeout to outlier detection as a 504. A request the client gives
    up on first is reset, and a reset is not counted. None when no ejection is sure to happen; else
    the bound on the time to the ejection and what decides it. When the gateway's timeout and the
    client's are equal they race: the bound then runs up to `removal`, what removes the replicas
    otherwise (None: nothing does, and the ejection cannot be promised)."""
    policy, o, r = ctx.policy, ctx.policy.outlier, ctx.policy.retry
    limits = [n for n in ((o.consecutive_gateway, o.consecutive_5xx) if o is not None else ()) if n]
    if o is None or not limits or ejectable(policy, ctx.topo, ctx.users) < hosts:
        return None
    timers = [t for t in (r.per_try_timeout_s if r is not None else None, policy.route_timeout_s) if t]
    client = ctx.client_timeout_s
    if not timers or min(timers) > client:
        why.append(
            "the gateway has no timeout shorter than the client's: hung requests end when the client gives up, "
            "and outlier detection does not count a request the client reset"
        )
        return None
    timer, limit = min(timers), min(limits)
    by = f"outlier ejection on the gateway's {timer:g} s timeout"
    ejects = f"counts as a gateway error, {limit} in a row eject a replica (all {hosts} may go)"
    if timer == client:
        why.append(
            f"the gateway's {timer:g} s timeout races the client's: when the gateway's fires first it {ejects} and "
            f"traffic moves on at {timer:g} s; when the client's does, nothing is ejected"
        )
        return None if removal is None else (Bound(timer, removal.hi), by)
    why.append(
        f"the gateway's {timer:g} s timeout fails each hung request before the client gives up and {ejects}: "
        f"requests sent in the first {timer:g} s fail, then traffic moves on"
    )
    return Bound(timer, timer), by


def zone_loss(fault: ZoneLoss, ctx: Context) -> Prediction:
    zone, mode = fault.target or "", fault.mode
    topo, policy, users = ctx.topo, ctx.policy, ctx.users
    region = topo.zone_region(zone)
    why = [f"users in {users} reach {users}'s gateway through the front door"]
    if region != users:
        why.append(f"{zone} is in {region}: {users}'s gateway sends there only when {users} has no ready replica")
        return _make(fault, ctx, "no-outage", why)
    zones = topo.region(users).zone_names()
    rpz = topo.replicas_per_zone
    if len(zones) == 1 and len(topo.regions) == 1:
        return _nowhere(fault, ctx, why, reason=f"{zone} is the only zone of the only region: no replica is left")
    removal, removal_why, decided = _endpoint_removal(ctx, mode, zone)
    if policy.mesh == "istio" and policy.locality_enabled:
        home = topo.home_zone(users)
        why.append(f"locality load balancing: priority 0 is the gateway's own zone {home}")
        if zone != home:
            why.append(f"{zone} is priority 1: it gets traffic only when {home} has none")
            return _make(fault, ctx, "no-outage", why)
        why.append(f"{zone} carries every request of {users}'s users; its {rpz} replica(s) {_verb(mode)}")
        r, o = policy.retry, policy.outlier
        if mode == "kill" and _leaves_locality(ctx):
            assert r is not None
            why.append(
                f"each attempt on a lost replica is refused at once; {r.attempts} retries with retryRemoteLocalities "
                "reach priority 1 after the zone's replicas: users see latency, not errors"
            )
            if o is not None and ejectable(policy, topo, users) >= rpz:
                why.append("outlier detection ejects the zone's replicas after their first failures")
            return _make(fault, ctx, "no-outage", why, decided_by="retries across localities")
        if mode == "freeze":
            saved, said = _hung_retries(ctx)
            why.append(said)
            if saved:
                if o is not None and ejectable(policy, topo, users) >= rpz:
                    why.append("outlier detection ejects the zone's replicas after their first timeouts")
                return _make(fault, ctx, "no-outage", why, decided_by="retries across localities")
        if o is not None and ejectable(policy, topo, users) >= rpz and mode == "kill":
            limit = o.consecutive_gateway or o.consecutive_5xx
            why.append(
                f"outlier detection ejects each replica after {limit} consecutive failure(s) "
                f"(maxEjectionPercent {o.max_ejection_pct}% allows the whole zone): a burst of errors, then priority 1"
            )
            burst = Bound(0.0, ctx.window_s)
            return _make(fault, ctx, "failover", why, ttr=burst, errors=Bound(100, 100), decided_by="outlier ejection")
        if o is not None and ejectable(policy, topo, users) < rpz:
            why.append(
                f"outlier detection cannot move the traffic: at most {ejectable(policy, topo, users)} host(s) "
                f"may be ejected, the zone has {rpz}"
            )
        if r is not None and not r.remote_localities:
            why.append("retries stay in priority 0, among the zone's own lost replicas")
        if mode == "freeze":
            ejected = _timeout_ejection(ctx, rpz, removal, why)
            if ejected is not None:
                ttr, by = ejected
                return _make(
                    fault, ctx, "failover", why, ttr=ttr, errors=Bound(100, 100), decided_by=f"{by} or {decided}"
                )
        why.append(removal_why)
        why.append(f"with priority 0 empty the gateway sends to priority 1: recovered at {removal.text()}")
        return _make(fault, ctx, "failover", why, ttr=removal, errors=Bound(100, 100), decided_by=decided)
    # Cilium (affinity local), or Istio without locality: every local zone shares the traffic.
    share = 100.0 / len(zones)
    spread = "Cilium's global service (affinity local)" if policy.mesh == "cilium" else "no locality failover"
    why.append(f"{spread}: {users}'s {len(zones)} zones share its users' requests, {share:.3g}% each")
    if policy.mesh == "cilium":
        why.append("Cilium has no retries and no outlier detection: each request on a lost replica fails")
    why.append(removal_why)
    why.append(f"the remaining zones take all requests once the endpoints are removed: {removal.text()}")
    return _make(fault, ctx, "failover", why, ttr=removal, errors=Bound(share, share), decided_by=decided)


def region_loss(fault: RegionLoss, ctx: Context) -> Prediction:
    region, users = fault.target, ctx.users
    why = [f"users in {users} reach {users}'s gateway through the front door (priority 0 of their route)"]
    if region != users:
        why.append(f"{region} is not on their path: {users}'s gateway serves from {users}")
        return _make(fault, ctx, "no-outage", why)
    how = "timeout" if fault.mode == "freeze" else "refused"
    b, hc = health_check_removal(ctx.policy.front_door, how)
    lost = "hangs" if fault.mode == "freeze" else "is gone: connections are refused"
    why.append(f"the gateway of {users} {lost}; the front door has no retries, so every request fails")
    nearest = _next_region(ctx)
    if nearest is None:
        return _nowhere(fault, ctx, why)
    why.append(hc)
    why.append(f"then the front door sends them to the next-nearest region {nearest}: recovered at {b.text()}")
    fd = ctx.policy.front_door
    return _make(
        fault,
        ctx,
        "failover",
        why,
        ttr=b,
        errors=Bound(100, 100),
        decided_by=f"front door health check ({fd.unhealthy_threshold} x {fd.interval_s:g} s)",
    )


def _next_region(ctx: Context) -> str | None:
    return next((r for r in ctx.topo.nearest(ctx.users) if r != ctx.users), None)


def _nowhere(fault: Fault, ctx: Context, why: list[str], after_s: float = 0.0, reason: str = "") -> Prediction:
    """The users' region is the only one: the front door has no other backend to send them to."""
    why.append(
        (reason or f"{ctx.users} is the topology's only region: the front door has no other region to send users to")
        + ", so every request fails until the fault is reverted"
    )
    p = _make(fault, ctx, "no-recovery", why, errors=Bound(100, 100), decided_by="one region: nowhere to fail over")
    if after_s and ctx.fault_s is not None:
        p.outage_s = Bound(max(0.0, ctx.fault_s - after_s), max(0.0, ctx.fault_s - after_s))
    return p


def partition(fault: Partition, ctx: Context) -> Prediction:
    src, dst, users = fault.source or FRONT_DOOR, fault.target, ctx.users
    why = [f"users in {users} reach {users}'s gateway through the front door"]
    if src != FRONT_DOOR or dst != users:
        why.append(f"the cut {src} -> {dst} is not on that path: {users}'s gateway serves from {users}")
        return _make(fault, ctx, "no-outage", why)
    b, hc = health_check_removal(ctx.policy.front_door, "timeout")
    why.append(f"nothing from the front door reaches {dst}: requests and health checks hang")
    nearest = _next_region(ctx)
    if nearest is None:
        return _nowhere(fault, ctx, why)
    why.append(hc)
    why.append(f"then the front door sends users to the next-nearest region {nearest}: recovered at {b.text()}")
    fd = ctx.policy.front_door
    return _make(
        fault,
        ctx,
        "failover",
        why,
        ttr=b,
        errors=Bound(100, 100),
        decided_by=f"front door health check timeouts ({fd.unhealthy_threshold} x {fd.timeout_s:g} s)",
    )


def cert_expiry(fault: CertExpiry, ctx: Context) -> Prediction:
    region, users = fault.target, ctx.users
    why = [f"the front door validates {region}'s gateway certificate on every new connection"]
    if region != users:
        why.append(f"users in {users} are served by {users}'s gateway: {region}'s certificate is not on their path")
        return _make(fault, ctx, "no-outage", why)
    lapse = fault.ttl_s if fault.cert == "rotation-stopped" else 0.0
    if lapse:
        why.append(f"rotation stopped: the last certificate lapses {lapse:g} s after the injection")
    b, hc = health_check_removal(ctx.policy.front_door, "refused")
    why.append("handshakes with the expired chain fail at once, health checks included (a new connection each)")
    nearest = _next_region(ctx)
    if nearest is None:
        return _nowhere(fault, ctx, why, after_s=lapse)
    why.append(hc)
    why.append(f"then the front door sends users to the next-nearest region {nearest}")
    ttr = b.shift(lapse)
    return _make(fault, ctx, "failover", why, ttr=ttr, errors=Bound(100, 100), decided_by="front door health check")


def control_plane_loss(fault: ControlPlaneLoss, ctx: Context) -> Prediction:
    why = [
        f"{fault.target}'s control plane stops: its gateway keeps the last endpoints it was given, and "
        "every replica is still up",
        "nothing on the request path changes: no outage (endpoint changes wait for the revert)",
    ]
    return _make(fault, ctx, "no-outage", why, decided_by="the data plane keeps serving")


def link_latency(fault: LinkLatency, ctx: Context) -> Prediction:
    src, dst, users = fault.source or "*", fault.target, ctx.users
    on_path = dst == users and src in ("*", FRONT_DOOR)
    why = [f"users in {users} reach {users}'s gateway through the front door"]
    if not on_path:
        why.append(f"the delay {src} -> {dst} is not on that path: no outage, no added latency")
        return _make(fault, ctx, "no-outage", why)
    top = fault.delay_ms * (1 + fault.jitter_pct / 200)
    if top / 1000 >= ctx.client_timeout_s:
        why.append(
            f"{fault.delay_ms:g} ms more on every request exceeds the client's {ctx.client_timeout_s:g} s timeout, "
            "and no health check fails on latency: every request times out while the fault is on"
        )
        return _make(fault, ctx, "no-recovery", why, errors=Bound(100, 100), decided_by="client timeout")
    why.append(
        f"every request of theirs waits {fault.delay_ms:g} ms more; under the {ctx.client_timeout_s:g} s timeout "
        "nothing fails and no health check reacts to latency: no outage, latency up by the delay"
    )
    return _make(fault, ctx, "no-outage", why, decided_by="latency under the timeouts")


def _path_share(target: str, ctx: Context) -> float:
    """The share (%) of the users' requests that reach a zone or region (before retries)."""
    topo, users = ctx.topo, ctx.users
    if target == users:
        return 100.0
    if topo.zone_region(target) != users:
        return 0.0
    if ctx.policy.mesh == "istio" and ctx.policy.locality_enabled:
        return 100.0 if target == topo.home_zone(users) else 0.0
    return 100.0 / len(topo.region(users).zones)


def _retries_503(ctx: Context) -> bool:
    r = ctx.policy.retry
    return r is not None and (
        bool({"5xx", "gateway-error"} & set(r.retry_on))
        or ("retriable-status-codes" in r.retry_on and 503 in r.retriable_status_codes)
    )


def _attempt_limit(ctx: Context) -> tuple[float, str]:
    """How long one attempt may take before something fails it: the gateway's per-try timeout, the
    route's or the client's, the shortest."""
    budget, who = _budget(ctx)
    r = ctx.policy.retry
    ptt = r.per_try_timeout_s if r is not None and ctx.policy.mesh == "istio" else None
    if ptt is not None and ptt < budget:
        return ptt, f"the {ptt:g} s per-try timeout"
    return budget, who


def brownout(fault: Brownout, ctx: Context) -> Prediction:
    target = fault.target or ""
    share = _path_share(target, ctx)
    why = [f"{share:.3g}% of {ctx.users}'s users' requests reach {target}"]
    if share == 0:
        return _make(fault, ctx, "no-outage", why)
    limit, limit_who = _attempt_limit(ctx)
    if fault.delay_ms / 1000 >= limit:
        why.append(
            f"{fault.delay_ms:g} ms on every request there is not under {limit_who}: each attempt there times out, "
            "while /healthz answers at once, so neither readiness nor the front door's health check reacts"
        )
        return _all_fail(fault, ctx, share, why, hung=True)
    if fault.fail_pct <= 0:
        why.append(f"{fault.delay_ms:g} ms slower, under {limit_who}, no failures: no health check or ejection reacts")
        return _make(fault, ctx, "no-outage", why, decided_by="latency only")
    if fault.fail_pct >= 100:
        why.append("every request there fails with 503 while /healthz still answers: health checks pass")
        return _all_fail(fault, ctx, share, why, hung=False)
    why.append(f"{fault.fail_pct:g}% of those fail with 503 while /healthz still answers: health checks pass")
    r = ctx.policy.retry
    fail = share * fault.fail_pct / 100
    retried = _retries_503(ctx)
    if r is not None and retried and r.remote_localities:
        why.append(f"503s are retried ({r.attempts}x) with retryRemoteLocalities: the retry reaches a healthy locality")
        return _make(fault, ctx, "no-outage", why, decided_by="retries across localities")
    if r is not None and retried:
        why.append(f"503s are retried ({r.attempts}x) on hosts of the same locality, which fail alike")
        fail = fail * (fault.fail_pct / 100) ** r.attempts
    if fail > 100 - ctx.slo_pct:
        why.append(
            f"about {fail:.2g}% of requests fail throughout; consecutive-5xx ejection needs failures in a row, "
            "which a share of failures rarely gives: no recovery while the fault is on"
        )
        sparse = _sparse(fail, ctx, why)
        p = _make(fault, ctx, "no-recovery", why, errors=Bound(0, fail), decided_by="gray failure")
        p.sparse = sparse
        return p
    why.append(f"about {fail:.2g}% of requests fail: within the SLO's budget")
    return _make(fault, ctx, "no-outage", why, decided_by="retries")


def _all_fail(fault: Brownout, ctx: Context, share: float, why: list[str], *, hung: bool) -> Prediction:
    """Every request that reaches the brownout's target fails: with a fast 503 (hung=False) or a
    timeout (hung=True). Its replicas stay ready, so only the mesh can move the traffic: retries to
    other localities, or outlier detection ejecting them; otherwise their share fails for as long
    as the fault is on."""
    topo, policy, users = ctx.topo, ctx.policy, ctx.users
    target = fault.target or ""
    whole_region = target == users
    zones = len(topo.region(users).zones)
    hosts = topo.replicas_per_zone * (zones if whole_region else 1)
    if whole_region and len(topo.regions) == 1:
        why.append(f"{users} is the only region: there is no healthy replica to retry on or fail over to")
        return _make(
            fault, ctx, "no-recovery", why, errors=Bound(share, share), decided_by="one region: nowhere to fail over"
        )
    if policy.mesh == "istio" and policy.locality_enabled:
        # Whole region: its home zone is priority 0 and its other zones priority 1, both failing.
        priorities = 2 if whole_region and zones > 1 else 1
        delay_s = fault.delay_ms / 1000
        if hung:
            saved, said = _hung_retries(ctx, priorities)
            why.append(said)
            if saved:
                return _make(fault, ctx, "no-outage", why, decided_by="retries across localities")
            ejected = _timeout_ejection(ctx, hosts, None, why)
            if ejected is not None:
                ttr, by = ejected
                why.append(f"the gateway sends to the next healthy priority: recovered at {ttr.text()}")
                return _make(fault, ctx, "failover", why, ttr=ttr, errors=Bound(share, share), decided_by=by)
        else:
            r, o = policy.retry, policy.outlier
            budget, _ = _budget(ctx)
            tries = ATTEMPTS_PER_PRIORITY * priorities
            if _retries_503(ctx) and _leaves_locality(ctx, priorities) and tries * delay_s < budget:
                assert r is not None
                why.append(
                    f"503s are retried ({r.attempts}x) with retryRemoteLocalities: after {tries} failed attempts the "
                    "retry reaches a healthy priority: users see latency, not errors"
                )
                return _make(fault, ctx, "no-outage", why, decided_by="retries across localities")
            if r is not None and _retries_503(ctx):
                why.append(f"503s are retried, but {_stuck(ctx, priorities)}")
            limits = [n for n in ((o.consecutive_gateway, o.consecutive_5xx) if o is not None else ()) if n]
            cap = ejectable(policy, topo, users)
            if o is not None and limits and cap >= hosts:
                why.append(
                    f"outlier detection ejects each replica after {min(limits)} consecutive 5xx (maxEjectionPercent "
                    f"{o.max_ejection_pct}% allows all {hosts}): a burst of errors, then the next healthy priority"
                )
                burst = Bound(0.0, 0.0)
                return _make(
                    fault, ctx, "failover", why, ttr=burst, errors=Bound(share, share), decided_by="outlier ejection"
                )
            if o is not None and limits:
                why.append(
                    f"outlier detection cannot move the traffic: at most {cap} host(s) may be ejected, the target has {hosts}"
                )
        why.append(f"about {share:.3g}% of requests fail for as long as the fault is on")
        return _make(fault, ctx, "no-recovery", why, errors=Bound(share, share), decided_by="replicas that stay ready")
    # Cilium, or Istio without locality failover: every local zone shares the traffic, and the
    # target's share of it fails, less what Istio's retries and ejection recover (Cilium has neither).
    if policy.mesh != "istio":
        why.append(
            "Cilium has no retries and no outlier detection: each request there fails, and the replicas stay ready"
        )
        why.append(f"about {share:.3g}% of requests fail for as long as the fault is on")
        return _make(fault, ctx, "no-recovery", why, errors=Bound(share, share), decided_by="replicas that stay ready")
    r, o = policy.retry, policy.outlier
    budget, _ = _budget(ctx)
    ptt = r.per_try_timeout_s if r is not None else None
    retried = r is not None and r.attempts > 0 and ((ptt is not None and ptt < budget) if hung else _retries_503(ctx))
    fail = share
    if retried:
        assert r is not None
        fail = share * (share / 100) ** r.attempts
        why.append(
            f"each of {r.attempts} retries lands on another host of the one priority: about {fail:.2g}% still fail"
        )
        if fail <= 100 - ctx.slo_pct:
            return _make(fault, ctx, "no-outage", why, decided_by="retries")
    if hung:
        ejected = _timeout_ejection(ctx, hosts, None, why)
        if ejected is not None:
            ttr, by = ejected
            return _make(fault, ctx, "failover", why, ttr=ttr, errors=Bound(fail, fail), decided_by=by)
    else:
        limits = [n for n in ((o.consecutive_gateway, o.consecutive_5xx) if o is not None else ()) if n]
        if o is not None and limits and ejectable(policy, topo, users) >= hosts:
            why.append(f"outlier detection ejects each replica after {min(limits)} consecutive 5xx: a burst of errors")
            return _make(
                fault,
                ctx,
                "failover",
                why,
                ttr=Bound(0.0, 0.0),
                errors=Bound(fail, fail),
                decided_by="outlier ejection",
            )
    why.append(f"about {fail:.3g}% of requests fail for as long as the fault is on")
    return _make(fault, ctx, "no-recovery", why, errors=Bound(fail, fail), decided_by="replicas that stay ready")


def _sparse(fail_pct: float, ctx: Context, why: list[str]) -> bool:
    per_window = ctx.rate_rps * ctx.stability_s * fail_pct / 100
    if per_window >= SPARSE_ERRORS:
        return False
    why.append(
        f"at {ctx.rate_rps:g} req/s that is about {per_window:.2g} failure(s) per {ctx.stability_s:g} s stability "
        "window: the drill may read a clean stretch between them as a recovery, which says the same"
    )
    return True


def lost_response(fault: LostResponse, ctx: Context) -> Prediction:
    target = fault.target or ""
    share = _path_share(target, ctx)
    why = [f"{share:.3g}% of {ctx.users}'s users' requests reach {target}"]
    if share == 0:
        return _make(fault, ctx, "no-outage", why)
    fail = share * fault.fail_pct / 100
    r = ctx.policy.retry
    timeout_retried = r is not None and bool({"5xx", "gateway-error", "reset"} & set(r.retry_on))
    if r is not None and r.per_try_timeout_s is not None and timeout_retried and r.per_try_timeout_s < _budget(ctx)[0]:
        why.append(
            f"{fault.fail_pct:g}% of those are charged and never answered; the gateway cuts each at its "
            f"{r.per_try_timeout_s:g} s per-try timeout and retries another replica, under the same idempotency key: "
            "users get their answer late, and the region's ledger keeps one charge"
        )
        return _make(fault, ctx, "no-outage", why, decided_by="per-try timeout and retries")
    why.append(
        f"{fault.fail_pct:g}% of those are charged and never answered: the client times out after "
        f"{ctx.client_timeout_s:g} s; no health check or ejection sees a missing answer"
    )
    why.append(f"about {fail:.2g}% of requests fail throughout, each one a payment charged with no answer")
    return _make(fault, ctx, "no-recovery", why, errors=Bound(fail, fail), decided_by="lost answers")


def blackout(fault: Blackout, ctx: Context) -> Prediction:
    why = ["the front door itself answers 503 to everyone: there is nowhere to fail over to"]
    return _make(fault, ctx, "no-recovery", why, errors=Bound(100, 100), decided_by="the fault is the outage")


def _verb(mode: str) -> str:
    return "hang (SIGSTOP)" if mode == "freeze" else "are killed"


PREDICTORS: dict[type[Any], Callable[[Any, Context], Prediction]] = {
    ZoneLoss: zone_loss,
    RegionLoss: region_loss,
    Partition: partition,
    CertExpiry: cert_expiry,
    ControlPlaneLoss: control_plane_loss,
    LinkLatency: link_latency,
    Brownout: brownout,
    LostResponse: lost_response,
    Blackout: blackout,
}


def predict(fault: Fault, ctx: Context) -> Prediction:
    """The prediction for one resolved fault (targets filled in from the topology)."""
    return PREDICTORS[type(fault)](fault, ctx)
