"""Issue 16: with no `make bench` figures, `up` estimates how much traffic this machine serves
cleanly through the sandbox (a real burst of payments through the real fleet, CPU counted), once
per state dir, and drills warn near it; a bench measurement, when there is one, wins."""

from __future__ import annotations

import json
from pathlib import Path

from failover_drill.platforms.sandbox import capacity
from failover_drill.platforms.sandbox.platform import SandboxPlatform
from tests.conftest import Fleet, platform_dir, processes_under, topology


def test_up_estimates_capacity_once_and_drills_warn_near_it(fleet: Fleet) -> None:
    est = json.loads((fleet.state / capacity.ESTIMATE_FILE).read_text())
    assert est["requests"] == capacity.REQUESTS and est["processes"] >= 25
    assert est["cpu_ms_per_request"] > 0 and est["clean_rps"] > 0
    # The figure follows from what was measured, not a constant.
    expected = est["cores"] * capacity.USABLE_CPU_SHARE / (est["cpu_ms_per_request"] / 1000)
    assert abs(est["clean_rps"] - expected) <= 1
    p = fleet.platform
    warning = p.capacity_warning(est["clean_rps"] * 2)
    assert warning is not None and "estimated at `up`" in warning and f"{est['clean_rps']} req/s" in warning
    assert p.capacity_warning(est["clean_rps"] * 0.1) is None


def test_a_bench_figure_wins_and_a_damaged_estimate_is_measured_again(tmp_path: Path) -> None:
    home = tmp_path / "state"
    home.mkdir()
    (home / capacity.ESTIMATE_FILE).write_text("{not json")
    p = SandboxPlatform(platform_dir(home, "sandbox"), topology("istio"))
    said: list[str] = []
    p.up(said.append)
    try:
        assert "capacity estimate" in dict(p.up_timings)
        assert any("serves about" in line for line in said)
        assert capacity.known(home) is not None and capacity.known(home)[1] == "estimated at `up`"  # type: ignore[index]
        (home / capacity.BENCH_FILE).write_text(json.dumps({"max_clean_rate_rps": 123}))
        warning = p.capacity_warning(500)
        assert warning is not None and "123 req/s, measured by `make bench`" in warning
    finally:
        p.down()
    p.up(said.append)  # the same state dir: nothing to measure again
    try:
        assert "capacity estimate" not in dict(p.up_timings)
    finally:
        p.down()
    assert processes_under(home) == []
