"""The pods' network: a network namespace of the fleet's own where every pod CIDR is a local
address, joined to the host by a veth pair.

The API server refuses loopback addresses in EndpointSlices, so pods need real-looking IPs; inside
this namespace `10.240.0.0/12` is routed to `lo` (table local), so a replica can bind its pod's
own IP, and the host reaches those IPs through the veth (link-local addresses at both ends). The
gateways, probes and the front door stay in the host namespace; only the replicas run inside.
Deleting the namespace takes the veth and the host route with it. Needs root (`ip netns add`): on
the host, or in the fleet's own user namespace where an ordinary user is root (userns.py).
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import shutil
import subprocess
from pathlib import Path

from failover_drill.errors import PlatformError

POD_SUPERNET = "10.240.0.0/12"


def region_cidr(index: int) -> str:
    """Region i's pods: 10.(240+i).0.0/16."""
    return f"10.{240 + index}.0.0/16"


def node_cidr(region_index: int, zone_index: int) -> str:
    """Zone j of region i: 10.(240+i).(j+1).0/24 (the node's spec.podCIDR)."""
    return f"10.{240 + region_index}.{zone_index + 1}.0/24"


def pod_ip(cidr: str, slot: int) -> str:
    """The slot-th usable address of a node's pod CIDR (slot 0 is .2: .1 is kept for a gateway)."""
    net = ipaddress.ip_network(cidr)
    return str(net.network_address + 2 + slot)


def pod_slot(cidr: str, ip: str | None) -> int | None:
    """pod_ip's inverse: the slot of ip in the node's pod CIDR, None when it is not one of them."""
    if not cidr or not ip:
        return None
    net = ipaddress.ip_network(cidr)
    try:
        slot = int(ipaddress.ip_address(ip)) - int(net.network_address) - 2
    except ValueError:
        return None
    return slot if 0 <= slot < net.num_addresses - 3 else None


def _run(*argv: str, ok_to_fail: bool = False) -> subprocess.CompletedProcess[str]:
    out = subprocess.run(argv, capture_output=True, text=True, timeout=20, check=False)
    if out.returncode != 0 and not ok_to_fail:
        raise PlatformError(
            f"`{' '.join(argv)}` failed: {(out.stderr or out.stdout).strip()[:300]}",
            hint="the kwok platform's pod network needs root and iproute2",
        )
    return out


def can_create() -> str | None:
    """None when this process can make the namespace, else why not."""
    if shutil.which("ip") is None:
        return "the `ip` command (iproute2) is not installed"
    if os.geteuid() != 0:
        return "creating the pods' network namespace needs root (ip netns add, a veth pair)"
    return None


class PodNetwork:
    def __init__(self, state_dir: Path) -> None:
        tag = hashlib.sha1(str(state_dir.resolve()).encode()).hexdigest()[:8]
        self.name = f"fd-{tag}"
        self.host_if = f"fdh-{tag}"
        self.ns_if = f"fdn-{tag}"
        # One /30 of 169.254.0.0/16 per fleet, from the same hash: two fleets' links do not clash.
        k = int(tag[:4], 16) % 16000
        base = ipaddress.ip_address("169.254.0.0") + 4 * (k + 64)
        self.host_ip, self.ns_ip = str(base + 1), str(base + 2)

    def exists(self) -> bool:
        return Path(f"/run/netns/{self.name}").exists()

    def _owner_of_supernet(self) -> str | None:
        out = _run("ip", "-o", "route", "show", POD_SUPERNET, ok_to_fail=True).stdout.strip()
        return out or None

    def create(self) -> None:
        why = can_create()
        if why:
            raise PlatformError(
                f"the kwok platform cannot make its pod network: {why}", hint="run as root, or use the sandbox"
            )
        if self.exists():
            self.delete()
        taken = self._owner_of_supernet()
        if taken:
            raise PlatformError(
                f"the pod range {POD_SUPERNET} is already routed on this host ({taken})",
                hint="another kwok fleet is up: `failover-drill down --platform kwok --state-dir ...` it first",
            )
        try:
            _run("ip", "netns", "add", self.name)
            _run("ip", "-n", self.name, "link", "set", "lo", "up")
            _run("ip", "-n", self.name, "route", "add", "local", POD_SUPERNET, "dev", "lo", "table", "local")
            _run("ip", "link", "add", self.host_if, "type", "veth", "peer", "name", self.ns_if)
            _run("ip", "link", "set", self.ns_if, "netns", self.name)
            _run("ip", "addr", "add", f"{self.host_ip}/30", "dev", self.host_if)
            _run("ip", "link", "set", self.host_if, "up")
            _run("ip", "-n", self.name, "addr", "add", f"{self.ns_ip}/30", "dev", self.ns_if)
            _run("ip", "-n", self.name, "link", "set", self.ns_if, "up")
            _run("ip", "route", "add", POD_SUPERNET, "via", self.ns_ip, "dev", self.host_if)
        except BaseException:
            self.delete()
            raise

    def delete(self) -> None:
        _run("ip", "netns", "del", self.name, ok_to_fail=True)
        # The veth and the route go with the namespace; a half-made one may have left the host end.
        _run("ip", "link", "del", self.host_if, ok_to_fail=True)

    def exec_argv(self, argv: list[str]) -> list[str]:
        return ["ip", "netns", "exec", self.name, *argv]
