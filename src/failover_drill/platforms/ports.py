"""Port allocation: free ports picked by the kernel, or a fixed range checked before anything starts."""

from __future__ import annotations

import socket

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
    """One port per name. base_port=0 asks the kernel; otherwise base_port, base_port+1, ..."""
    if base_port:
        ports = {name: base_port + i for i, name in enumerate(names)}
        taken = [f"{p} ({n})" for n, p in ports.items() if not port_free(p)]
        if taken:
            raise PortInUse(
                f"port {taken[0]} is already in use" + (f" (and {len(taken) - 1} more)" if len(taken) > 1 else ""),
                hint=f"stop what listens there (`ss -ltnp | grep {taken[0].split()[0]}`), or change "
                "sandbox.base_port in the topology file (0 picks free ports)",
            )
        return ports
    held: list[socket.socket] = []
    ports = {}
    try:
        for name in names:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            held.append(s)  # hold every socket until all are picked, so none repeats
            ports[name] = s.getsockname()[1]
    finally:
        for s in held:
            s.close()
    return ports
