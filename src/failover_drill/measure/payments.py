"""Payment reconciliation: what the client was told against what the ledgers hold.

Joins on disk (SQLite) so an hour-long drill does not hold every key in memory.
"""

from __future__ import annotations

import sqlite3
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

EXAMPLES = 20


@dataclass
class Reconciliation:
    requests: int = 0
    acknowledged: int = 0
    charged: int = 0
    lost: int = 0
    duplicated: int = 0
    charged_unacknowledged: int = 0
    lost_keys: list[str] = field(default_factory=list)
    duplicated_keys: list[str] = field(default_factory=list)
    unacknowledged_keys: list[str] = field(default_factory=list)


def reconcile(
    outcomes: Iterable[tuple[str, bool]], charges: Iterable[tuple[str, str]], workdir: Path | None = None
) -> Reconciliation:
    """outcomes: (idempotency key, acknowledged) per request; charges: (key, region) per ledger row."""
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        db = sqlite3.connect(Path(tmp) / "reconcile.sqlite")
        db.execute("CREATE TABLE outcome (k TEXT PRIMARY KEY, ack INTEGER)")
        db.execute("CREATE TABLE charge (k TEXT, region TEXT)")
        db.executemany("INSERT OR REPLACE INTO outcome VALUES (?, ?)", ((k, int(a)) for k, a in outcomes if k))
        db.executemany("INSERT INTO charge VALUES (?, ?)", charges)
        db.execute("CREATE INDEX charge_k ON charge (k)")
        r = Reconciliation()
        r.requests = db.execute("SELECT count(*) FROM outcome").fetchone()[0]
        r.acknowledged = db.execute("SELECT count(*) FROM outcome WHERE ack = 1").fetchone()[0]
        # Only keys this drill sent: ledgers may hold earlier drills' payments.
        r.charged = db.execute("SELECT count(DISTINCT c.k) FROM charge c JOIN outcome o ON o.k = c.k").fetchone()[0]
        lost = "SELECT o.k FROM outcome o WHERE o.ack = 1 AND NOT EXISTS (SELECT 1 FROM charge c WHERE c.k = o.k)"
        dup = "SELECT c.k FROM charge c JOIN outcome o ON o.k = c.k GROUP BY c.k HAVING count(DISTINCT c.region) > 1"
        unack = "SELECT DISTINCT c.k FROM charge c JOIN outcome o ON o.k = c.k WHERE o.ack = 0"
        for sql, attr, keys in (
            (lost, "lost", "lost_keys"),
            (dup, "duplicated", "duplicated_keys"),
            (unack, "charged_unacknowledged", "unacknowledged_keys"),
        ):
            setattr(r, attr, db.execute(f"SELECT count(*) FROM ({sql})").fetchone()[0])
            setattr(r, keys, [row[0] for row in db.execute(f"{sql} ORDER BY 1 LIMIT {EXAMPLES}")])
        db.close()
    return r
