"""What a fault leaves behind on the kind fleet, found on the live fleet and repaired (issue 16,
"reality over records": `recover` must work with the fault ledger torn or lost). Each check reads
what is there, compares it with what `up` builds, and changes only what differs:

- node containers: a paused one (zone/region loss, freeze) is unpaused, a stopped one (kill) is
  started; a node started again has a fresh network namespace, so its latency layout is rebuilt;
- links: each node's netem bands (`tc qdisc show`) against the topology's baseline RTT; a band
  with a fault's delay, jitter or loss has its node's layout rebuilt;
- Kubernetes objects: the mesh control plane (istiod or clustermesh-apiserver) scaled to 0 is
  scaled back to 1; the region's edge secret (Istio) holding an expired, not yet valid or
  short-lived certificate, or one under an issuer that is not the region's intermediate, gets a
  fresh leaf from the region's intermediate;
- the replicas' fault switches (an exec into each pod, through the API server): anything but
  all-zero is cleared;
- the host front door's runtime: fault overrides reset to its config's baseline.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import re

from cryptography import x509
from cryptography.exceptions import InvalidSignature

from failover_drill.errors import FaultError, PlatformError
from failover_drill.platforms.envoy.leftovers import Repairs
from failover_drill.platforms.kind import api
from failover_drill.platforms.kind.cluster_config import all_nodes, names
from failover_drill.platforms.kind.commands import Step
from failover_drill.platforms.kind.faults import KindFleet
from failover_drill.platforms.kind.mesh import EDGE_CERT_DAYS, edge_leaf
from failover_drill.platforms.kind.netem import (
    band,
    baseline_ms,
    latency_setup_steps,
    pod_tools,
    read_addresses,
    sources,
    tc,
)
from failover_drill.platforms.kind.workload import EDGE_SECRET
from failover_drill.platforms.kube.workload import APP, NAMESPACE

KIND_LABEL = "io.x-k8s.kind.cluster"
# A leaf lasting less than this was issued by a fault (rotation-stopped); `up` issues them for days.
SHORT_LIVED = dt.timedelta(days=EDGE_CERT_DAYS) / 2
_UNITS = {"s": 1000.0, "ms": 1.0, "us": 0.001}


def repair(fleet: KindFleet, out: Repairs, regions: list[str] | None = None) -> None:
    """Every check on the regions' clusters (all of them by default), in the order a fleet comes
    back: nodes, links, the API's objects, the pods."""
    regions = fleet.topo.region_names if regions is None else regions
    restarted = _nodes(fleet, regions, out)
    _links(fleet, regions, restarted, out)
    for region in regions:
        _control_plane(fleet, region, out)
        if fleet.topo.mesh.startswith("istio"):
            _edge_secret(fleet, region, out, dt.datetime.now(dt.UTC))
        _switches(fleet, region, out)


# -- node containers ----------------------------------------------------------------------------


def node_states(text: str) -> dict[str, str]:
    """`docker ps -a --format '{{.Names}} {{.State}}'` -> name: state."""
    out = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2:
            out[parts[0]] = parts[1]
    return out


def _nodes(fleet: KindFleet, regions: list[str], out: Repairs) -> set[str]:
    listing = fleet.run.run(
        Step(
            "list the kind node containers",
            ("docker", "ps", "-a", "--filter", f"label={KIND_LABEL}", "--format", "{{.Names}} {{.State}}"),
            timeout_s=30,
        )
    )
    states = node_states(listing)
    restarted: set[str] = set()
    for region in regions:
        for node in all_nodes(fleet.topo, region):
            state = states.get(node)
            if state is None:
                out.failed.append(
                    f"node {node} is gone: bring the fleet up again (`failover-drill up --platform kind`)"
                )
            elif state == "paused":
                fleet.run.run(Step(f"unpause node {node}", ("docker", "unpause", node), timeout_s=60))
                out.done.append(f"unpaused node {node}: it was paused (docker pause)")
            elif state in ("exited", "created", "dead"):
                fleet.run.run(Step(f"start node {node}", ("docker", "start", node), timeout_s=120))
                restarted.add(node)
                out.done.append(f"started node {node}: it was {state}")
    return restarted


