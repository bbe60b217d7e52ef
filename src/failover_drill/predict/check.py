"""The drill's verdict on its own prediction: confirmed, or off by how much and which assumption
a miss puts in doubt. Judged on the drill's figures as docs/metrics.md defines them: the time to
recover first, then the outage and the share of requests that failed during it."""

from __future__ import annotations

import math
from typing import Any

# A drill's failover time is known to its success-ratio window; an outage shorter than this is a
# few stray errors (one window of them), not a failover.
STRAY_OUTAGE_S = 1.0
# A share measured on n requests is known to about three standard errors (a share of 0% or 100%
# to about 3 requests in n: the rule of three).
SHARE_SIGMAS = 3.0
SHARE_ASSUMPTION = "the share of requests on the failing path (where the mesh sends them, what retries save)"


def judge(prediction: dict[str, Any], failover: dict[str, Any], *, valid: bool = True) -> dict[str, Any]:
    """{"verdict": confirmed | off | not judged, "detail": one sentence}."""
    if not valid:
        return {"verdict": "not judged", "detail": "the measurement itself was not valid (see measurement)"}
    verdict = _judge_ttr(prediction, failover)
    if verdict["verdict"] != "confirmed":
        return verdict
    misses = [m for m in (_outage_miss(prediction, failover), _share_miss(prediction, failover)) if m]
    if misses:
        return {"verdict": "off", "detail": f"{verdict['detail']}, but {'; and '.join(misses)}"}
    return verdict


def _judge_ttr(prediction: dict[str, Any], failover: dict[str, Any]) -> dict[str, Any]:
    expect = prediction["expect"]
    ttr, outage = failover.get("ttr_s"), failover.get("outage_s") or 0.0
    recovered = failover.get("recovered")
    decided = prediction.get("decided_by") or "the model"
    if expect == "no-outage":
        if outage <= STRAY_OUTAGE_S and (ttr is None or ttr <= STRAY_OUTAGE_S) and recovered is not False:
            return {"verdict": "confirmed", "detail": f"no outage ({outage:.3g} s of errors), as predicted"}
        seen = "not recovered while the fault was on" if recovered is False else f"an outage of {outage:.3g} s"
        return {"verdict": "off", "detail": f"predicted no outage, measured {seen}: {decided} did not hold"}
    if expect == "no-recovery":
        if prediction.get("sparse") and recovered:
            return {
                "verdict": "confirmed",
                "detail": f"failures too sparse to hold the success ratio down: read as recovered at {ttr} s, "
                "as the prediction allowed",
            }
        if recovered is False:
            return {"verdict": "confirmed", "detail": "no recovery while the fault was on, as predicted"}
        return {
            "verdict": "off",
            "detail": f"predicted no recovery while on, measured recovery at {ttr} s: something masked {decided}",
        }
    lo, hi = prediction["ttr_s"]
    on = failover.get("fault_on_s")
    if (not recovered or ttr is None) and on is not None and on < hi:
        # Reverted before the predicted failover could be over: no recovery is what the model
        # expects of so short a fault, and says nothing about the model.
        return {
            "verdict": "not judged",
            "detail": f"the fault was on for {on:.3g} s, less than the predicted failover ({lo:g}-{hi:g} s) "
            "needs: a longer fault phase would see it",
        }
    if not recovered or ttr is None:
        return {
            "verdict": "off",
            "detail": f"predicted failover in {lo:g}-{hi:g} s, not recovered while the fault was on",
        }
    if lo - STRAY_OUTAGE_S <= ttr <= hi:
        return {"verdict": "confirmed", "detail": f"failover in {ttr:.3g} s, inside the predicted {lo:g}-{hi:g} s"}
    if ttr > hi:
        return {
            "verdict": "off",
            "detail": f"failover in {ttr:.3g} s, {ttr - hi:.3g} s later than predicted ({lo:g}-{hi:g} s): "
            f"slower than {decided} allows",
        }
    return {
        "verdict": "off",
        "detail": f"failover in {ttr:.3g} s, {lo - ttr:.3g} s sooner than predicted ({lo:g}-{hi:g} s): "
        f"something faster than {decided} acted",
    }


def _outage_miss(prediction: dict[str, Any], failover: dict[str, Any]) -> str | None:
    """The measured outage against the predicted one, when both are known. A failover's outage is
    known to the same window as its TTR; a no-recovery's runs as long as the fault (errors that go
    on after the revert are the failback's, which the verdict's limits judge)."""
    bound, outage = prediction.get("outage_s"), failover.get("outage_s")
    if bound is None or outage is None or not math.isfinite(outage) or prediction.get("sparse"):
        return None
    lo, hi = bound
    decided = prediction.get("decided_by") or "the model"
    if outage < lo - STRAY_OUTAGE_S:
        return (
            f"the outage lasted {outage:.3g} s, {lo - outage:.3g} s shorter than the predicted {_span(lo, hi)} s: "
            f"something ended it before {decided} did"
        )
    if prediction["expect"] == "failover" and outage > hi:
        return (
            f"the outage lasted {outage:.3g} s, {outage - hi:.3g} s longer than the predicted {_span(lo, hi)} s: "
            f"errors went on after {decided} acted"
        )
    return None


def _share_miss(prediction: dict[str, Any], failover: dict[str, Any]) -> str | None:
    """The share of requests that failed during the measured outage against the predicted share
    (error_pct), allowing for the measurement's ends (failover error_pct is [lo, hi]) and for
    sampling: SHARE_SIGMAS standard errors of a share of `requests` requests."""
    bound, measured = prediction.get("error_pct"), failover.get("error_pct")
    if bound is None or not measured or prediction["expect"] == "no-outage" or prediction.get("sparse"):
        return None
    requests = failover.get("error_requests")
    lo, hi = bound
    m_lo, m_hi = measured
    slack_lo, slack_hi = _sigmas(lo, requests), _sigmas(hi, requests)
    if m_hi + slack_lo < lo:
        return (
            f"{_span(m_lo, m_hi)}% of requests failed during the outage, fewer than the predicted "
            f"{_span(lo, hi)}%: {SHARE_ASSUMPTION} did not hold"
        )
    if m_lo - slack_hi > hi:
        return (
            f"{_span(m_lo, m_hi)}% of requests failed during the outage, more than the predicted "
            f"{_span(lo, hi)}%: {SHARE_ASSUMPTION} did not hold"
        )
    return None


def _sigmas(pct: float, requests: Any) -> float:
    if not isinstance(requests, int) or requests <= 0:
        return 0.0
    p = min(max(pct / 100, 1 / requests), 1 - 1 / requests) if requests > 1 else 0.5
    return 100 * SHARE_SIGMAS * math.sqrt(p * (1 - p) / requests)


def _span(lo: float, hi: float) -> str:
    return f"{lo:.3g}" if abs(hi - lo) < 0.05 else f"{lo:.3g}-{hi:.3g}"
