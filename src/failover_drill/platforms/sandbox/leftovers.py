"""What a fault leaves behind on the sandbox, found on the live fleet and repaired.

The fault ledger says what was injected; when it is lost or torn (a drill and its watchdog killed
mid-write) the ledger says nothing, while replicas stay frozen. So `recover` also compares the
fleet itself with what a healthy one looks like (issue 16, "reality over records"):

- processes: a stopped one (state T) gets SIGCONT; a dead one is restarted; a process carrying the
  fleet's mark that the state does not name is stopped;
- Envoy runtime: an admin-layer override of a fault key (fault.*, link.*, blackout.*) whose
  effect differs from the config's static layer is deleted, which restores the baseline;
- replica fault switches (/_drill/faults): anything but all-zero is cleared;
- certificates: a stopped rotation agent, an expired intermediate, or a gateway leaf that is
  expired, not yet valid or past its renewal point is re-issued, as the rotation agent would.

Each check is idempotent: on a healthy fleet it finds nothing and changes nothing.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable

from failover_drill.platforms import processes as procs
from failover_drill.platforms.envoy.layout import Layout
from failover_drill.platforms.envoy.leftovers import Repairs, clear_switches, repair_certificates, reset_runtime

RESTART_SETTLE_S = 0.3


def repair(
    layout: Layout,
    specs: list[procs.ProcSpec],
    on_respawn: Callable[[procs.ProcSpec], None],
    fleet: str,
) -> Repairs:
    """Check and repair the whole fleet; the caller holds the state lock."""
    out = Repairs()
    if not any(procs.alive(s) for s in specs):
        return out  # a fleet that is down has nothing running to repair (`up` cleans it up)
    _processes(specs, on_respawn, fleet, out)
    by_name = {s.name: s for s in specs}

    def running(name: str) -> bool:
        # A process just restarted starts clean (no overrides, no switches) and may not listen yet.
        spec = by_name.get(name)
        return spec is not None and procs.alive(spec) and name not in out.restarted

    envoys = {
        "frontdoor": layout.frontdoor_admin_port,
        **{f"gateway-{r}": g.admin_port for r, g in layout.gateways.items()},
    }
    for name, port in envoys.items():
        if running(name):
            reset_runtime(name, port, out)
    for rep in layout.replicas:
        if running(rep.name):
            clear_switches(rep.name, f"http://127.0.0.1:{rep.port}", out)
    repair_certificates(layout, out)
    return out


# -- processes ----------------------------------------------------------------------------------


def _processes(
    specs: list[procs.ProcSpec], on_respawn: Callable[[procs.ProcSpec], None], fleet: str, out: Repairs
) -> None:
    known = {s.pid for s in specs if procs.alive(s)}
    strays = [p for p in procs.marked(fleet) if p.pid not in known]
    if strays:
        # First: a stray may hold the port a dead process needs back.
        left = procs.stop_procs(strays)
        stopped = [p.pid for p in strays if p.pid not in left]
        if stopped:
            out.done.append(f"stopped {len(stopped)} stray process(es) of this fleet: pids {_pids(stopped)}")
        if left:
            out.failed.append(f"stray process(es) of this fleet would not stop: pids {_pids(left)}")
    restarted: list[procs.ProcSpec] = []
    for spec in specs:
        if procs.frozen(spec):
            procs.signal_proc(spec, signal.SIGCONT)
            out.done.append(f"resumed {spec.name} (pid {spec.pid}): it was stopped (SIGSTOP), now SIGCONT")
        elif not procs.alive(spec):
            procs.spawn(spec, fleet=fleet)
            on_respawn(spec)
            restarted.append(spec)
    if restarted:
        # A restart that dies at once (a port still held, a bad config) must not pass for a repair.
        time.sleep(RESTART_SETTLE_S)
    for spec in restarted:
        out.restarted.add(spec.name)
        if procs.alive(spec):
            out.done.append(f"restarted {spec.name}: it was not running (pid {spec.pid} now)")
        else:
            out.failed.append(f"{spec.name} exited after restart: {procs.log_tail(spec.log, 3)}")


def _pids(pids: list[int]) -> str:
    return ", ".join(map(str, pids))
