"""One record per logical payment request, as the user saw it."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

OK = "ok"
DROPPED = "dropped"  # never sent: the generator had no capacity at its scheduled time (k6: dropped_iterations)


SampleRow = tuple[int, float, float, float, int, str, str | None, str | None, int, int, bool, str, str | None]


@dataclass(slots=True)
class Sample:
    seq: int
    sched: float  # scheduled send time, seconds on the drill's axis
    lat_ms: float  # completion minus scheduled send time (no coordinated omission)
    lag_ms: float  # actual send minus scheduled send
    status: int  # last HTTP status, 0 when no response came
    err: str  # "ok" or an error class
    region: str | None = None  # where it was served
    zone: str | None = None
    attempts: int = 1
    raw_failures: int = 0  # failed attempts, including ones a retry hid
    acked: bool = False  # the client got a payment id back
    key: str = ""
    version: str | None = None  # x-served-version of the replica that answered (stable / canary)

    @property
    def ok(self) -> bool:
        return self.err == OK

    def to_json(self) -> dict[str, Any]:
        return {
            "t": "s",
            "q": self.seq,
            "s": round(self.sched, 6),
            "l": round(self.lat_ms, 3),
            "g": round(self.lag_ms, 3),
            "c": self.status,
            "e": self.err,
            "r": self.region,
            "z": self.zone,
            "a": self.attempts,
            "f": self.raw_failures,
            "k": self.key,
            "ack": self.acked,
            **({"v": self.version} if self.version else {}),
        }

    def to_row(self) -> SampleRow:
        """The fields in order, for a worker's pipe: a tuple pickles and rebuilds at a fraction of
        a dict's cost (Sample(*row) on the other side)."""
        return (
            self.seq,
            self.sched,
            self.lat_ms,
            self.lag_ms,
            self.status,
            self.err,
            self.region,
            self.zone,
            self.attempts,
            self.raw_failures,
            self.acked,
            self.key,
            self.version,
        )

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Sample:
        return cls(
            seq=int(d["q"]),
            sched=float(d["s"]),
            lat_ms=float(d["l"]),
            lag_ms=float(d.get("g", 0.0)),
            status=int(d["c"]),
            err=str(d["e"]),
            region=d.get("r"),
            zone=d.get("z"),
            attempts=int(d.get("a", 1)),
            raw_failures=int(d.get("f", 0)),
            acked=bool(d.get("ack", False)),
            key=str(d.get("k", "")),
            version=d.get("v"),
        )


def payment_outcomes(recs: Iterable[dict[str, Any]]) -> Iterator[tuple[str, bool]]:
    """(idempotency key, acknowledged) of every sample record among journal records, for the
    payment reconciliation: the wire names ("k", "ack") stay known to this module alone."""
    for rec in recs:
        if rec.get("t") == "s":
            yield str(rec.get("k", "")), bool(rec.get("ack", False))


def classify(status: int, body: str) -> str:
    """Name an HTTP failure the way an SRE would look for it (Envoy's response details)."""
    if 200 <= status < 300:
        return OK
    low = body.lower()
    if "fault filter abort" in low:
        return "injected_abort"
    # A peer killed mid-handshake shows up as a TLS error from the system library (a reset socket):
    # that is a connection failure, not a certificate problem.
    # (Envoy 1.40 writes the reason with underscores: system_library ... Connection_reset_by_peer.)
    spaced = low.replace("_", " ")
    handshake_cut = "system library" in spaced or "connection reset" in spaced or "broken pipe" in spaced
    tls = "tls_error" in low or "tls error" in low or "certificate" in low or "ssl routines" in low
    if tls and not handshake_cut:
        return "tls"
    if "no healthy upstream" in low:
        return "no_healthy_upstream"
    if "upstream request timeout" in low or status == 504:
        return "upstream_timeout"
    if "upstream connect error" in low or "reset before headers" in low:
        return "upstream_connect"
    if status >= 500:
        return f"http_{status}"
    return f"http_{status}"
