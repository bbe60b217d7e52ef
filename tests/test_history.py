"""Run history: every run recorded, regressions flagged against the median of earlier runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from failover_drill.report.history import History


def result(run_id: str, ttr: float | None, scenario: str = "region-loss-us-east1") -> dict[str, Any]:
    return {
        "run_id": run_id,
        "started_at": run_id,
        "scenario": scenario,
        "platform": "sandbox",
        "mesh": "istio",
        "fault": {"kind": "region-loss", "target": "us-east1"},
        "failover": {"ttd_s": 0.0, "ttr_s": ttr, "failback_s": 0.0},
        "error_budget": {"budget_consumed_pct": 0.1},
        "latency_ms": {"fault": {"p99": 100.0}},
        "traffic": {"requests": 1000, "failed": 10},
        "verdict": {"passed": ttr is not None},
    }


def test_regression_against_median_of_earlier_runs(tmp_path: Path) -> None:
    h = History(tmp_path / "history.sqlite")
    for i, ttr in enumerate([3.0, 3.4, 2.9, 8.0, 3.1, None]):
        h.record(result(f"2026-11-27T10:0{i}", ttr))
    h.record(result("2026-11-27T10:09", 30.0, scenario="zone-loss-eu-west1"))
    rows = h.rows("region-loss-us-east1")
    assert [r.ttr_s for r in rows] == [3.0, 3.4, 2.9, 8.0, 3.1, None]
    flags = [r.regression for r in rows]
    assert flags[:3] == [None, None, None]
    assert flags[3] is not None and "8.00s vs median 3.00s" in flags[3]
    assert flags[4] is None  # 3.1 s is not 1.5x the median
    assert flags[5] is not None and "did not recover" in flags[5]
    # another scenario has its own baseline: its first run is never a regression
    assert [r.regression for r in h.rows("zone-loss-eu-west1")] == [None]
    assert len(h.rows()) == 7
