"""Latency between regions on kind: per node a prio qdisc with one band per source, each with its
own netem, filtered by the source's addresses (FACTS.md: needs sch_netem, prio and u32); the
front door's band by the gateway address and the ingress NodePort (front_door_match)."""

from __future__ import annotations

from typing import Any

from failover_drill.config.topology import Topology
from failover_drill.faults.model import FRONT_DOOR
from failover_drill.platforms.kind.api import exec_in
from failover_drill.platforms.kind.cluster_config import INGRESS_NODE_PORT, all_nodes, names
from failover_drill.platforms.kind.commands import ApiStep, Runner, Step
from failover_drill.platforms.kind.mesh import metallb_block
from failover_drill.platforms.kube.workload import NAMESPACE

PRIOMAP = "1 2 2 2 1 2 0 0 1 1 1 1 1 1 1 1"  # the kernel's default: unmatched traffic as usual
LEDGER_PATH = "/var/lib/ledger/payments.sqlite"


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


def link_directions(topo: Topology) -> list[dict[str, Any]]:
    """Each direction of each link between regions as the layout shapes it (the baseline, no fault):
    a packet from one region to another is delayed on the sender's nodes, in their band for the
    receiver (its node addresses and, with Istio, its east-west gateway's MetalLB pool), by
    baseline_ms; a request and its reply add up to the topology's RTT, all of it on one side."""
    out = []
    for a in topo.region_names:
        for b in topo.region_names:
            if a != b:
                out.append(
                    {
                        "from": a,
                        "to": b,
                        "delay_ms": baseline_ms(topo, a, b),
                        "on": f"{a}'s nodes, band {band(topo, b)[0]}",
                        "rtt_ms": topo.rtt_ms(a, b),
                    }
                )
    return out


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


def pod_tools(ctx: str, pod: str, title: str, *args: str, timeout_s: float = 30.0, ok_to_fail: bool = False) -> ApiStep:
    """failover_drill.platforms.kind.pod_tools run inside a payment-gateway pod, through the API
    server's exec (Kube.exec; shown as the `kubectl exec` that does the same)."""
    command = ("python", "-m", "failover_drill.platforms.kind.pod_tools", *args)
    return exec_in(ctx, title, NAMESPACE, pod, command, timeout_s=timeout_s, ok_to_fail=ok_to_fail)


def node_ips(topo: Topology, run: Runner) -> dict[str, str]:
    """node container -> its address on the kind network, as Docker reports it now."""
    flat = [n for r in topo.region_names for n in all_nodes(topo, r)]
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
    return ip_of


def read_addresses(topo: Topology, run: Runner, ips: dict[str, str] | None = None) -> dict[str, list[str]]:
    """source -> the IPv4 addresses (or networks) a node's traffic towards it goes to: the
    region's node IPs, and with Istio its MetalLB pool (cross-network calls go to the other
    region's east-west gateway, a LoadBalancer address from that pool, not to a node: without it
    one direction of every link got no delay); the kind network's gateway for the front door."""
    nodes = {r: all_nodes(topo, r) for r in topo.region_names}
    ip_of = node_ips(topo, run) if ips is None else ips
    gateway = run.run(
        Step(
            "read the kind network's gateway (the host's address as nodes see it)",
            ("docker", "network", "inspect", "kind", "-f", "{{range .IPAM.Config}}{{.Gateway}} {{end}}"),
            timeout_s=30,
        )
    )
    addrs = {r: [ip_of.get(n, f"<ip of {n}>") for n in ns] for r, ns in nodes.items()}
    if topo.mesh.startswith("istio"):
        subnets = run.run(
            Step(
                "read the kind Docker network's subnets (each cluster's MetalLB pool)",
                ("docker", "network", "inspect", "kind", "-f", "{{range .IPAM.Config}}{{.Subnet}} {{end}}"),
                timeout_s=30,
            )
        )
        for n in names(topo).values():
            addrs[n.region].append(str(metallb_block(subnets, n.index)))
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
                        "match", "ip", "dst", ip if "/" in ip else f"{ip}/32", *front_door_match(src),
                        "flowid", cls)  # fmt: skip
    return steps


def front_door_match(src: str) -> tuple[str, ...]:
    """What singles out the front door's traffic among packets to the kind network's gateway.

    The front door on the host reaches a region through the control-plane node's host port: Docker
    (docker-proxy, or its NAT from 127.0.0.1) connects to the node's INGRESS_NODE_PORT from the
    gateway address. But kind's API server port is mapped the same way, so kubectl, the kube layer
    and `kubectl logs -f` come from the gateway too: a filter on the destination alone put the
    API server's replies in the front-door band, and a front-door partition cut them as well
    (reverts and log streams hung). These filters sit on the node's egress, where what goes to
    the front door is the ingress's replies: source port INGRESS_NODE_PORT after the NodePort's
    reverse NAT (kube-proxy's conntrack in POSTROUTING, or Cilium's BPF before the qdisc), TCP.
    Requests towards the node are not shaped here; dropping or delaying the replies is what the
    front door feels (its health checks and requests time out), and the API server's replies
    (source port 6443) stay in the default bands."""
    if src != FRONT_DOOR:
        return ()
    return ("match", "ip", "protocol", "6", "0xff", "match", "ip", "sport", str(INGRESS_NODE_PORT), "0xffff")
