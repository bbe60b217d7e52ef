"""A region's payment ledger: one SQLite file shared by the region's replicas (its 'database')."""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from tenacity import Retrying, retry_if_exception, stop_after_delay, wait_fixed

SCHEMA = """
CREATE TABLE IF NOT EXISTS payments (
    idempotency_key TEXT PRIMARY KEY,
    payment_id TEXT NOT NULL,
    amount_cents INTEGER NOT NULL,
    currency TEXT NOT NULL,
    region TEXT NOT NULL,
    zone TEXT NOT NULL,
    replica TEXT NOT NULL,
    created_wall REAL NOT NULL
)
"""


@dataclass(frozen=True)
class Charge:
    idempotency_key: str
    payment_id: str
    amount_cents: int
    currency: str
    region: str
    zone: str
    replica: str
    created_wall: float


def connect(path: Path, setup_timeout_s: float = 10.0) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, timeout=5.0, isolation_level=None, check_same_thread=False)
    # A region's replicas start together and race to switch the new file to WAL; that switch can
    # answer "database is locked" at once, without waiting on the busy timeout. Retry it.
    try:
        for attempt in Retrying(
            stop=stop_after_delay(setup_timeout_s),
            wait=wait_fixed(0.05),
            retry=retry_if_exception(lambda exc: isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc)),
            reraise=True,
        ):
            with attempt:
                conn.execute("PRAGMA journal_mode=WAL")
                # NORMAL in WAL mode survives a process kill (only an OS crash can lose the last commits).
                conn.execute("PRAGMA synchronous=NORMAL")
                conn.execute(SCHEMA)
    except sqlite3.Error:
        conn.close()
        raise
    return conn


def charge(
    conn: sqlite3.Connection,
    key: str,
    payment_id: str,
    amount_cents: int,
    currency: str,
    where: tuple[str, str, str],
) -> tuple[Charge, bool]:
    """Record a payment once per key; returns (the stored charge, whether this call created it)."""
    region, zone, replica = where
    cur = conn.execute(
        "INSERT OR IGNORE INTO payments VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (key, payment_id, amount_cents, currency, region, zone, replica, time.time()),
    )
    created = cur.rowcount == 1
    row = conn.execute("SELECT * FROM payments WHERE idempotency_key = ?", (key,)).fetchone()
    return Charge(*row), created


def read_all(path: Path) -> list[Charge]:
    if not path.exists():
        return []
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5.0)
    try:
        return [Charge(*row) for row in conn.execute("SELECT * FROM payments")]
    except sqlite3.OperationalError:
        return []
    finally:
        conn.close()
