"""What a fault leaves behind on the kwok fleet, found on the live fleet and repaired (issue 16,
"reality over records": `recover` must work with the fault ledger torn or lost).

- processes: anything of the fleet stopped (SIGSTOP) gets SIGCONT; a control-plane component
  that is gone (a region or control-plane loss killed it) is started again with the argv it ran
  with, in start order; a process of the fleet's state file that is gone (a zone's kwok and
  kubelet agent, a region's gateway and mesh agent) is started again. The state file lists only
  what `up` started, so a dead entry is a fault's doing, never a zone that was not up;
- Envoy runtime overrides of fault keys, replica fault switches and the gateways' certificates:
  as on the sandbox (platforms/envoy/leftovers.py).

Pods are the kubelet agents' to restart (they reconcile the API's pods with processes), and what
Kubernetes did meanwhile (a node NotReady, endpoints removed) it undoes once its nodes heartbeat
again: nothing of it is a leftover to repair.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from failover_drill.errors import PlatformError
from failover_drill.platforms import processes as procs
from failover_drill.platforms.envoy.layout import Layout
from failover_drill.platforms.envoy.leftovers import (
    Repairs,
    clear_switches,
    repair_certificates,
    reset_runtime,
    thaw_marked,
)
from failover_drill.platforms.kwok.control_plane import COMPONENTS, PROCESS_ENV, ControlPlane

if TYPE_CHECKING:
    from failover_drill.platforms.kwok.platform import KwokPlatform

RESTART_SETTLE_S = 0.5
# The platform's own processes in the order a zone or region needs them back: a kubelet agent
# reports its pods on a node kwok keeps Ready, the mesh agents feed gateways that the front door
# checks.
_START_ORDER = ("kwok", "kubelet", "control-plane", "gateway", "rollouts-controller", "frontdoor")


def repair(platform: KwokPlatform, data: dict[str, Any]) -> Repairs:
    """Check and repair the whole fleet; the caller holds the state lock."""
    out = Repairs()
    thaw_marked(platform.fleet_id, out)
    _control_planes(platform, data, out)
    specs = [procs.ProcSpec(**p) for p in data["processes"]]
    _processes(platform, specs, out)
    layout = Layout.from_json(data["layout"])
    by_name = {s.name: s for s in specs}

    def running(name: str) -> bool:
        # A process just restarted starts clean (no overrides) and may not listen yet.
        spec = by_name.get(name)
        return spec is not None and procs.alive(spec) and name not in out.restarted

    envoys = {
        "frontdoor": layout.frontdoor_admin_port,
        **{f"gateway-{r}": g.admin_port for r, g in layout.gateways.items()},
    }
    for name, port in envoys.items():
        if running(name):
            reset_runtime(name, port, out)
    for rep in platform.replicas(data):
        clear_switches(rep.name, f"http://{rep.host}:{rep.port}", out)
    repair_certificates(layout, out)
    return out


def _control_planes(platform: KwokPlatform, data: dict[str, Any], out: Repairs) -> None:
    order = {c: i for i, c in enumerate(COMPONENTS)}
    for region in data["control_planes"]:
        cp = ControlPlane.load(platform.cp_spec(region, data))
        gone = sorted((c for c, up in cp.alive().items() if not up), key=lambda c: order.get(c, len(order)))
        for component in gone:
            try:
                cp.restart(component)
            except PlatformError as exc:
                out.failed.append(f"{region} {component}: could not start it again: {exc.message}")
                continue
            out.done.append(
                f"started {region}'s {component} again: it was not running (pid {cp.process(component).pid})"
            )


def _processes(platform: KwokPlatform, specs: list[procs.ProcSpec], out: Repairs) -> None:
    order = {k: i for i, k in enumerate(_START_ORDER)}
    gone = sorted((s for s in specs if not procs.alive(s)), key=lambda s: order.get(s.kind, len(order)))
    for spec in gone:
        procs.spawn(spec, env={PROCESS_ENV: spec.name}, fleet=platform.fleet_id)
        platform.respawned(spec)
        out.restarted.add(spec.name)
    if gone:
        # A restart that dies at once (a port still held, a bad config) must not pass for a repair.
        time.sleep(RESTART_SETTLE_S)
    for spec in gone:
        if procs.alive(spec):
            out.done.append(f"restarted {spec.name}: it was not running (pid {spec.pid} now)")
        else:
            out.failed.append(f"{spec.name} exited after restart: {procs.log_tail(spec.log, 3)}")
