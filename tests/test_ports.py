"""Port allocation keeps fleets off the ports the kernel hands to outgoing connections."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from failover_drill.platforms import ports as ports_mod
from failover_drill.platforms.ports import allocate, quiet_range


def test_picked_ports_are_distinct_and_below_the_ephemeral_range() -> None:
    lo, hi = quiet_range()
    ports = allocate([f"p{i}" for i in range(40)])
    assert len(set(ports.values())) == 40
    assert all(lo <= p < hi for p in ports.values()), (lo, hi, ports)


def test_a_port_in_use_as_a_connections_source_port_is_skipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What a restarted replica used to hit: its port taken by a client connection's source port."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    lo, _ = quiet_range()
    client = socket.socket()
    client.bind(("127.0.0.1", lo))  # a connection whose local port sits in the quiet range
    client.connect(listener.getsockname())
    narrow = tmp_path / "range"
    narrow.write_text(f"{lo + 1000}\t60999\n")
    try:
        assert quiet_range(narrow) == (max(10000, lo + 1000 - 12000), lo + 1000)
        monkeypatch.setattr(ports_mod.random, "randrange", lambda n: 0)  # scan from lo upwards
        picked = allocate(["a", "b"])
        assert lo not in picked.values() and picked["a"] > lo, picked
    finally:
        client.close()
        listener.close()


def test_a_missing_or_odd_range_file_falls_back_to_linuxs_default(tmp_path: Path) -> None:
    assert quiet_range(tmp_path / "absent") == (20768, 32768)
    bad = tmp_path / "bad"
    bad.write_text("garbage")
    assert quiet_range(bad) == (20768, 32768)
    low = tmp_path / "low"
    low.write_text("1500 60999")  # no room below: the kernel's choice is the fallback
    assert quiet_range(low) == (0, 0)


def test_ports_handed_out_are_not_handed_out_again_before_their_owner_binds_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A fleet allocates in several calls (gateways, each control plane, kwok, the rollouts
    controllers) and starts the processes later: the second call used to pick ports the first had
    just returned, since nothing was bound to them yet (a kwok gateway then failed to bind)."""
    lo = quiet_range()[0]
    monkeypatch.setattr(ports_mod, "quiet_range", lambda: (lo, lo + 200))
    monkeypatch.setattr(ports_mod.random, "randrange", lambda n: 0)  # both calls scan from lo up
    monkeypatch.setattr(ports_mod, "_HANDED_OUT", {})
    first = allocate([f"a{i}" for i in range(10)])
    second = allocate([f"b{i}" for i in range(10)])
    assert not set(first.values()) & set(second.values()), (first, second)
    monkeypatch.setattr(ports_mod, "HANDED_OUT_HOLD_S", 0.0)  # long past: they may be reused
    third = allocate(["c0"])
    assert third["c0"] == min(first.values())
