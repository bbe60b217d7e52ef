"""Faults on kind (one handler per fault type, TABLE), with the same names and meaning as on the sandbox:

- zone-loss / region-loss: the zone's (region's) node containers are killed (`docker kill`,
  a crash) or paused (`docker pause`, a hang); revert starts / unpauses them;
- link-latency / partition: `tc netem` inside the node containers (FACTS.md: needs sch_netem on
  the host). Each node's egress has a prio qdisc with one band per source (every other region
  and the front door), filtered by the source's node addresses; the topology's baseline RTT
  sits on one side of each pair, a fault changes the band's netem in place (delay with netem's
  own jitter, or 100% loss for a partition: packets dropped, so peers time out);
- control-plane-loss: istiod (Istio) or clustermesh-apiserver (Cilium) scaled to 0 through the API;
- brownout / lost-response: the replicas' own fault switch, through an exec into each pod of the
  zone or region (listed through the API; the exec through the API server, as `kubectl exec`);
- blackout: the host front door's abort runtime key, as on the sandbox;
- cert-expiry (Istio): the region's ingress gateway certificate (the edge secret, from the mesh CA)
  is replaced by an expired leaf, a leaf under an expired intermediate, or a leaf that lapses
  after ttl_s; istiod pushes the secret to the gateway over SDS. The front door validates that
  chain, so the region fails its handshakes either way: Envoy rejects the expired chain, or, as
  Istio >= 1.18 does, the gateway refuses to load it and has nothing to serve (istio/istio#47104).
  The secret is replaced whole through the API; revert replaces it with a fresh leaf from the
  region's intermediate. Cilium Cluster Mesh puts no
  certificate on the request path here, so cert-expiry is refused there.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from failover_drill.config.topology import Topology
from failover_drill.errors import DrillError, FaultError, PlatformError
from failover_drill.faults.ledger import Entry
from failover_drill.faults.model import (
    FRONT_DOOR,
    Blackout,
    Brownout,
    CertExpiry,
    CertVariant,
    ControlPlaneLoss,
    Fault,
    LinkLatency,
    LostResponse,
    Mode,
    Partition,
    RegionLoss,
    ZoneLoss,
)
from failover_drill.platforms.envoy import admin
from failover_drill.platforms.fault_table import FaultTable, Handler, Plan
from failover_drill.platforms.kind import api
from failover_drill.platforms.kind.cluster_config import all_nodes, names, zone_nodes
from failover_drill.platforms.kind.commands import AnyStep, ApiStep, Runner, Step
from failover_drill.platforms.kind.mesh import edge_leaf, edge_secret, repair_moved_steps
from failover_drill.platforms.kind.netem import (
    band,
    band_netem,
    baseline_ms,
    latency_setup_steps,
    link_directions,
    netem,
    node_ips,
    pod_tools,
    read_addresses,
    sources,
)
from failover_drill.platforms.kind.workload import EDGE_SECRET
from failover_drill.platforms.kube.workload import APP, NAMESPACE
from failover_drill.platforms.pki import Issued, MeshCA


@dataclass
class KindFleet:
    """The kind fleet as a fault sees it. The front door's admin port is None in a dry-run plan."""

    topo: Topology
    run: Runner
    frontdoor_admin_port: int | None = None
    pki_dir: Path | None = None

    def ca(self) -> MeshCA:
        if self.pki_dir is None or not (self.pki_dir / "root-cert.pem").exists():
            raise FaultError(
                "cert-expiry needs the mesh CA the kind fleet was brought up with, and it is missing",
                hint="bring the fleet up again: `failover-drill up --platform kind`",
            )
        return MeshCA(self.pki_dir)

    def edge_step(self, region: str, leaf: Issued, what: str) -> ApiStep:
        ctx = names(self.topo)[region].context
        return api.replace_secret(ctx, f"{region}: {EDGE_SECRET} <- {what}", edge_secret(leaf))

    def region_of(self, label: str, target: str) -> str:
        region = target if target in self.topo.region_names else self.topo.zone_region(target)
        if region is None:
            raise FaultError(f"{label}: {target!r} is neither a region nor a zone of this topology")
        return region


