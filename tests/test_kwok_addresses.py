"""Pod addresses on a kwok node: a kubelet agent that restarts finds each running pod's slot from
the IP in its status (the API server refuses a pod IP that changes)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from failover_drill.platforms.kwok.netns import pod_ip, pod_slot


@given(st.integers(min_value=0, max_value=250))
def test_a_slot_comes_back_from_its_address(slot: int) -> None:
    assert pod_slot("10.241.3.0/24", pod_ip("10.241.3.0/24", slot)) == slot


def test_addresses_outside_the_nodes_pods_have_no_slot() -> None:
    cidr = "10.241.3.0/24"
    for ip in ("10.241.4.2", "10.241.3.1", "10.241.3.0", "10.241.3.255", "not-an-ip", "", None):
        assert pod_slot(cidr, ip) is None, ip
    assert pod_slot("", "10.241.3.2") is None
