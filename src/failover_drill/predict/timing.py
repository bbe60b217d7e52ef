"""How long each detector takes to act on a lost endpoint, from its settings alone.

Each function returns the bound and one line a reviewer can check against the manifest. The
bounds follow the detectors as they run (platforms/sandbox/control_plane.py probes as kubelet
does; Envoy health checks at the front door; Kubernetes' node lifecycle controller on kwok and
kind): a fault lands at a uniformly random moment of the detector's cycle, hence a range.
"""

from __future__ import annotations

import re

from failover_drill.config.manifests import FrontDoorHealth, Readiness
from failover_drill.config.topology import KwokSettings
from failover_drill.platforms.kind import cluster_config
from failover_drill.predict.model import Bound

# The control plane pushes a changed endpoint set within one loop (0.2 s) and Envoy reads the EDS
# file at once; on Kubernetes, the EndpointSlice controller, the watch and the push add about 1 s.
PUSH_S = 0.2
KUBE_PROPAGATION_S = 2.0
# kube-controller-manager's default --node-monitor-grace-period: 40 s up to Kubernetes 1.31, 50 s
# from 1.32 on (kubernetes/kubernetes#126287, so that it is longer than the kubelet's 40 s lease).
GRACE_50_SINCE = (1, 32)
_NODE_VERSION = re.compile(r":v?(\d+)\.(\d+)(?:\.(\d+))?(?:@|$)")


def node_monitor_grace_period_default(version: tuple[int, int]) -> float:
    """The stock kube-controller-manager's node-monitor-grace-period on Kubernetes `version` (major, minor)."""
    return 50.0 if version >= GRACE_50_SINCE else 40.0


def node_image_version(image: str) -> tuple[int, int]:
    """(major, minor) of a kind node image's tag: kindest/node:v1.31.2 (a @sha256 digest may follow)."""
    m = _NODE_VERSION.search(image)
    if m is None:
        raise ValueError(f"cannot read a Kubernetes version from the kind node image {image!r}")
    return int(m.group(1)), int(m.group(2))


def kind_node() -> KwokSettings:
    """kind runs the stock kube-controller-manager of the node image the kind platform pins
    (KIND_NODE_IMAGE, read when asked: that pin is the one source of truth): its default
    node-monitor-grace-period, node-monitor-period 5 s, the kubelet's 40 s node leases (renewed every 10 s)."""
    grace = node_monitor_grace_period_default(node_image_version(cluster_config.KIND_NODE_IMAGE))
    return KwokSettings(node_monitor_grace_period_s=grace, node_monitor_period_s=5, node_lease_duration_s=40)


def readiness_removal(r: Readiness, mode: str) -> tuple[Bound, str]:
    """A replica crashed (kill: each probe is refused at once) or hung (freeze: each probe waits
    its timeout) until its readiness probe has failed failureThreshold times in a row."""
    p, f, t = r.period_s, r.failure_threshold, r.timeout_s
    if mode == "freeze":
        lo = f * t + (f - 1) * p
        why = (
            f"readiness: a hung replica fails each probe after its {t:g} s timeout; {f} failures "
            f"{p:g} s apart = {lo:g}-{lo + p:g} s, + {PUSH_S:g} s endpoint push"
        )
    else:
        lo = (f - 1) * p
        why = (
            f"readiness: a crashed replica refuses the next probe at once; {f} failures "
            f"{p:g} s apart = {lo:g}-{lo + p:g} s, + {PUSH_S:g} s endpoint push"
        )
    return Bound(lo, lo + p + PUSH_S), why


def health_check_removal(hc: FrontDoorHealth, how: str) -> tuple[Bound, str]:
    """The front door marks a region's gateway unhealthy after unhealthy_threshold failed checks:
    refused or rejected at once (how='refused'), or each waiting its timeout (how='timeout')."""
    i, u, t = hc.interval_s, hc.unhealthy_threshold, hc.timeout_s
    if how == "timeout":
        lo = u * t + (u - 1) * i
        why = (
            f"front door health check: each check times out after {t:g} s; {u} failures {i:g} s apart "
            f"= {lo:g}-{lo + i:g} s"
        )
    else:
        lo = (u - 1) * i
        why = f"front door health check: {u} failed checks {i:g} s apart = {lo:g}-{lo + i:g} s"
    return Bound(lo, lo + i), why


def node_not_ready(k: KwokSettings, where: str) -> tuple[Bound, str]:
    """A lost node stops renewing its lease; the node lifecycle controller, checking every
    node-monitor-period, marks it NotReady once node-monitor-grace-period has passed since the
    last renewal (renewed every quarter of the lease), and its pods' endpoints are removed."""
    g, m, renew = k.node_monitor_grace_period_s, k.node_monitor_period_s, k.node_lease_duration_s / 4
    lo = max(0.0, g - renew)
    why = (
        f"{where}: the node stops renewing its lease (every {renew:g} s); NotReady after the "
        f"{g:g} s node-monitor-grace-period, checked every {m:g} s = {lo:g}-{g + m:g} s, "
        f"+ up to {KUBE_PROPAGATION_S:g} s until the EndpointSlice change reaches the gateways"
    )
    return Bound(lo, g + m + KUBE_PROPAGATION_S), why
