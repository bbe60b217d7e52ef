"""The drill's verdict on its own prediction: confirmed, or off by how much and which assumption
a miss puts in doubt. Judged on the drill's figures as docs/metrics.md defines them."""

from __future__ import annotations

from typing import Any

# A drill's failover time is known to its success-ratio window; an outage shorter than this is a
# few stray errors (one window of them), not a failover.
STRAY_OUTAGE_S = 1.0


def judge(prediction: dict[str, Any], failover: dict[str, Any], *, valid: bool = True) -> dict[str, Any]:
    """{"verdict": confirmed | off | not judged, "detail": one sentence}."""
    if not valid:
        return {"verdict": "not judged", "detail": "the measurement itself was not valid (see measurement)"}
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
