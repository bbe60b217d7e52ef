"""The stopwatch's arithmetic on synthetic samples, where the right answer is known exactly."""

from __future__ import annotations

import math

import pytest

from failover_drill.config.scenario import Limits
from failover_drill.measure.budget import error_budget
from failover_drill.measure.failover import measure
from failover_drill.measure.payments import reconcile
from failover_drill.measure.timeline import Phase, Timeline
from failover_drill.measure.verdict import judge
from failover_drill.traffic.samples import Sample, classify

RATE = 200.0


def run(
    outage: tuple[float, float] | None,
    *,
    end: float = 30.0,
    region_after: float | None = None,
    fail_every: int = 0,
    recover_outage: tuple[float, float] | None = None,
) -> Timeline:
    """200 req/s from 0 to end; requests sent inside `outage` fail; from region_after on, eu-west1 serves."""
    tl = Timeline()
    tl.set_phases([Phase("baseline", 0, 10), Phase("fault", 10, 20), Phase("recovery", 20, end)])
    n = int(end * RATE)
    for i in range(n):
        t = i / RATE
        bad = (outage is not None and outage[0] <= t < outage[1]) or (
            recover_outage is not None and recover_outage[0] <= t < recover_outage[1]
        )
        if fail_every and i % fail_every == 0 and 12 <= t < 14:
            bad = True
        region = "eu-west1" if region_after is not None and region_after <= t < 20 else "us-east1"
        tl.add(
            Sample(
                i,
                t,
                5.0 if not bad else 1.0,
                0.1,
                503 if bad else 201,
                "upstream_connect" if bad else "ok",
                region=None if bad else region,
                zone=None if bad else f"{region}-a",
                acked=not bad,
                key=f"k{i}",
            )
        )
    tl.seal_all()
    return tl


def fo(tl: Timeline, **kw: float) -> object:
    args = dict(
        t0=10.0,
        t_revert=20.0,
        t_end=30.0,
        slo=0.999,
        window_s=1.0,
        stability_s=2.0,
        targets={"us-east1"},
        level="region",
        baseline_share=1.0,
        rate_rps=RATE,
    )
    args.update(kw)
    return measure(tl, **args)  # type: ignore[arg-type]


def test_outage_then_failover() -> None:
    tl = run((10.0, 13.5), region_after=13.5)
    r = fo(tl)
    assert r.ttd_s == 0.0
    assert math.isclose(r.ttr_s, 3.5, abs_tol=0.006)
    assert math.isclose(r.outage_s, 3.5, abs_tol=1e-6)
    assert math.isclose(r.shift_s, 3.5, abs_tol=0.1)
    assert r.recovered and r.failback_s == 0.0


def test_no_visible_failure_is_ttr_zero_and_ttd_none() -> None:
    r = fo(run(None))
    assert r.ttd_s is None and r.ttr_s == 0.0 and r.outage_s is None


def test_outage_lasting_the_whole_fault_is_not_recovered() -> None:
    r = fo(run((10.0, 20.0)))
    assert r.ttd_s == 0.0 and r.ttr_s is None and not r.recovered
    assert math.isclose(r.outage_s, 10.0, abs_tol=1e-6)


def test_recovery_must_hold_for_the_stability_window() -> None:
    # Mostly back at 12 s, but one failure every 0.5 s until 13.5 s keeps the 1 s ratio under 99.9%:
    # recovery counts from the last of them, not from when most requests came back.
    tl = run((10.0, 12.0), fail_every=100)
    r = fo(tl)
    assert r.ttr_s is not None and math.isclose(r.ttr_s, 3.5, abs_tol=0.006)


def test_a_stray_error_after_the_service_is_back_does_not_lengthen_the_outage() -> None:
    # down for the whole fault, back at revert; one unrelated failure 3 s later
    r = fo(run((10.0, 20.0), recover_outage=(23.0, 23.005)))
    assert r.failback_s == 0.0
    assert math.isclose(r.outage_s, 10.0, abs_tol=1e-6)
    # while a relapse before the service is back still counts
    r = fo(run((10.0, 20.0), recover_outage=(20.5, 21.0)))
    assert math.isclose(r.outage_s, 11.0, abs_tol=1e-6)


def test_a_failure_within_the_slo_from_the_start_is_no_outage() -> None:
    # One failure 2 s into the fault, with an SLO it never breaks: seen (TTD 2 s), recovered at
    # once (TTR 0), and no outage, where the outage came out as -inf.
    r = fo(run(None, fail_every=400), slo=0.99)
    assert r.ttd_s == 2.0 and r.ttr_s == 0.0, r
    assert r.outage_s == 0.0


def test_failback_measured_from_revert() -> None:
    r = fo(run((10.0, 11.0), recover_outage=(20.0, 22.5)))
    assert math.isclose(r.failback_s, 2.5, abs_tol=0.006)


def test_error_budget_and_burn_rates() -> None:
    tl = run((10.0, 13.0))  # 600 bad requests
    b = error_budget(tl, 0.0, 30.0, 99.9, 30, RATE)
    assert b.bad_requests == 600 and b.requests == 6000
    budget = 0.001 * RATE * 30 * 86400
    assert math.isclose(b.budget_consumed_pct, 100 * 600 / budget, rel_tol=1e-4)
    # 600 bad in the worst minute: 600 / (200*60) / 0.001 = 50x
    assert math.isclose(b.burn_rate_1m, 50.0, rel_tol=1e-3)
    assert math.isclose(b.burn_rate_5m, 10.0, rel_tol=1e-3)
    assert not b.page_alert  # 1 h window: 600/(200*3600)/0.001 = 0.83x
    # A live session asks over its whole planned span (an hour here): the same figures, and the
    # empty tail is one shared bucket rather than 36,000 new ones.
    assert error_budget(tl, 0.0, 3_600.0, 99.9, 30, RATE) == b
    tail = tl.series(40.0, 3_600.0)
    assert len(tail) == 35_600 and len({id(bk) for _, bk in tail}) == 1 and tail[0][1].count == 0


