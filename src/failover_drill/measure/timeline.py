"""Samples folded into fixed buckets (default 100 ms) by scheduled send time.

Memory stays flat: a bucket keeps its raw latencies only while requests scheduled in it can still
complete, then shrinks to a few percentiles. Whole-phase latency lives in HDR histograms.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from hdrh.histogram import HdrHistogram

from failover_drill.traffic.generator import LATE_MS
from failover_drill.traffic.samples import DROPPED, Sample

HIST_MAX_US = 600_000_000  # 10 minutes


def new_hist() -> HdrHistogram:
    return HdrHistogram(1, HIST_MAX_US, 2)


def pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile of a few hundred exact values (a 0.1 s bucket, the live view):
    sorting them costs less than filling an HDR histogram, which the phases use."""
    if not values:
        return math.nan
    values = sorted(values)
    k = min(len(values) - 1, max(0, math.ceil(q / 100 * len(values)) - 1))
    return values[k]


@dataclass
class Bucket:
    count: int = 0  # requests sent (dropped ones excluded)
    ok: int = 0
    dropped: int = 0
    raw_failures: int = 0
    attempts: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    served: Counter[str] = field(default_factory=Counter)  # successful requests by region
    zones: Counter[str] = field(default_factory=Counter)
    first_err: float = math.inf
    last_err: float = -math.inf
    # Send times (scheduled + lag) of the first and last failure: the fault acts on requests
    # when they leave, so the outage window is measured on send times.
    first_err_sent: float = math.inf
    last_err_sent: float = -math.inf
    lat: list[float] | None = field(default_factory=list)
    p50: float = math.nan
    p99: float = math.nan
    max: float = math.nan

    @property
    def failed(self) -> int:
        return self.count - self.ok

    def seal(self) -> None:
        if self.lat is None:
            return
        if self.lat:
            self.p50, self.p99, self.max = pct(self.lat, 50), pct(self.lat, 99), max(self.lat)
        self.lat = None


EMPTY = Bucket(lat=None)  # never written: Timeline.add only touches buckets it stores


@dataclass(frozen=True)
class Phase:
    name: str
    start: float
    end: float


