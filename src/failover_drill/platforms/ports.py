"""Port allocation: free ports below the kernel's ephemeral range, or a fixed range checked before
anything starts.

Why not let the kernel pick (bind to port 0): it picks from the ephemeral range, the same range it
takes every outgoing connection's source port from. A replica or gateway restarted on its old port
while traffic flows (a region-loss revert) then finds that port taken by some client connection
and cannot bind: the region never comes back, and the drill blames the mesh. Ports below the
ephemeral range are never handed out as source ports."""

from __future__ import annotations

import random
import socket
import time
from pathlib import Path

from failover_drill.errors import PortInUse


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        # No SO_REUSEADDR: a port in TIME_WAIT would still bind for Envoy/uvicorn (they set it),
        # but a listening socket must make this fail.
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def allocate(names: list[str], base_port: int = 0) -> dict[str, int]:
    """One port per name. base_port=0 picks free ones (quiet_range); otherwise base_port, base_port+1, ..."""
    if base_port:
        fixed = {name: base_port + i for i, name in enumerate(names)}
        taken = [f"{p} ({n})" for n, p in fixed.items() if not port_free(p)]
        if taken:
            raise PortInUse(
                f"port {taken[0]} is already in use" + (f" (and {len(taken) - 1} more)" if len(taken) > 1 else ""),
                hint=f"stop what listens there (`ss -ltnp | grep {taken[0].split()[0]}`), or change "
                "sandbox.base_port in the topology file (0 picks free ports)",
            )
        return fixed
    lo, hi = quiet_range()
    held: list[socket.socket] = []
    ports = {}
    now = time.monotonic()
    for port, at in list(_HANDED_OUT.items()):
        if now - at > HANDED_OUT_HOLD_S:
            del _HANDED_OUT[port]
    try:
        # A random start keeps two fleets brought up at once from probing the same ports first.
        span = hi - lo
        start = random.randrange(span) if span > 0 else 0
        candidates = (lo + (start + i) % span for i in range(span)) if span > 0 else iter(())
        for name in names:
            for port in candidates:
                if port in _HANDED_OUT:
                    continue
                s = _try_bind(port)
                if s is not None:
                    held.append(s)  # hold every socket until all are picked, so none repeats
                    ports[name] = port
                    break
            else:  # no quiet range here (or it is full): the kernel's choice is the fallback
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                s.bind(("127.0.0.1", 0))
                held.append(s)
                ports[name] = s.getsockname()[1]
    finally:
        for s in held:
            s.close()
    for port in ports.values():
        _HANDED_OUT[port] = now
    return ports


# Ports this process handed out lately, never handed out again meanwhile: a fleet allocates in
# several calls (gateways, then each control plane, kwok, rollouts controllers) and starts each
# process later, so a port free at one call could be picked again by the next before its owner
# binds it (seen: a kwok gateway's port taken by another component of the same fleet).
_HANDED_OUT: dict[int, float] = {}
HANDED_OUT_HOLD_S = 600.0


EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
QUIET_SPAN = 12000  # ports below the ephemeral range to pick from


def quiet_range(path: Path = EPHEMERAL_RANGE) -> tuple[int, int]:
    """[lo, hi): ports the kernel never gives an outgoing connection (below ip_local_port_range)."""
    try:
        first = int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        first = 32768  # Linux's default; elsewhere (macOS: 49152) this is below it too
    hi = first
    lo = max(10000, hi - QUIET_SPAN)
    return (lo, hi) if hi - lo >= 1000 else (0, 0)


def _try_bind(port: int) -> socket.socket | None:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", port))  # no SO_REUSEADDR: a listener or a live connection refuses it
    except OSError:
        s.close()
        return None
    return s
