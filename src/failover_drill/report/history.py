"""Every run in a SQLite database beside the runs; regressions flagged against the median."""

from __future__ import annotations

import sqlite3
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY, started_at TEXT, scenario TEXT, platform TEXT, mesh TEXT, fault TEXT,
    target TEXT, ttd_s REAL, ttr_s REAL, failback_s REAL, budget_pct REAL, fault_p99_ms REAL,
    requests INTEGER, failed INTEGER, passed INTEGER
)
"""
REGRESSION_FACTOR = 1.5
REGRESSION_MIN_S = 1.0


@dataclass
class HistoryRow:
    run_id: str
    started_at: str
    scenario: str
    mesh: str
    ttr_s: float | None
    budget_pct: float
    passed: bool
    regression: str | None = None


class History:
    def __init__(self, path: Path) -> None:
        self.path = path

    def _db(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, timeout=10)
        db.execute(SCHEMA)
        return db

    def record(self, r: dict[str, Any]) -> None:
        db = self._db()
        with db:
            db.execute(
                "INSERT OR REPLACE INTO runs VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    r["run_id"],
                    r.get("started_at"),
                    r["scenario"],
                    r["platform"],
                    r["mesh"],
                    r["fault"]["kind"],
                    r["fault"]["target"],
                    r["failover"]["ttd_s"],
                    r["failover"]["ttr_s"],
                    r["failover"]["failback_s"],
                    r["error_budget"]["budget_consumed_pct"],
                    r["latency_ms"]["fault"]["p99"],
                    r["traffic"]["requests"],
                    r["traffic"]["failed"],
                    int(r["verdict"]["passed"]),
                ),
            )
        db.close()

    def rows(self, scenario: str | None = None, limit: int = 50) -> list[HistoryRow]:
        if not self.path.exists():
            return []
        db = self._db()
        q = "SELECT run_id, started_at, scenario, mesh, ttr_s, budget_pct, passed FROM runs"
        args: tuple[Any, ...] = ()
        if scenario:
            q += " WHERE scenario = ?"
            args = (scenario,)
        raw = db.execute(q + " ORDER BY started_at", args).fetchall()
        db.close()
        out: list[HistoryRow] = []
        earlier: dict[tuple[str, str], list[float]] = {}
        for run_id, started, sc, mesh, ttr, budget, passed in raw:
            row = HistoryRow(run_id, started or "", sc, mesh, ttr, budget or 0.0, bool(passed))
            prev = earlier.setdefault((sc, mesh), [])
            if prev:
                med = statistics.median(prev)
                if ttr is None:
                    row.regression = f"did not recover (median TTR {med:.2f}s)"
                elif ttr > med * REGRESSION_FACTOR and ttr - med >= REGRESSION_MIN_S:
                    row.regression = f"TTR {ttr:.2f}s vs median {med:.2f}s"
            if ttr is not None:
                prev.append(ttr)
            out.append(row)
        return out[-limit:]