class Timeline:
    def __init__(self, bucket_s: float = 0.1, horizon_s: float = 5.0) -> None:
        self.bucket_s = bucket_s
        self.horizon_s = horizon_s  # longest a request can take; older buckets are sealed
        self.buckets: dict[int, Bucket] = {}
        self.phases: list[Phase] = []
        self.phase_hist: dict[str, HdrHistogram] = {}
        self.phase_err_hist: dict[str, HdrHistogram] = {}  # latency of failed requests
        self.phase_counts: dict[str, Counter[str]] = {}
        self.phase_lag: dict[str, HdrHistogram] = {}
        self._sealed_upto = -1
        self._latest = 0.0

    def index(self, t: float) -> int:
        """Bucket of time t; the epsilon keeps 10.0 in bucket 100 although 10.0 // 0.1 == 99.0."""
        return math.floor(t / self.bucket_s + 1e-9)

    def set_phases(self, phases: list[Phase]) -> None:
        self.phases = phases

    def phase_of(self, t: float) -> str | None:
        for p in self.phases:
            if p.start <= t < p.end:
                return p.name
        return None

    def add(self, s: Sample) -> None:
        idx = self.index(s.sched)
        b = self.buckets.get(idx)
        if b is None:
            b = self.buckets[idx] = Bucket()
        if s.err == DROPPED:
            b.dropped += 1
            return
        b.count += 1
        b.attempts += s.attempts
        b.raw_failures += s.raw_failures
        if s.ok:
            b.ok += 1
            if s.region:
                b.served[s.region] += 1
            if s.zone:
                b.zones[s.zone] += 1
        else:
            b.errors[s.err] += 1
            b.first_err = min(b.first_err, s.sched)
            b.last_err = max(b.last_err, s.sched)
            sent = s.sched + s.lag_ms / 1000.0
            b.first_err_sent = min(b.first_err_sent, sent)
            b.last_err_sent = max(b.last_err_sent, sent)
        # Latency is that of successful requests: a failure's time (an instant 503, a 2 s timeout)
        # says how it failed, not how fast the service was, and mixed in it pulled an outage's p50
        # down to ~2 ms. Failures get their own histogram.
        if s.ok and b.lat is not None:
            b.lat.append(s.lat_ms)
        phase = self.phase_of(s.sched)
        if phase is not None:
            hists = self.phase_hist if s.ok else self.phase_err_hist
            h = hists.get(phase)
            if h is None:
                h = hists[phase] = new_hist()
            h.record_value(max(1, min(HIST_MAX_US, round(s.lat_ms * 1000))))
            lag = self.phase_lag.get(phase)
            if lag is None:
                lag = self.phase_lag[phase] = new_hist()
            lag.record_value(max(1, min(HIST_MAX_US, round(s.lag_ms * 1000))))
            c = self.phase_counts.setdefault(phase, Counter())
            c["requests"] += 1
            if s.lag_ms > LATE_MS:
                c["late"] += 1
            c["ok" if s.ok else "failed"] += 1
            if s.ok and s.region:
                c[f"region:{s.region}"] += 1
            if s.ok and s.zone:
                c[f"zone:{s.zone}"] += 1
        done = s.sched + s.lat_ms / 1000.0
        if done > self._latest:
            self._latest = done
            self._seal_before(done - self.horizon_s)

    def _seal_before(self, t: float) -> None:
        upto = self.index(t) - 1
        if upto <= self._sealed_upto:
            return
        for i in range(self._sealed_upto + 1, upto + 1):
            b = self.buckets.get(i)
            if b is not None:
                b.seal()
        self._sealed_upto = upto

    def seal_all(self) -> None:
        for b in self.buckets.values():
            b.seal()
        if self.buckets:
            self._sealed_upto = max(self.buckets)

    # -- series ---------------------------------------------------------------------------------
    def span(self) -> tuple[int, int]:
        if not self.buckets:
            return 0, -1
        return min(self.buckets), max(self.buckets)

    def series(self, start: float, end: float) -> list[tuple[float, Bucket]]:
        """(bucket start time, bucket) for every bucket in [start, end), empty ones included
        (as one shared, read-only empty bucket: a session's window can span hours of 0.1 s)."""
        lo, hi = self.index(start), math.ceil(end / self.bucket_s - 1e-9)
        get = self.buckets.get
        return [(i * self.bucket_s, get(i, EMPTY)) for i in range(lo, hi)]

    def data_end(self) -> float:
        """End of the last bucket holding a request (0 with none)."""
        return (max(self.buckets) + 1) * self.bucket_s if self.buckets else 0.0

    def phase_latency(self, phase: str) -> dict[str, Any]:
        """Percentiles of the phase's successful requests; its failed ones under "failed"."""
        out = _percentiles(self.phase_hist.get(phase), (10, 50, 90, 99))
        out["failed"] = _percentiles(self.phase_err_hist.get(phase), (50, 99))
        return out

    def send_lag(self, phase: str) -> dict[str, Any]:
        """How far behind its schedule the generator sent this phase's requests: the stopwatch's own health."""
        h = self.phase_lag.get(phase)
        c = self.phase_counts.get(phase, Counter())
        if h is None or h.get_total_count() == 0:
            return {"requests": 0, "late": 0, "late_share": 0.0, "p50_ms": None, "p99_ms": None, "max_ms": None}
        return {
            "requests": c["requests"],
            "late": c["late"],
            "late_share": round(c["late"] / c["requests"], 4) if c["requests"] else 0.0,
            "p50_ms": round(h.get_value_at_percentile(50) / 1000, 3),
            "p99_ms": round(h.get_value_at_percentile(99) / 1000, 3),
            "max_ms": round(h.get_max_value() / 1000, 3),
        }

    def served_by(self, phase: str, level: str = "region") -> dict[str, float]:
        c = self.phase_counts.get(phase, Counter())
        prefix = f"{level}:"
        total = sum(v for k, v in c.items() if k.startswith(prefix))
        if not total:
            return {}
        return {k[len(prefix) :]: round(v / total, 4) for k, v in sorted(c.items()) if k.startswith(prefix)}


def _percentiles(h: HdrHistogram | None, which: tuple[int, ...]) -> dict[str, Any]:
    if h is None or h.get_total_count() == 0:
        return {**{f"p{q}": None for q in which}, "max": None, "count": 0}
    return {
        **{f"p{q}": round(h.get_value_at_percentile(q) / 1000, 3) for q in which},
        "max": round(h.get_max_value() / 1000, 3),
        "count": h.get_total_count(),
    }