# -- links --------------------------------------------------------------------------------------


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(s|ms|us)", text)
    if m is None:
        raise ValueError(f"unreadable time {text!r}")
    return float(m.group(1)) * _UNITS[m.group(2)]


def netem_bands(text: str) -> dict[str, tuple[float, float, float]]:
    """`tc qdisc show dev eth0` -> parent class: (delay ms, jitter ms, loss %) of each netem."""
    bands: dict[str, tuple[float, float, float]] = {}
    for line in text.splitlines():
        m = re.match(r"qdisc netem \S+ parent (\S+)", line.strip())
        if m is None:
            continue
        delay = re.search(r" delay (\S+)(?:\s+(\d[\d.]*(?:s|ms|us))(?:\s|$))?", line)
        loss = re.search(r" loss ([\d.]+)%", line)
        bands[m.group(1)] = (
            _ms(delay.group(1)) if delay else 0.0,
            _ms(delay.group(2)) if delay and delay.group(2) else 0.0,
            float(loss.group(1)) if loss else 0.0,
        )
    return bands


def band_faults(fleet: KindFleet, region: str, shown: str) -> list[str]:
    """How a node's bands differ from the baseline its region's layout sets (empty: as built)."""
    if not re.search(r"qdisc prio 1: root", shown):
        return ["no latency layout"]
    bands = netem_bands(shown)
    why = []
    for src in sources(fleet.topo):
        if src == region:
            continue
        cls, _ = band(fleet.topo, src)
        got = bands.get(cls)
        want = baseline_ms(fleet.topo, region, src)
        if got is None:
            why.append(f"no band for {src}")
        elif abs(got[0] - want) > 0.05 or got[1] or got[2]:
            extra = (f" ± {got[1]:g} ms" if got[1] else "") + (f", {got[2]:g}% loss" if got[2] else "")
            why.append(f"towards {src}: {got[0]:g} ms{extra} instead of {want:g} ms")
    return why


def _links(fleet: KindFleet, regions: list[str], restarted: set[str], out: Repairs) -> None:
    rebuild: dict[str, str] = {node: "started again" for node in restarted}
    for region in regions:
        for node in all_nodes(fleet.topo, region):
            if node in rebuild:
                continue
            try:
                shown = fleet.run.run(
                    tc(node, "qdisc", "show", "dev", "eth0", title=f"read the latency layout on {node}")
                )
            except PlatformError as exc:
                out.failed.append(f"node {node}: could not read its qdiscs: {exc.message}")
                continue
            differs = band_faults(fleet, region, shown)
            if differs:
                rebuild[node] = "; ".join(differs)
    if not rebuild:
        return
    steps = latency_setup_steps(fleet.topo, read_addresses(fleet.topo, fleet.run))
    for node, why in rebuild.items():
        try:
            for step in steps:
                if node in step.argv:
                    fleet.run.run(step)
        except PlatformError as exc:
            out.failed.append(f"node {node}: could not rebuild its latency layout: {exc.message}")
            continue
        out.done.append(f"node {node}: rebuilt its latency layout to the topology's baseline ({why})")


# -- Kubernetes objects -------------------------------------------------------------------------


def _control_plane(fleet: KindFleet, region: str, out: Repairs) -> None:
    ns, name = (
        ("kube-system", "clustermesh-apiserver") if fleet.topo.mesh.startswith("cilium") else ("istio-system", "istiod")
    )
    ctx = names(fleet.topo)[region].context
    try:
        text = fleet.run.run(api.get_object(ctx, f"read {name} in {region}", "apps/v1", "Deployment", ns, name))
        if not text.strip():
            out.failed.append(f"{region}: there is no {ns}/{name}: bring the fleet up again")
            return
        replicas = json.loads(text).get("spec", {}).get("replicas", 1)
        if replicas == 0:
            fleet.run.run(api.scale(ctx, f"restart {name} in {region}", ns, name, 1))
    except (PlatformError, ValueError) as exc:
        out.failed.append(f"{region}: could not check {ns}/{name}: {getattr(exc, 'message', exc)}")
        return
    if replicas == 0:
        out.done.append(f"{region}: scaled {ns}/{name} back to 1 replica: it was scaled to 0")


