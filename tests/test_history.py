"""Run history: every run recorded, regressions flagged against the median of earlier runs that
are alike; runs that did not finish or were inconclusive are listed and never compared."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from failover_drill.report.history import SCHEMA_VERSION, History


def result(
    run_id: str,
    ttr: float | None,
    scenario: str = "region-loss-us-east1",
    *,
    kind: str = "region-loss",
    mode: str | None = "kill",
    mesh: str = "istio",
    platform: str = "sandbox",
    rate: float = 200.0,
    complete: bool = True,
    inconclusive: bool = False,
    overhead_s: float | None = None,
) -> dict[str, Any]:
    return {
        "timing": None if overhead_s is None else {"overhead_s": overhead_s},
        "run_id": run_id,
        "started_at": run_id,
        "scenario": scenario,
        "platform": platform,
        "mesh": mesh,
        "complete": complete,
        "fault": {"kind": kind, "target": "us-east1", "mode": mode},
        "failover": {"ttd_s": 0.0, "ttr_s": ttr, "failback_s": 0.0},
        "error_budget": {"budget_consumed_pct": 0.1},
        "latency_ms": {"fault": {"p99": 100.0}},
        "traffic": {"requests": 1000, "failed": 10, "rate_rps": rate},
        "verdict": {"passed": ttr is not None and not inconclusive, "inconclusive": inconclusive},
    }


def test_regression_against_median_of_earlier_runs(tmp_path: Path) -> None:
    h = History(tmp_path / "history.sqlite")
    for i, ttr in enumerate([3.0, 3.4, 2.9, 8.0, 3.1, None]):
        h.record(result(f"2026-11-27T10:0{i}", ttr))
    h.record(result("2026-11-27T10:09", 30.0, scenario="zone-loss-eu-west1", kind="zone-loss"))
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


def test_only_alike_runs_are_compared(tmp_path: Path) -> None:
    """A zone loss is not a slow region loss, a freeze not a slow kill, 500 req/s not 200: each
    of these, with a TTR far above the kill/istio/sandbox/200 median, is no regression."""
    h = History(tmp_path / "history.sqlite")
    for i in range(3):
        h.record(result(f"2026-11-27T10:0{i}", 3.0))
    others = [
        {"kind": "zone-loss"},
        {"mode": "freeze"},
        {"mesh": "cilium"},
        {"platform": "kwok"},
        {"rate": 500.0},
    ]
    for i, other in enumerate(others):
        h.record(result(f"2026-11-27T11:0{i}", 20.0, **other))  # type: ignore[arg-type]
    rows = h.rows()
    assert [r.regression for r in rows[3:]] == [None] * len(others)
    h.record(result("2026-11-27T12:00", 20.0))  # alike the first three: a regression
    assert h.rows()[-1].regression == "TTR 20.00s vs median 3.00s"


def test_unfinished_and_inconclusive_runs_are_never_compared(tmp_path: Path) -> None:
    h = History(tmp_path / "history.sqlite")
    for i in range(3):
        h.record(result(f"2026-11-27T10:0{i}", 3.0))
    h.record(result("2026-11-27T10:05", None, complete=False))  # Ctrl-C in the fault phase
    h.record(result("2026-11-27T10:06", 25.0, inconclusive=True))  # a starved stopwatch
    h.record(result("2026-11-27T10:07", 30.0, inconclusive=True))
    h.record(result("2026-11-27T10:08", 3.2))
    rows = h.rows()
    assert [(r.regression, r.excluded) for r in rows[3:]] == [
        (None, "did not finish"),
        (None, "inconclusive"),
        (None, "inconclusive"),
        (None, None),  # the median is still 3.0: the excluded runs did not move it
    ]


def test_a_history_of_the_first_layout_is_upgraded_in_place(tmp_path: Path) -> None:
    path = tmp_path / "history.sqlite"
    db = sqlite3.connect(path)
    db.execute(
        "CREATE TABLE runs (run_id TEXT PRIMARY KEY, started_at TEXT, scenario TEXT, platform TEXT, mesh TEXT, "
        "fault TEXT, target TEXT, ttd_s REAL, ttr_s REAL, failback_s REAL, budget_pct REAL, fault_p99_ms REAL, "
        "requests INTEGER, failed INTEGER, passed INTEGER)"
    )
    db.execute(
        "INSERT INTO runs VALUES ('old', '2026-11-01', 'region-loss-us-east1', 'sandbox', 'istio', 'region-loss', "
        "'us-east1', 0, 3.0, 0, 0.1, 100, 1000, 10, 1)"
    )
    db.commit()
    db.close()
    h = History(path)
    h.record(result("2026-11-27T10:00", 3.1, mode=None, rate=200.0))
    rows = h.rows()
    assert [r.run_id for r in rows] == ["old", "2026-11-27T10:00"]
    assert rows[0].mode is None and rows[0].rate_rps is None and rows[0].excluded is None
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_time_outside_the_measured_phases_is_flagged_when_it_grows_on_the_same_platform(tmp_path: Path) -> None:
    """Issue 20: result.json timing.overhead_s goes into history, so a slower bring-up, report or
    teardown shows as a regression; kwok's slower control planes are not compared with the sandbox."""
    h = History(tmp_path / "history.sqlite")
    runs = [("sandbox", 9.0), ("sandbox", 10.0), ("kwok", 70.0), ("sandbox", 9.5), ("sandbox", 16.0), ("sandbox", 10.5)]
    for i, (platform, over) in enumerate(runs):
        h.record(result(f"2026-11-27T10:0{i}", 3.0, platform=platform, overhead_s=over))
    h.record(result("2026-11-27T10:09", 3.0, overhead_s=None))  # a session: no timing
    rows = {r.run_id[-2:]: r for r in h.rows()}
    assert rows["02"].slower is None  # first kwok run: nothing to compare with
    assert rows["04"].slower == "overhead 16.0s vs median 9.5s"
    assert rows["04"].regression is None  # its failover was as fast as ever
    assert rows["05"].slower is None and rows["09"].overhead_s is None and rows["09"].slower is None
