"""Failover times exactly as docs/metrics.md defines them.

- TTD: first client-visible failure at or after t0 (None when users saw nothing).
- TTR: start of the first window after t0 from which the rolling success ratio stays at or above
  the SLO target for the stability window.
- Shift: time until surviving locations serve >= 99% of successful requests (and keep doing so
  for the stability window).
- Failback: TTR measured from the revert, over the recovery phase.
- Outage: span of client-visible failures after t0, on send times: from the first failed request
  to the one sent after the last failed one (the calibration checks this against the injection).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from failover_drill.measure.timeline import Bucket, Timeline

SHIFT_SHARE = 0.99


@dataclass(frozen=True)
class Failover:
    ttd_s: float | None
    ttr_s: float | None
    shift_s: float | None
    failback_s: float | None
    return_s: float | None
    outage_s: float | None
    recovered: bool
    failed_back: bool
    # The share (%) of requests sent during the outage that failed, as [lo, hi]: the buckets at its
    # two ends also hold requests sent just before the first failure or after the last one, so lo
    # counts their successes and hi leaves them out. None when there was no outage.
    outage_error_pct: tuple[float, float] | None = None
    outage_requests: int | None = None  # the requests that share is measured on


def _stable_from(
    series: list[tuple[float, Bucket]],
    bucket_s: float,
    window_s: float,
    stability_s: float,
    good: Callable[[list[Bucket]], bool],
    first_bucket_alone: bool = False,
) -> int | None:
    """Index of the first bucket from which every window of window_s inside the next stability_s is good."""
    w = max(1, round(window_s / bucket_s))
    stab = max(w, round(stability_s / bucket_s))
    n = len(series)
    for start in range(n - stab + 1):
        if first_bucket_alone and not good([series[start][1]]):
            continue
        if all(good([b for _, b in series[x : x + w]]) for x in range(start, start + stab - w + 1)):
            return start
    return None


def _ratio_ok(target: float) -> Callable[[list[Bucket]], bool]:
    def ok(bs: list[Bucket]) -> bool:
        count = sum(b.count for b in bs)
        # No requests is no evidence of recovery (an open-loop generator only leaves gaps when stalled).
        return count > 0 and sum(b.ok for b in bs) / count >= target

    return ok


def _recovery_time(
    series: list[tuple[float, Bucket]],
    t_from: float,
    bucket_s: float,
    window_s: float,
    stability_s: float,
    target: float,
) -> float | None:
    idx = _stable_from(series, bucket_s, window_s, stability_s, _ratio_ok(target))
    if idx is None:
        return None
    if idx == 0:
        return 0.0
    start = series[idx][0]
    # Sharpen to the failure that ended the outage when it sits in the bucket just before.
    prev = series[idx - 1][1]
    if prev.failed and math.isfinite(prev.last_err):
        start = min(start, prev.last_err + 1e-6)
    return max(0.0, start - t_from)


def _share_outside(targets: set[str], level: str) -> Callable[[list[Bucket]], bool]:
    def ok(bs: list[Bucket]) -> bool:
        served: dict[str, int] = {}
        for b in bs:
            for k, v in (b.served if level == "region" else b.zones).items():
                served[k] = served.get(k, 0) + v
        total = sum(served.values())
        if total == 0:
            return False
        outside = sum(v for k, v in served.items() if k not in targets)
        return outside / total >= SHIFT_SHARE

    return ok


def _share_inside(targets: set[str], level: str, share: float) -> Callable[[list[Bucket]], bool]:
    def ok(bs: list[Bucket]) -> bool:
        served: dict[str, int] = {}
        for b in bs:
            for k, v in (b.served if level == "region" else b.zones).items():
                served[k] = served.get(k, 0) + v
        total = sum(served.values())
        return total > 0 and sum(v for k, v in served.items() if k in targets) / total >= share

    return ok


def measure(
    tl: Timeline,
    *,
    t0: float,
    t_revert: float,
    t_end: float,
    slo: float,
    window_s: float,
    stability_s: float,
    targets: set[str],
    level: str,
    baseline_share: float,
    rate_rps: float,
) -> Failover:
    bs = tl.bucket_s
    fault = tl.series(t0, t_revert)
    recovery = tl.series(t_revert, t_end)
    first_err = min((b.first_err for _, b in fault if b.failed), default=math.inf)
    # A request sent just before t0 can still meet the fault: that is a detection at t0, not before.
    ttd = max(0.0, first_err - t0) if math.isfinite(first_err) else None
    ttr = _recovery_time(fault, t0, bs, window_s, stability_s, slo)
    failback = _recovery_time(recovery, t_revert, bs, window_s, stability_s, slo)

    shift: float | None = None
    if targets and baseline_share > 0:
        # The candidate's own bucket must already be served by survivors: a window that is all
        # errors but for a few successes at its end does not count as shifted.
        idx = _stable_from(fault, bs, window_s, stability_s, _share_outside(targets, level), first_bucket_alone=True)
        shift = None if idx is None else max(0.0, fault[idx][0] - t0)
    elif targets:
        shift = 0.0  # the fault's target served nobody before: nothing had to move

    ret: float | None = None
    if targets and baseline_share > 0:
        idx = _stable_from(
            recovery,
            bs,
            window_s,
            window_s,
            _share_inside(targets, level, 0.9 * baseline_share),
            first_bucket_alone=True,
        )
        ret = None if idx is None else max(0.0, recovery[idx][0] - t_revert)

    outage: float | None = None
    share: tuple[float, float] | None = None
    requests: int | None = None
    if ttd is not None:
        # The outage runs from the first failure after t0 to the last one before the service was back
        # (TTR during the fault, else failback after revert): a stray error after recovery is spent
        # error budget, not a longer outage.
        back_at = t0 + ttr if ttr is not None else (t_revert + failback if failback is not None else math.inf)
        first_sent = min((b.first_err_sent for _, b in fault if b.failed), default=math.inf)
        last_sent = max(
            (b.last_err_sent for start, b in fault + recovery if b.failed and start < back_at), default=-math.inf
        )
        # No failure before the service counts as back (a TTR of 0: what failed was within the SLO
        # from the start): no outage, where the bare difference was -inf (and -Infinity in JSON).
        outage = last_sent - first_sent + 1.0 / rate_rps if math.isfinite(last_sent) else 0.0
        # Read afresh rather than as fault + recovery: the bucket holding the revert is in both, and
        # counted twice its successes after the revert sat inside the span.
        span = [b for _, b in tl.series(t0, min(back_at, t_end))]
        failing = [i for i, b in enumerate(span) if b.failed]
        if failing:
            outage_span = span[failing[0] : failing[-1] + 1]
            share, requests = _error_share(outage_span), sum(b.count for b in outage_span)
    return Failover(
        ttd_s=_r(ttd),
        ttr_s=_r(ttr),
        shift_s=_r(shift),
        failback_s=_r(failback),
        return_s=_r(ret),
        outage_s=_r(outage),
        recovered=ttr is not None,
        failed_back=failback is not None,
        outage_error_pct=share,
        outage_requests=requests,
    )


def _error_share(span: list[Bucket]) -> tuple[float, float] | None:
    """[lo, hi] % of the requests in span (first to last bucket with a failure) that failed."""
    count = sum(b.count for b in span)
    failed = sum(b.failed for b in span)
    edge_ok = span[0].ok + (span[-1].ok if len(span) > 1 else 0)
    if count == 0:
        return None
    return round(100 * failed / count, 3), round(100 * failed / max(1, count - edge_ok), 3)


def _r(v: float | None) -> float | None:
    return None if v is None else round(v, 4)