class StepHandler(Handler[Any, Any]):
    """A fault on kind is a list of steps (docker and tc commands, API operations through the kube
    layer, exec into pods among them): run on inject and revert, and printed by `failover-drill
    plan` without running."""

    def __init__(self, fleet: KindFleet) -> None:
        self.fleet = fleet

    def inject_steps(self, fault: Any, plan: Any) -> tuple[list[AnyStep], dict[str, Any]]:
        raise NotImplementedError

    def revert_steps(self, fault: Any, plan: Any) -> list[AnyStep]:
        raise NotImplementedError

    def after_revert_steps(self, fault: Any, plan: Any) -> list[AnyStep]:
        """What the revert's own steps leave to put right, decided once they ran (queries go
        through the fleet's runner): e.g. the latency layout of restarted node containers."""
        return []

    def inject(self, fault: Any, plan: Any) -> dict[str, Any]:
        steps, details = self.inject_steps(fault, plan)
        for step in steps:
            self.fleet.run.run(step)
        return {**plan.model_dump(mode="json"), **details}

    def revert(self, fault: Any, plan: Any) -> None:
        try:
            for step in self.revert_steps(fault, plan):
                self.fleet.run.run(step)
            for step in self.after_revert_steps(fault, plan):
                self.fleet.run.run(step)
        except PlatformError as exc:
            raise FaultError(f"could not revert {fault.label()}: {exc.message}", hint=exc.hint) from None


# -- zone and region loss: the node containers ----------------------------------------------------
class NodePlan(Plan):
    nodes: list[str]
    mode: Mode
    # Every node's kind-network address before the fault (None in plans saved before it was kept):
    # a restarted container may come back at another one.
    addresses: dict[str, str] | None = None


class _NodeLoss(StepHandler):
    plan_type = NodePlan

    def nodes(self, fault: Any) -> list[str]:
        raise NotImplementedError

    def plan(self, fault: Any) -> NodePlan:
        addresses = node_ips(self.fleet.topo, self.fleet.run) if fault.mode != "freeze" else None
        return NodePlan(nodes=self.nodes(fault), mode=fault.mode, addresses=addresses)

    def inject_steps(self, fault: Any, plan: NodePlan) -> tuple[list[AnyStep], dict[str, Any]]:
        verb = "pause" if plan.mode == "freeze" else "kill"
        return [Step(f"{verb} node {n}", ("docker", verb, n), timeout_s=60) for n in plan.nodes], {}

    def revert_steps(self, fault: Any, plan: NodePlan) -> list[AnyStep]:
        if plan.mode == "freeze":
            return [Step(f"unpause node {n}", ("docker", "unpause", n), ok_to_fail=True) for n in plan.nodes]
        return [Step(f"start node {n}", ("docker", "start", n), timeout_s=120, ok_to_fail=True) for n in plan.nodes]

    def after_revert_steps(self, fault: Any, plan: NodePlan) -> list[AnyStep]:
        """A restarted node container has a fresh network namespace: its netem layout is gone.
        Only those nodes are laid out again, so the other nodes keep their baselines and any
        other link fault in force (re-laying every node cost ~170 docker execs and briefly
        removed both). If a restarted node came back at another address, the other nodes'
        filters and the other clusters' view of it (Istio's remote secrets, Cilium's Cluster
        Mesh configuration) name the old one: then every node is laid out again and the mesh
        pointed at the new address."""
        if plan.mode == "freeze":
            return []
        topo, run = self.fleet.topo, self.fleet.run
        now = node_ips(topo, run)
        before = plan.addresses
        moved = {n: now[n] for n in plan.nodes if before and n in now and before.get(n) not in (None, now[n])}
        layout = latency_setup_steps(topo, read_addresses(topo, run, ips=now))
        if before is None or moved:
            # Unknown (an older plan) or moved: every node's filters are rebuilt from the addresses now.
            return [*layout, *repair_moved_steps(topo, moved)]
        restarted = set(plan.nodes)
        return [s for s in layout if isinstance(s, Step) and s.argv[2] in restarted]


class RegionLossHandler(_NodeLoss):
    def nodes(self, fault: RegionLoss) -> list[str]:
        assert fault.target is not None
        return all_nodes(self.fleet.topo, self.fleet.region_of(fault.label(), fault.target))


class ZoneLossHandler(_NodeLoss):
    def nodes(self, fault: ZoneLoss) -> list[str]:
        t = fault.target
        assert t is not None
        topo = self.fleet.topo
        if t in topo.region_names:
            return [n for ns in zone_nodes(topo, t).values() for n in ns]
        return zone_nodes(topo, self.fleet.region_of(fault.label(), t))[t]


# -- links: netem bands in the node containers ----------------------------------------------------
class LinkPlan(Plan):
    # (node region, source, netem args while the fault is on)
    links: list[tuple[str, str, list[str]]]


