"""Faults on kind, with the same names and meaning as on the sandbox:

- zone-loss / region-loss: the zone's (region's) node containers are killed (`docker kill`,
  a crash) or paused (`docker pause`, a hang); revert starts / unpauses them;
- link-latency / partition: `tc netem` inside the node containers (FACTS.md: needs sch_netem on
  the host). Each node's egress has a prio qdisc with one band per source (every other region
  and the front door), filtered by the source's node addresses; the topology's baseline RTT
  sits on one side of each pair, a fault changes the band's netem in place (delay with netem's
  own jitter, or 100% loss for a partition: packets dropped, so peers time out);
- control-plane-loss: istiod (Istio) or clustermesh-apiserver (Cilium) scaled to 0;
- brownout / lost-response: the replicas' own fault switch, through `kubectl exec`;
- blackout: the host front door's abort runtime key, as on the sandbox;
- cert-expiry (Istio): the region's ingress gateway certificate (the edge secret, from the mesh CA)
  is replaced by an expired leaf, a leaf under an expired intermediate, or a leaf that lapses
  after ttl_s; istiod pushes the secret to the gateway over SDS. The front door validates that
  chain, so the region fails its handshakes either way: Envoy rejects the expired chain, or, as
  Istio >= 1.18 does, the gateway refuses to load it and has nothing to serve (istio/istio#47104).
  Revert applies a fresh leaf from the region's intermediate. Cilium Cluster Mesh puts no
  certificate on the request path here, so cert-expiry is refused there.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

from failover_drill.config.faultspec import FRONT_DOOR, FaultSpec
from failover_drill.config.topology import Topology
from failover_drill.errors import FaultError
from failover_drill.platforms.kind.cluster_config import all_nodes, names, zone_nodes
from failover_drill.platforms.kind.commands import Runner, Step
from failover_drill.platforms.kind.mesh import apply, edge_leaf, edge_secret, kubectl
from failover_drill.platforms.kind.workload import APP, EDGE_SECRET, NAMESPACE
from failover_drill.platforms.pki import Issued, MeshCA

PRIOMAP = "1 2 2 2 1 2 0 0 1 1 1 1 1 1 1 1"  # the kernel's default: unmatched traffic as usual
LEDGER_PATH = "/var/lib/ledger/payments.sqlite"
KIND_FAULTS = (
    "zone-loss",
    "region-loss",
    "link-latency",
    "partition",
    "control-plane-loss",
    "brownout",
    "lost-response",
    "blackout",
    "cert-expiry",
)


def sources(topo: Topology) -> list[str]:
    return [*topo.region_names, FRONT_DOOR]


def band(topo: Topology, src: str) -> tuple[str, str]:
    """(class id, netem handle) of the band for traffic towards src."""
    k = sources(topo).index(src)
    return f"1:{4 + k}", f"{40 + k}:"


def baseline_ms(topo: Topology, node_region: str, src: str) -> float:
    """The pair's RTT lives on the later region's side only, so it is paid once per round trip."""
    if src in (FRONT_DOOR, node_region):
        return 0.0
    order = topo.region_names
    return topo.rtt_ms(node_region, src) if order.index(node_region) > order.index(src) else 0.0


def netem(delay_ms: float = 0.0, jitter_ms: float = 0.0, loss: bool = False) -> tuple[str, ...]:
    if loss:
        return ("netem", "loss", "100%")
    args = ("netem", "delay", f"{delay_ms:g}ms")
    return (*args, f"{jitter_ms:g}ms") if jitter_ms > 0 else args


def tc(node: str, *args: str, ok_to_fail: bool = False, title: str | None = None) -> Step:
    return Step(
        title or f"tc {args[0]} {args[1]} on {node}",
        ("docker", "exec", node, "tc", *args),
        timeout_s=30,
        ok_to_fail=ok_to_fail,
    )


def band_netem(node: str, verb: str, cls: str, handle: str, args: tuple[str, ...], **kw: Any) -> Step:
    """Add or change the netem qdisc of one source's band on a node."""
    return tc(node, "qdisc", verb, "dev", "eth0", "parent", cls, "handle", handle, *args, **kw)