def test_page_alert_fires_on_a_long_total_outage() -> None:
    # 100% errors on 99.9% for long enough burns at 1000x; the page needs 14.4x over 1 h.
    tl = Timeline()
    for i in range(int(300 * RATE)):
        tl.add(Sample(i, i / RATE, 1.0, 0.0, 503, "upstream_connect"))
    tl.seal_all()
    b = error_budget(tl, 0.0, 300.0, 99.9, 30, RATE)
    assert b.burn_rate_5m == 1000.0 and b.burn_rate_1h > 14.4 and b.page_alert


def test_verdict_reasons() -> None:
    v = judge(
        Limits(rto_s=3.0),
        ttr_s=3.5,
        recovered=True,
        failback_s=0.0,
        failed_back=True,
        budget_pct=0.01,
        fault_p99_ms=10,
        lost=1,
        duplicated=0,
    )
    assert not v.passed
    assert any("3.50s, over the 3s RTO" in r for r in v.reasons)
    assert any("1 acknowledged payment(s) were lost" in r for r in v.reasons)
    ok = judge(
        Limits(),
        ttr_s=3.5,
        recovered=True,
        failback_s=0.0,
        failed_back=True,
        budget_pct=0.01,
        fault_p99_ms=10,
        lost=0,
        duplicated=0,
    )
    assert ok.passed and ok.reasons == []


def test_phase_latency_and_served_by() -> None:
    tl = run((10.0, 13.5), region_after=13.5)
    assert tl.served_by("baseline") == {"us-east1": 1.0}
    fault = tl.served_by("fault")
    assert set(fault) == {"eu-west1"}
    lat = tl.phase_latency("baseline")
    assert lat["count"] == 2000 and 4.9 <= lat["p50"] <= 5.1


def test_latency_percentiles_are_of_successful_requests_failures_apart() -> None:
    """Issue 15 point 10: instant 503s during an outage pulled the fault phase's p50 to ~2 ms."""
    tl = Timeline()
    tl.set_phases([Phase("baseline", 0, 5), Phase("fault", 5, 10), Phase("recovery", 10, 15)])
    for i in range(1000):
        t = 5 + i / 200
        if i % 2:
            tl.add(Sample(i, t, 1.0, 0.0, 503, "no_healthy_upstream"))  # an instant failure
        else:
            tl.add(Sample(i, t, 80.0, 0.0, 200, "ok", region="eu-west1"))  # served, far away
    tl.seal_all()
    lat = tl.phase_latency("fault")
    assert lat["count"] == 500 and lat["p50"] is not None and 79 <= lat["p50"] <= 81
    assert lat["failed"]["count"] == 500 and lat["failed"]["p99"] is not None and lat["failed"]["p99"] <= 1.1
    assert all(b.p50 >= 79 for _, b in tl.series(5, 10) if b.count)  # the plot's lines too
    assert tl.phase_latency("baseline")["failed"] == {"p50": None, "p99": None, "max": None, "count": 0}


def test_timeline_memory_is_sealed() -> None:
    tl = Timeline(horizon_s=1.0)
    for i in range(20_000):
        tl.add(Sample(i, i / 1000, 2.0, 0.0, 201, "ok", region="r"))
    open_buckets = [b for b in tl.buckets.values() if b.lat is not None]
    assert len(open_buckets) <= 12  # only the last ~horizon's buckets keep raw latencies


def test_reconcile_lost_duplicated_unacknowledged() -> None:
    outcomes = [("a", True), ("b", True), ("c", False), ("d", False), ("e", True)]
    charges = [("a", "us"), ("b", "us"), ("b", "eu"), ("c", "eu"), ("old", "us")]
    r = reconcile(outcomes, charges)
    assert (r.acknowledged, r.lost, r.duplicated, r.charged_unacknowledged) == (3, 1, 1, 1)
    assert r.lost_keys == ["e"] and r.duplicated_keys == ["b"] and r.unacknowledged_keys == ["c"]
    assert r.charged == 3  # "old" belongs to an earlier drill


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            "upstream connect error or disconnect/reset before headers. reset reason: connection failure, "
            "transport failure reason: TLS_error:|268435581:SSL routines:OPENSSL_internal:CERTIFICATE_VERIFY_FAILED:"
            "TLS_error_end",
            "tls",
        ),
        # a gateway killed mid-handshake: a reset socket, not a certificate problem
        (
            "upstream connect error or disconnect/reset before headers. reset reason: connection failure, "
            "transport failure reason: TLS error: 33554536:system library:OPENSSL_internal:Connection reset by peer",
            "upstream_connect",
        ),
        (
            "upstream connect error or disconnect/reset before headers. reset reason: connection failure",
            "upstream_connect",
        ),
        # the same, as Envoy 1.40 writes it in the sandbox's local reply body
        (
            "upstream connect error or disconnect/reset before headers. reset reason: remote connection failure "
            "transport=TLS_error:|33554536:system_library:OPENSSL_internal:Connection_reset_by_peer:TLS_error_end",
            "upstream_connect",
        ),
        ("no healthy upstream", "no_healthy_upstream"),
        ("fault filter abort", "injected_abort"),
    ],
)
def test_envoy_failures_are_named_by_cause(body: str, expected: str) -> None:
    assert classify(503, body) == expected