class _LinkHandler(StepHandler):
    plan_type = LinkPlan

    def links(self, fault: Any) -> list[tuple[str, str, tuple[str, ...]]]:
        raise NotImplementedError

    def plan(self, fault: Any) -> LinkPlan:
        return LinkPlan(links=[(r, s, list(a)) for r, s, a in self.links(fault)])

    def _steps(self, links: list[tuple[str, str, tuple[str, ...]]], ok_to_fail: bool = False) -> list[AnyStep]:
        steps: list[AnyStep] = []
        for region, src, args in links:
            cls, handle = band(self.fleet.topo, src)
            steps += [
                band_netem(node, "change", cls, handle, args, ok_to_fail=ok_to_fail)
                for node in all_nodes(self.fleet.topo, region)
            ]
        return steps

    def inject_steps(self, fault: Any, plan: LinkPlan) -> tuple[list[AnyStep], dict[str, Any]]:
        return self._steps([(r, s, tuple(a)) for r, s, a in plan.links]), {}

    def revert_steps(self, fault: Any, plan: LinkPlan) -> list[AnyStep]:
        base = [(r, s, netem(baseline_ms(self.fleet.topo, r, s))) for r, s, _ in plan.links]
        return self._steps(base, ok_to_fail=True)


class LinkLatencyHandler(_LinkHandler):
    def links(self, fault: LinkLatency) -> list[tuple[str, str, tuple[str, ...]]]:
        dst, src = fault.target, fault.source or "*"
        assert dst is not None
        out = []
        for s in sources(self.fleet.topo) if src == "*" else [src]:
            if s == dst:
                continue
            base = baseline_ms(self.fleet.topo, dst, s)
            out.append((dst, s, netem(base + fault.delay_ms, fault.delay_ms * fault.jitter_pct / 100)))
        return out


class PartitionHandler(_LinkHandler):
    def links(self, fault: Partition) -> list[tuple[str, str, tuple[str, ...]]]:
        dst, src = fault.target, fault.source or FRONT_DOOR
        assert dst is not None
        if src == FRONT_DOOR:
            return [(dst, FRONT_DOOR, netem(loss=True))]
        return [(dst, src, netem(loss=True)), (src, dst, netem(loss=True))]


# -- what the fault ledger says is in force (status) ------------------------------------------------
def netem_effect(args: Sequence[str]) -> dict[str, float]:
    """delay_ms, jitter_ms and loss_pct of a band's netem arguments, as netem() writes them."""
    out = {"delay_ms": 0.0, "jitter_ms": 0.0, "loss_pct": 0.0}
    if "loss" in args:
        out["loss_pct"] = float(args[args.index("loss") + 1].removesuffix("%"))
    if "delay" in args:
        i = args.index("delay")
        out["delay_ms"] = float(args[i + 1].removesuffix("ms"))
        if len(args) > i + 2 and args[i + 2].endswith("ms"):
            out["jitter_ms"] = float(args[i + 2].removesuffix("ms"))
    return out


def _label(entry: Entry) -> tuple[Fault | None, str]:
    try:
        fault = entry.spec()
    except (DrillError, ValueError):  # a record this version cannot read: still named
        return None, f"{entry.fault.get('kind', '?')} (unreadable record)"
    return fault, fault.label()


def faults_in_force(entries: list[Entry]) -> list[dict[str, Any]]:
    """The kind faults the ledger holds open (injecting: an inject under way, or one that stopped
    halfway and is revertible all the same), oldest first."""
    out = []
    for e in sorted(
        (e for e in entries if e.platform == "kind" and e.state != "reverted"), key=lambda e: e.created_wall
    ):
        fault, label = _label(e)
        out.append(
            {
                "id": e.id,
                "label": label,
                "kind": fault.kind if fault else e.fault.get("kind"),
                "state": e.state,
                "since_wall": e.created_wall,
                "owner_pid": e.owner_pid,
                "lease_expires_wall": e.lease_expires_wall,
                "error": e.error,
            }
        )
    return out


@dataclass(frozen=True)
class _BandChange:
    wall: float
    inject: bool  # else a revert, which puts the baseline back
    entry: Entry
    label: str
    args: tuple[str, ...] = ()