def pod_tools(ctx: str, pod: str, *args: str) -> tuple[str, ...]:
    """`kubectl exec` of failover_drill.platforms.kind.pod_tools inside a payment-gateway pod."""
    return kubectl(
        ctx, "-n", NAMESPACE, "exec", pod, "--", "python", "-m", "failover_drill.platforms.kind.pod_tools", *args
    )


def read_addresses(topo: Topology, run: Runner) -> dict[str, list[str]]:
    """source -> IPv4 addresses its traffic comes from (node IPs; the kind network gateway for the host)."""
    nodes = {r: all_nodes(topo, r) for r in topo.region_names}
    flat = [n for ns in nodes.values() for n in ns]
    out = run.run(
        Step(
            "read node addresses",
            ("docker", "inspect", "-f", "{{.Name}} {{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", *flat),
            timeout_s=30,
        )
    )
    ip_of = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 2:
            ip_of[parts[0].lstrip("/")] = parts[1]
    gateway = run.run(
        Step(
            "read the kind network's gateway (the host's address as nodes see it)",
            ("docker", "network", "inspect", "kind", "-f", "{{range .IPAM.Config}}{{.Gateway}} {{end}}"),
            timeout_s=30,
        )
    )
    addrs = {r: [ip_of.get(n, f"<ip of {n}>") for n in ns] for r, ns in nodes.items()}
    addrs[FRONT_DOOR] = [g for g in gateway.split() if "." in g] or ["<kind network gateway>"]
    return addrs


def latency_setup_steps(topo: Topology, addrs: dict[str, list[str]]) -> list[Step]:
    """Per node: the band layout, baseline netem per source, and filters by source address."""
    steps: list[Step] = []
    srcs = sources(topo)
    for region in topo.region_names:
        for node in all_nodes(topo, region):
            title = f"latency layout on {node}"

            def add(*args: str, ok: bool = False, node: str = node, title: str = title) -> None:
                steps.append(tc(node, *args, ok_to_fail=ok, title=title))

            add("qdisc", "del", "dev", "eth0", "root", ok=True)
            add("qdisc", "add", "dev", "eth0", "root", "handle", "1:", "prio", "bands", str(3 + len(srcs)),
                "priomap", *PRIOMAP.split())  # fmt: skip
            for src in srcs:
                if src == region:
                    continue
                cls, handle = band(topo, src)
                steps.append(band_netem(node, "add", cls, handle, netem(baseline_ms(topo, region, src)), title=title))
                for ip in addrs[src]:
                    add("filter", "add", "dev", "eth0", "parent", "1:0", "protocol", "ip", "prio", "1", "u32",
                        "match", "ip", "dst", f"{ip}/32", "flowid", cls)  # fmt: skip
    return steps


