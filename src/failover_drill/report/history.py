"""Every run in a SQLite database beside the runs; regressions flagged against the median of
earlier runs that are alike (same fault, mode, mesh, platform and rate). Runs that did not finish
or whose stopwatch was starved are listed but never compared, in either direction."""

from __future__ import annotations

import sqlite3
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# PRAGMA user_version: 1 was the first layout (no version set, read as 0); 2 adds what makes two
# runs comparable (mode, rate) and what excludes one (complete, inconclusive); 3 adds the drill's
# time outside its measured phases (result.json timing.overhead_s).
SCHEMA_VERSION = 3
CREATE = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY, started_at TEXT, scenario TEXT, platform TEXT, mesh TEXT, fault TEXT,
    target TEXT, ttd_s REAL, ttr_s REAL, failback_s REAL, budget_pct REAL, fault_p99_ms REAL,
    requests INTEGER, failed INTEGER, passed INTEGER,
    mode TEXT, rate_rps REAL, complete INTEGER, inconclusive INTEGER, overhead_s REAL
)
"""
ADDED = (
    ("mode", "TEXT"), ("rate_rps", "REAL"), ("complete", "INTEGER"), ("inconclusive", "INTEGER"),
    ("overhead_s", "REAL"),
)  # fmt: skip
COLUMNS = (
    "run_id, started_at, scenario, platform, mesh, fault, target, ttd_s, ttr_s, failback_s, budget_pct, "
    "fault_p99_ms, requests, failed, passed, mode, rate_rps, complete, inconclusive, overhead_s"
)
REGRESSION_FACTOR = 1.5
REGRESSION_MIN_S = 1.0
# Overhead (bring-up, reports, teardown) varies more run to run than a failover does.
OVERHEAD_REGRESSION_MIN_S = 2.0


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
    platform: str = ""
    fault: str = ""
    mode: str | None = None
    rate_rps: float | None = None
    # Why this run is left out of every comparison (None: it counts).
    excluded: str | None = None
    overhead_s: float | None = None
    # Time outside the measured phases grew against earlier runs on the same platform.
    slower: str | None = None

    def group(self) -> tuple[str, str | None, str, str, float | None]:
        """Runs are compared only with runs that are alike in all of these."""
        return (self.fault, self.mode, self.mesh, self.platform, self.rate_rps)


class History:
    def __init__(self, path: Path) -> None:
        self.path = path

    def _db(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, timeout=10)
        with db:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            has_runs = db.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='runs'").fetchone()
            if has_runs and version < SCHEMA_VERSION:
                present = {r[1] for r in db.execute("PRAGMA table_info(runs)")}
                for name, sql_type in ADDED:
                    if name not in present:
                        db.execute(f"ALTER TABLE runs ADD COLUMN {name} {sql_type}")
            db.execute(CREATE)
            if version != SCHEMA_VERSION:
                db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        return db

    def record(self, r: dict[str, Any]) -> None:
        db = self._db()
        verdict = r["verdict"]
        with db:
            db.execute(
                f"INSERT OR REPLACE INTO runs ({COLUMNS}) VALUES ({','.join('?' * 20)})",
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
                    int(verdict["passed"]),
                    r["fault"].get("mode"),
                    r["traffic"].get("rate_rps"),
                    int(r.get("complete", True)),
                    int(bool(verdict.get("inconclusive", False))),
                    (r.get("timing") or {}).get("overhead_s"),
                ),
            )
        db.close()

    def rows(self, scenario: str | None = None, limit: int = 50) -> list[HistoryRow]:
        if not self.path.exists():
            return []
        db = self._db()
        q = (
            "SELECT run_id, started_at, scenario, platform, mesh, fault, mode, rate_rps, ttr_s, budget_pct, "
            "passed, complete, inconclusive, overhead_s FROM runs"
        )
        args: tuple[Any, ...] = ()
        if scenario:
            q += " WHERE scenario = ?"
            args = (scenario,)
        raw = db.execute(q + " ORDER BY started_at", args).fetchall()
        db.close()
        out: list[HistoryRow] = []
        earlier: dict[tuple[str, str | None, str, str, float | None], list[float]] = {}
        overheads: dict[str, list[float]] = {}
        for run_id, started, sc, platform, mesh, fault, mode, rate, ttr, budget, passed, complete, inconcl, over in raw:
            row = HistoryRow(
                run_id, started or "", sc, mesh, ttr, budget or 0.0, bool(passed),
                platform=platform or "", fault=fault or "", mode=mode, rate_rps=rate, overhead_s=over,
            )  # fmt: skip
            if over is not None:
                # Overhead depends on the platform alone (its bring-up and teardown), not the fault.
                seen = overheads.setdefault(row.platform, [])
                if seen:
                    med = statistics.median(seen)
                    if over > med * REGRESSION_FACTOR and over - med >= OVERHEAD_REGRESSION_MIN_S:
                        row.slower = f"overhead {over:.1f}s vs median {med:.1f}s"
                seen.append(over)
            if complete == 0:
                row.excluded = "did not finish"
            elif inconcl:
                row.excluded = "inconclusive"
            out.append(row)
            if row.excluded:
                continue
            prev = earlier.setdefault(row.group(), [])
            if prev:
                med = statistics.median(prev)
                if ttr is None:
                    row.regression = f"did not recover (median TTR {med:.2f}s)"
                elif ttr > med * REGRESSION_FACTOR and ttr - med >= REGRESSION_MIN_S:
                    row.regression = f"TTR {ttr:.2f}s vs median {med:.2f}s"
            if ttr is not None:
                prev.append(ttr)
        return out[-limit:]