def link_status(topo: Topology, entries: list[Entry]) -> list[dict[str, Any]]:
    """Each direction of each link as it is now: the layout's baseline (link_directions), and where
    a link fault of the ledger is on it, that fault's netem instead.

    A link fault's plan names, per direction (the sender's region, the receiver), the netem its
    inject puts in the sender's band for the receiver; its revert puts the baseline back in the
    same bands. Two faults can share a band (link-latency into a region from everywhere, then a
    partition of one of its links): each change replaces the band's netem whole, so what a band
    carries is the latest change to it: the newest inject still open, unless a revert came after
    it, which left the baseline even if an older fault on that band is still open (listed as
    also_open: its netem is no longer there). Directions to the front door have no baseline
    delay and are listed only while a fault is on them."""
    rows = {
        (d["from"], d["to"]): {**d, "baseline_ms": d["delay_ms"], "jitter_ms": 0.0, "loss_pct": 0.0}
        for d in link_directions(topo)
    }
    changes: dict[tuple[str, str], list[_BandChange]] = {}
    for e in entries:
        fault, label = _label(e)
        if e.platform != "kind" or not isinstance(fault, LinkLatency | Partition):
            continue
        try:
            plan = LinkPlan.model_validate(e.revert)
        except ValidationError:
            continue
        for region, src, args in plan.links:
            if region not in topo.region_names or src not in sources(topo) or src == region:
                continue  # a ledger written for another topology
            band_changes = changes.setdefault((region, src), [])
            band_changes.append(_BandChange(e.created_wall, True, e, label, tuple(args)))
            if e.state == "reverted":
                band_changes.append(_BandChange(e.reverted_wall or e.created_wall, False, e, label))
    for (region, src), band_changes in changes.items():
        last = max(band_changes, key=lambda c: (c.wall, not c.inject))
        in_force = last if last.inject else None
        also_open = sorted(
            {
                f"{c.label} (entry {c.entry.id})"
                for c in band_changes
                if c.inject and c.entry.state != "reverted" and (in_force is None or c.entry is not in_force.entry)
            }
        )
        if in_force is None and not also_open:
            continue
        row = rows.setdefault(
            (region, src),
            {
                "from": region,
                "to": src,
                "delay_ms": 0.0,
                "on": f"{region}'s nodes, band {band(topo, src)[0]}",
                "rtt_ms": None,
                "baseline_ms": 0.0,
                "jitter_ms": 0.0,
                "loss_pct": 0.0,
            },
        )
        row["also_open"] = also_open
        if in_force is not None:
            row.update(netem_effect(in_force.args))
            row["fault"] = {"id": in_force.entry.id, "label": in_force.label, "state": in_force.entry.state}
    return [{"fault": None, "also_open": [], **row} for row in rows.values()]


# -- control plane: istiod or clustermesh-apiserver scaled to 0 -------------------------------------
class ControlPlanePlan(Plan):
    context: str
    namespace: str
    deployment: str


class ControlPlaneLossHandler(StepHandler):
    plan_type = ControlPlanePlan

    def plan(self, fault: ControlPlaneLoss) -> ControlPlanePlan:
        assert fault.target is not None
        ctx = names(self.fleet.topo)[fault.target].context
        if self.fleet.topo.mesh.startswith("cilium"):
            return ControlPlanePlan(context=ctx, namespace="kube-system", deployment="deployment/clustermesh-apiserver")
        return ControlPlanePlan(context=ctx, namespace="istio-system", deployment="deployment/istiod")

    def _scale(self, plan: ControlPlanePlan, replicas: int, verb: str) -> ApiStep:
        name = plan.deployment.removeprefix("deployment/")
        return api.scale(plan.context, f"{verb} {plan.deployment} in {plan.context}", plan.namespace, name, replicas)

    def inject_steps(self, fault: Any, plan: ControlPlanePlan) -> tuple[list[AnyStep], dict[str, Any]]:
        return [self._scale(plan, 0, "stop")], {}

    def revert_steps(self, fault: Any, plan: ControlPlanePlan) -> list[AnyStep]:
        return [self._scale(plan, 1, "restart")]


# -- gray failure: the replicas' own fault switch, through an exec into each pod --------------------
class PodPlan(Plan):
    target: str


class _PodSwitch(StepHandler):
    plan_type = PodPlan

    def body(self, fault: Any) -> dict[str, Any]:
        raise NotImplementedError

    def plan(self, fault: Any) -> PodPlan:
        assert fault.target is not None
        return PodPlan(target=fault.target)

    def _pods(self, fault: Any, target: str) -> list[tuple[str, str]]:
        """(context, pod) of the replicas in the target zone or region, read now."""
        region = self.fleet.region_of(fault.label(), target)
        ctx = names(self.fleet.topo)[region].context
        selector = f"app={APP}" if target == region else f"app={APP},zone={target}"
        out = self.fleet.run.run(api.list_pods(ctx, f"list replicas in {target}", NAMESPACE, selector))
        return [(ctx, line.strip()) for line in out.splitlines() if line.strip()]

    def _steps(self, pods: list[tuple[str, str]], body: dict[str, Any], ok_to_fail: bool) -> list[AnyStep]:
        faults = json.dumps(body)
        return [
            pod_tools(ctx, pod, f"{pod}: set faults {faults}", "set-faults", "8080", faults, ok_to_fail=ok_to_fail)
            for ctx, pod in pods
        ]

    def inject_steps(self, fault: Any, plan: PodPlan) -> tuple[list[AnyStep], dict[str, Any]]:
        return self._steps(self._pods(fault, plan.target), self.body(fault), ok_to_fail=False), {}

    def revert_steps(self, fault: Any, plan: PodPlan) -> list[AnyStep]:
        return self._steps(self._pods(fault, plan.target), {}, ok_to_fail=True)