class KindFaultOps:
    def __init__(
        self, topo: Topology, run: Runner, frontdoor_admin_port: int | None = None, pki_dir: Path | None = None
    ) -> None:
        self.topo = topo
        self.run = run
        self.frontdoor_admin_port = frontdoor_admin_port
        self.pki_dir = pki_dir

    # -- what each fault touches ---------------------------------------------------------------
    def _nodes(self, fault: FaultSpec) -> list[str]:
        t = fault.target
        assert t is not None
        if t in self.topo.region_names:
            if fault.kind == "region-loss":
                return all_nodes(self.topo, t)
            return [n for ns in zone_nodes(self.topo, t).values() for n in ns]
        region = self.topo.zone_region(t)
        if region is None:
            raise FaultError(f"{fault.label()}: {t!r} is neither a region nor a zone of this topology")
        return zone_nodes(self.topo, region)[t]

    def _links(self, fault: FaultSpec) -> list[tuple[str, str, tuple[str, ...]]]:
        """(node region, source, netem args while the fault is on)."""
        dst = fault.target
        assert dst is not None
        src = fault.source or "*"
        out: list[tuple[str, str, tuple[str, ...]]] = []
        if fault.kind == "link-latency":
            for s in sources(self.topo) if src == "*" else [src]:
                if s == dst:
                    continue
                base = baseline_ms(self.topo, dst, s)
                out.append((dst, s, netem(base + fault.delay_ms, fault.delay_ms * fault.jitter_pct / 100)))
        elif src == FRONT_DOOR:
            out.append((dst, FRONT_DOOR, netem(loss=True)))
        else:
            out += [(dst, src, netem(loss=True)), (src, dst, netem(loss=True))]
        return out

    def _link_steps(self, links: list[tuple[str, str, tuple[str, ...]]], ok_to_fail: bool = False) -> list[Step]:
        steps = []
        for region, src, args in links:
            cls, handle = band(self.topo, src)
            steps += [
                band_netem(node, "change", cls, handle, args, ok_to_fail=ok_to_fail)
                for node in all_nodes(self.topo, region)
            ]
        return steps

    def _pods(self, fault: FaultSpec) -> list[tuple[str, str]]:
        """(context, pod) of the replicas in the target zone or region, read now."""
        t = fault.target
        assert t is not None
        region = t if t in self.topo.region_names else self.topo.zone_region(t)
        if region is None:
            raise FaultError(f"{fault.label()}: {t!r} is neither a region nor a zone of this topology")
        ctx = names(self.topo)[region].context
        selector = f"app={APP}" if t == region else f"app={APP},zone={t}"
        out = self.run.run(
            Step(f"list replicas in {t}", kubectl(ctx, "-n", NAMESPACE, "get", "pods", "-l", selector, "-o", "name"))
        )
        return [(ctx, line.strip()) for line in out.splitlines() if line.strip()]

    def _pod_fault_steps(self, pods: list[tuple[str, str]], body: dict[str, Any], ok_to_fail: bool) -> list[Step]:
        return [
            Step(
                f"{pod}: set faults {json.dumps(body)}",
                pod_tools(ctx, pod, "set-faults", "8080", json.dumps(body)),
                timeout_s=30,
                ok_to_fail=ok_to_fail,
            )
            for ctx, pod in pods
        ]

    def _control_plane(self, region: str) -> tuple[str, str, str]:
        ctx = names(self.topo)[region].context
        if self.topo.mesh.startswith("cilium"):
            return ctx, "kube-system", "deployment/clustermesh-apiserver"
        return ctx, "istio-system", "deployment/istiod"

    def _ca(self) -> MeshCA:
        if self.pki_dir is None or not (self.pki_dir / "root-cert.pem").exists():
            raise FaultError(
                "cert-expiry needs the mesh CA the kind fleet was brought up with, and it is missing",
                hint="bring the fleet up again: `failover-drill up --platform kind`",
            )
        return MeshCA(self.pki_dir)

    def _edge_step(self, region: str, leaf: Issued, what: str) -> Step:
        return apply(names(self.topo)[region].context, f"{region}: {EDGE_SECRET} <- {what}", [edge_secret(leaf)])

    def cert_expiry(self, fault: FaultSpec, plan: dict[str, Any]) -> tuple[list[Step], dict[str, Any]]:
        """The steps that make the region's edge certificate lapse for real, and when it does."""
        ca, region, variant = self._ca(), plan["region"], plan["cert"]
        if variant == "leaf":
            leaf = ca.issue_leaf(region, expired=True)
            expired_at = leaf.not_after
        elif variant == "intermediate":
            # A spare expired intermediate: istiod keeps the real one (cacerts) for workload certs.
            spare = f"expired-intermediate-{region}"
            ca.issue_intermediate(region, expired=True, name=spare)
            leaf = ca.issue_leaf(region, clamp=False, issuer=spare)
            expired_at = ca.intermediate_not_after(region, issuer=spare)
        else:  # rotation-stopped: nothing renews the edge certificate on kind, so it lapses on its own
            leaf = ca.issue_leaf(region, valid_for=dt.timedelta(seconds=fault.ttl_s))
            expired_at = leaf.not_after
        step = self._edge_step(region, leaf, f"{variant} certificate expiring {expired_at.isoformat()}")
        return [step], {"expired_at_wall": expired_at.timestamp(), "expired_at": expired_at.isoformat()}

    # -- plan / inject / revert ----------------------------------------------------------------
    def plan(self, fault: FaultSpec) -> dict[str, Any]:
        k = fault.kind
        if k not in KIND_FAULTS:
            raise FaultError(
                f"fault {k!r} is not available on kind",
                hint=f"kind offers {', '.join(KIND_FAULTS)}; run {k} on the sandbox",
            )
        if k == "cert-expiry":
            if not self.topo.mesh.startswith("istio"):
                raise FaultError(
                    f"cert-expiry on kind needs an Istio mesh; {self.topo.mesh!r} puts no certificate on the "
                    "request path here",
                    hint="use --mesh istio on kind, or run cert-expiry on the sandbox",
                )
            if fault.target not in self.topo.region_names:
                raise FaultError(f"{fault.label()}: the target must be a region ({', '.join(self.topo.region_names)})")
            return {"cert": fault.cert, "region": fault.target}
        if k in ("zone-loss", "region-loss"):
            return {"nodes": self._nodes(fault), "mode": fault.mode}
        if k in ("link-latency", "partition"):
            return {"links": [[r, s, list(a)] for r, s, a in self._links(fault)]}
        if k == "control-plane-loss":
            assert fault.target is not None
            return {"control_plane": list(self._control_plane(fault.target))}
        if k in ("brownout", "lost-response"):
            return {"target": fault.target}
        return {"frontdoor_admin": self.frontdoor_admin_port}

    def inject_steps(self, fault: FaultSpec, plan: dict[str, Any]) -> list[Step]:
        k = fault.kind
        if "nodes" in plan:
            verb = "pause" if plan["mode"] == "freeze" else "kill"
            return [Step(f"{verb} node {n}", ("docker", verb, n), timeout_s=60) for n in plan["nodes"]]
        if "links" in plan:
            return self._link_steps([(r, s, tuple(a)) for r, s, a in plan["links"]])
        if "control_plane" in plan:
            ctx, ns, deploy = plan["control_plane"]
            return [Step(f"stop {deploy} in {ctx}", kubectl(ctx, "-n", ns, "scale", deploy, "--replicas=0"))]
        if k in ("brownout", "lost-response"):
            body = (
                {"fail_pct": fault.fail_pct, "delay_ms": fault.delay_ms}
                if k == "brownout"
                else {"drop_after_commit_pct": fault.fail_pct}
            )
            return self._pod_fault_steps(self._pods(fault), body, ok_to_fail=False)
        if k == "cert-expiry":
            return self.cert_expiry(fault, plan)[0]
        return []

    def revert_steps(self, fault: FaultSpec, plan: dict[str, Any]) -> list[Step]:
        k = fault.kind
        if "nodes" in plan:
            if plan["mode"] == "freeze":
                return [Step(f"unpause node {n}", ("docker", "unpause", n), ok_to_fail=True) for n in plan["nodes"]]
            # A restarted node container gets a fresh network namespace (netem gone, maybe a new
            # address): the platform re-applies the latency layout after these steps.
            return [
                Step(f"start node {n}", ("docker", "start", n), timeout_s=120, ok_to_fail=True) for n in plan["nodes"]
            ]
        if "links" in plan:
            base = [(r, s, netem(baseline_ms(self.topo, r, s))) for r, s, _ in plan["links"]]
            return self._link_steps(base, ok_to_fail=True)
        if "control_plane" in plan:
            ctx, ns, deploy = plan["control_plane"]
            return [Step(f"restart {deploy} in {ctx}", kubectl(ctx, "-n", ns, "scale", deploy, "--replicas=1"))]
        if k in ("brownout", "lost-response"):
            return self._pod_fault_steps(self._pods(fault), {}, ok_to_fail=True)
        if k == "cert-expiry":
            region = plan["region"]
            return [self._edge_step(region, edge_leaf(self._ca(), region), "a fresh certificate")]
        return []

    def needs_relayout(self, plan: dict[str, Any]) -> bool:
        return "nodes" in plan and plan.get("mode") != "freeze"
