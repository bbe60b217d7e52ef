"""Error budget and burn rates (SRE workbook): burn rate = error ratio / (1 - SLO).

Windows longer than the drill assume the service ran clean at the drill's rate the rest of the
window, which is the question a drill asks: had this happened in production, would it page?
"""

from __future__ import annotations

from dataclasses import dataclass

from failover_drill.measure.timeline import Timeline

PAGE_BURN = 14.4  # 1 h long window with a 5 min short window
TICKET_BURN = 6.0  # 6 h long window with a 30 min short window


@dataclass(frozen=True)
class Budget:
    slo_pct: float
    period_days: float
    rate_rps: float
    requests: int
    bad_requests: int
    budget_requests: float
    budget_consumed_pct: float
    burn_rate_1m: float
    burn_rate_5m: float
    burn_rate_30m: float
    burn_rate_1h: float
    burn_rate_6h: float
    page_alert: bool
    ticket_alert: bool
    minutes_to_exhaust_at_peak: float | None


def _peak_bad(bad: list[int], bucket_s: float, window_s: float) -> int:
    w = max(1, round(window_s / bucket_s))
    best = run = sum(bad[:w])
    for i in range(w, len(bad)):
        run += bad[i] - bad[i - w]
        best = max(best, run)
    return best


def error_budget(tl: Timeline, start: float, end: float, slo_pct: float, period_days: float, rate_rps: float) -> Budget:
    allowed = 1.0 - slo_pct / 100.0
    # Buckets after the last request hold nothing: a session asked "so far" need not walk its whole plan.
    series = tl.series(start, min(end, max(start, tl.data_end())))
    requests = sum(b.count for _, b in series)
    bad_by_bucket = [b.failed for _, b in series]
    bad = sum(bad_by_bucket)
    budget = allowed * rate_rps * period_days * 86_400

    def burn(window_s: float) -> float:
        return round(_peak_bad(bad_by_bucket, tl.bucket_s, window_s) / (rate_rps * window_s) / allowed, 3)

    b1m, b5m, b30m, b1h, b6h = burn(60), burn(300), burn(1800), burn(3600), burn(21600)
    exhaust = None
    if b1m > 0:
        exhaust = round(period_days * 1440 / b1m, 1)
    return Budget(
        slo_pct=slo_pct,
        period_days=period_days,
        rate_rps=rate_rps,
        requests=requests,
        bad_requests=bad,
        budget_requests=round(budget, 1),
        budget_consumed_pct=round(100.0 * bad / budget, 5) if budget else 0.0,
        burn_rate_1m=b1m,
        burn_rate_5m=b5m,
        burn_rate_30m=b30m,
        burn_rate_1h=b1h,
        burn_rate_6h=b6h,
        page_alert=b1h >= PAGE_BURN and b5m >= PAGE_BURN,
        ticket_alert=b6h >= TICKET_BURN and b30m >= TICKET_BURN,
        minutes_to_exhaust_at_peak=exhaust,
    )