class BrownoutHandler(_PodSwitch):
    def body(self, fault: Brownout) -> dict[str, Any]:
        return {"fail_pct": fault.fail_pct, "delay_ms": fault.delay_ms}


class LostResponseHandler(_PodSwitch):
    def body(self, fault: LostResponse) -> dict[str, Any]:
        return {"drop_after_commit_pct": fault.fail_pct}


# -- blackout: the host front door, as on the sandbox ----------------------------------------------
class BlackoutPlan(Plan):
    frontdoor_admin: int | None


class BlackoutHandler(StepHandler):
    plan_type = BlackoutPlan

    def plan(self, fault: Blackout) -> BlackoutPlan:
        return BlackoutPlan(frontdoor_admin=self.fleet.frontdoor_admin_port)

    def inject_steps(self, fault: Any, plan: BlackoutPlan) -> tuple[list[AnyStep], dict[str, Any]]:
        return [], {}

    def revert_steps(self, fault: Any, plan: BlackoutPlan) -> list[AnyStep]:
        return []

    def inject(self, fault: Blackout, plan: BlackoutPlan) -> dict[str, Any]:
        if plan.frontdoor_admin is None:
            raise FaultError("blackout needs the kind fleet's front door, and it is not running")
        admin.runtime_modify(plan.frontdoor_admin, {"blackout.abort_percent": 100, "blackout.http_status": 503})
        return plan.model_dump(mode="json")

    def revert(self, fault: Blackout, plan: BlackoutPlan) -> None:
        # A front door that is gone took its override with it.
        if plan.frontdoor_admin is not None:
            with contextlib.suppress(OSError):
                admin.runtime_modify(plan.frontdoor_admin, {"blackout.abort_percent": 0})


# -- certificate expiry (Istio): the region's edge secret ------------------------------------------
class CertPlan(Plan):
    cert: CertVariant
    region: str


class CertExpiryHandler(StepHandler):
    plan_type = CertPlan

    def plan(self, fault: CertExpiry) -> CertPlan:
        topo = self.fleet.topo
        if not topo.mesh.startswith("istio"):
            raise FaultError(
                f"cert-expiry on kind needs an Istio mesh; {topo.mesh!r} puts no certificate on the request path here",
                hint="use --mesh istio on kind, or run cert-expiry on the sandbox",
            )
        if fault.target not in topo.region_names:
            raise FaultError(f"{fault.label()}: the target must be a region ({', '.join(topo.region_names)})")
        return CertPlan(cert=fault.cert, region=fault.target)

    def inject_steps(self, fault: CertExpiry, plan: CertPlan) -> tuple[list[AnyStep], dict[str, Any]]:
        """The steps that make the region's edge certificate lapse for real, and when it does."""
        ca, region = self.fleet.ca(), plan.region
        if plan.cert == "leaf":
            leaf = ca.issue_leaf(region, expired=True)
            expired_at = leaf.not_after
        elif plan.cert == "intermediate":
            # A spare expired intermediate: istiod keeps the real one (cacerts) for workload certs.
            spare = f"expired-intermediate-{region}"
            ca.issue_intermediate(region, expired=True, name=spare)
            leaf = ca.issue_leaf(region, clamp=False, issuer=spare)
            expired_at = ca.intermediate_not_after(region, issuer=spare)
        else:  # rotation-stopped: nothing renews the edge certificate on kind, so it lapses on its own
            leaf = ca.issue_leaf(region, valid_for=dt.timedelta(seconds=fault.ttl_s))
            expired_at = leaf.not_after
        step = self.fleet.edge_step(region, leaf, f"{plan.cert} certificate expiring {expired_at.isoformat()}")
        return [step], {"expired_at_wall": expired_at.timestamp(), "expired_at": expired_at.isoformat()}

    def revert_steps(self, fault: Any, plan: CertPlan) -> list[AnyStep]:
        ca = self.fleet.ca()
        return [self.fleet.edge_step(plan.region, edge_leaf(ca, plan.region), "a fresh certificate")]


def fault_table(fleet: KindFleet) -> FaultTable:
    return FaultTable(
        "kind",
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
        elsewhere="run the others on the sandbox",
    )