def cert_problems(chain_pem: bytes, intermediate: x509.Certificate, now: dt.datetime) -> list[str]:
    """Why an edge certificate chain is not one `up` would have issued (empty: it is)."""
    chain = x509.load_pem_x509_certificates(chain_pem)
    leaf = chain[0]
    nb, na = leaf.not_valid_before_utc, leaf.not_valid_after_utc
    why = []
    if na <= now:
        why.append(f"the leaf expired at {na:%Y-%m-%d %H:%M:%S} UTC")
    elif nb > now:
        why.append(f"the leaf is not valid before {nb:%Y-%m-%d %H:%M:%S} UTC")
    elif na - nb < SHORT_LIVED:
        why.append(
            f"the leaf lasts {_span(na - nb)}, not the {EDGE_CERT_DAYS} days `up` issues; it lapses at {na:%H:%M:%S} UTC"
        )
    try:
        # A spare intermediate (the cert-expiry fault's) bears the same name: only its key tells.
        leaf.verify_directly_issued_by(intermediate)
    except (ValueError, TypeError, InvalidSignature):
        why.append("the leaf was not signed by the region's intermediate")
    for cert in chain[1:]:
        if cert.not_valid_after_utc <= now:
            why.append(f"its issuer {cert.subject.rfc4514_string()} expired")
    return why


def _span(d: dt.timedelta) -> str:
    s = d.total_seconds()
    return f"{s:g} s" if s < 120 else f"{s / 60:.0f} min" if s < 7200 else f"{s / 3600:.1f} h"


def _edge_secret(fleet: KindFleet, region: str, out: Repairs, now: dt.datetime) -> None:
    ctx = names(fleet.topo)[region].context
    try:
        ca = fleet.ca()
        read = api.get_object(ctx, f"read {EDGE_SECRET} in {region}", "v1", "Secret", "istio-system", EDGE_SECRET)
        text = fleet.run.run(read)
        if not text.strip():
            why = ["it is missing"]
        else:
            pem = base64.b64decode((json.loads(text).get("data") or {}).get("tls.crt", ""))
            inter = x509.load_pem_x509_certificate(ca.intermediate_pem(region)[0].encode())
            why = cert_problems(pem, inter, now)
        if why:
            fleet.run.run(fleet.edge_step(region, edge_leaf(ca, region), "a fresh certificate"))
    except (PlatformError, FaultError, ValueError, OSError) as exc:
        out.failed.append(f"{region}: could not check its edge secret: {getattr(exc, 'message', exc)}")
        return
    if why:
        out.done.append(f"{region}: replaced its edge secret with a fresh certificate ({'; '.join(why)})")


# -- replicas' fault switches -------------------------------------------------------------------


def _switches(fleet: KindFleet, region: str, out: Repairs) -> None:
    ctx = names(fleet.topo)[region].context
    try:
        listing = fleet.run.run(api.list_pods(ctx, f"list replicas in {region}", NAMESPACE, f"app={APP}"))
    except PlatformError as exc:
        out.failed.append(f"{region}: could not list the replicas: {exc.message}")
        return
    for pod in (line.strip() for line in listing.splitlines() if line.strip()):
        try:
            read = pod_tools(ctx, pod, f"read the fault switches of {pod}", "get-faults", "8080")
            on = {k: v for k, v in json.loads(fleet.run.run(read)).items() if v}
            if on:
                fleet.run.run(pod_tools(ctx, pod, f"{pod}: clear fault switches", "set-faults", "8080", "{}"))
        except (PlatformError, ValueError, AttributeError) as exc:
            out.failed.append(f"{region} {pod}: could not check its fault switches: {getattr(exc, 'message', exc)}")
            continue
        if on:
            switches = ", ".join(f"{k}={v:g}" for k, v in sorted(on.items()))
            out.done.append(f"{region} {pod}: cleared fault switches {switches}")
