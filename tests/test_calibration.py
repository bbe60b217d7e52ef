"""The stopwatch's calibration against a real (small) fleet.

Kept in its own module so it runs before the session-wide fleets start: at 1,000 req/s this
2-vCPU machine has no headroom for idle fleets beside the one being measured."""

from __future__ import annotations

from pathlib import Path

import pytest

from failover_drill.errors import EXIT_INCONCLUSIVE
from tests.conftest import processes_under, run_cli
from tests.test_drill import latest

pytestmark = pytest.mark.slow


@pytest.mark.parametrize(("rate", "workers"), [(200, 1), (500, 2), (1000, 2)])
def test_blackout_calibration(rate: int, workers: int, tmp_path: Path) -> None:
    """The stopwatch: an outage of exactly fault_s must be measured as fault_s within 2/rate + 20 ms.
    At 1,000 req/s one Python process cannot keep the schedule on 2 cores, so two workers send."""
    runs = tmp_path / "runs"
    out = run_cli(
        "drill",
        "--scenario",
        "tests/data/blackout.yaml",
        "--rate",
        str(rate),
        "--set",
        f"traffic.workers={workers}",
        "--topology",
        "tests/data/calibration-topology.yaml",
        state=tmp_path / "state",
        runs=runs,
    )
    if out.returncode == EXIT_INCONCLUSIVE and rate >= 1000:
        # Three runs in a row and the drill said each time that the machine could not hold the
        # rate (the fleet serving 1,000 req/s fills both cores of this VM in some minutes: seen 92-98%
        # busy in the baseline and recovery, ~55% during the blackout itself). That is the tool's
        # right answer, not a stopwatch error; the 200 and 500 req/s cases must be conclusive.
        why = next((line.strip() for line in out.stdout.splitlines() if "inconclusive:" in line), "")
        pytest.skip(f"this machine could not hold {rate} req/s for the calibration: {why[:300]}")
    # The calibration scenario switches off RTO and budget limits: there is no failover path to judge.
    assert out.returncode == 0, out.stdout + out.stderr
    r = latest(runs)
    assert not r["failover"]["recovered"]
    injected = r["fault"]["reverted_at_s"] - r["fault"]["injected_at_s"]
    measured = r["failover"]["outage_s"]
    assert measured is not None
    assert abs(measured - injected) <= 2 / rate + 0.020, (measured, injected, r["traffic"]["generator"])
    # The blackout's own errors; at 1,000 req/s on 2 vCPUs the loaded fleet now and then adds a stray
    # connection failure outside it (spent budget, not outage: measure.failover), never many.
    errors = r["traffic"]["errors"]
    assert errors.get("injected_abort", 0) >= 0.99 * sum(errors.values()), errors
    assert r["traffic"]["generator"]["workers"] == workers and r["traffic"]["generator"]["dropped"] == 0
    assert processes_under(tmp_path / "state") == []
