"""Pass or fail against the scenario's limits, with every reason spelled out."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from failover_drill.config.scenario import Limits


@dataclass
class Verdict:
    passed: bool = True
    reasons: list[str] = field(default_factory=list)
    checks: list[dict[str, Any]] = field(default_factory=list)

    def check(self, name: str, ok: bool, measured: Any, limit: Any, reason: str, unit: str) -> None:
        self.checks.append({"name": name, "passed": ok, "measured": measured, "limit": limit, "unit": unit})
        if not ok:
            self.passed = False
            self.reasons.append(reason)


def judge(
    limits: Limits,
    *,
    ttr_s: float | None,
    recovered: bool,
    failback_s: float | None,
    failed_back: bool,
    budget_pct: float,
    fault_p99_ms: float | None,
    lost: int,
    duplicated: int,
) -> Verdict:
    v = Verdict()
    if limits.rto_s is not None:
        ok = recovered and ttr_s is not None and ttr_s <= limits.rto_s
        why = (
            f"failover took {ttr_s:.2f}s, over the {limits.rto_s:g}s RTO"
            if recovered and ttr_s is not None
            else "the service did not recover while the fault was on"
        )
        v.check("rto", ok, ttr_s, limits.rto_s, why, "s")
    if limits.failback_s is not None:
        ok = failed_back and failback_s is not None and failback_s <= limits.failback_s
        why = (
            f"failback took {failback_s:.2f}s, over the {limits.failback_s:g}s limit"
            if failed_back and failback_s is not None
            else "the service did not settle after the fault was reverted"
        )
        v.check("failback", ok, failback_s, limits.failback_s, why, "s")
    if limits.max_budget_pct is not None:
        v.check(
            "error_budget",
            budget_pct <= limits.max_budget_pct,
            budget_pct,
            limits.max_budget_pct,
            f"the drill burned {budget_pct:.3f}% of the error budget, over {limits.max_budget_pct:g}%",
            "% of the error budget",
        )
    if limits.max_p99_ms is not None:
        ok = fault_p99_ms is not None and fault_p99_ms <= limits.max_p99_ms
        v.check(
            "p99_during_fault",
            ok,
            fault_p99_ms,
            limits.max_p99_ms,
            f"p99 during the fault was {fault_p99_ms} ms, over {limits.max_p99_ms:g} ms",
            "ms",
        )
    if limits.max_lost is not None:
        v.check(
            "payments_lost",
            lost <= limits.max_lost,
            lost,
            limits.max_lost,
            f"{lost} acknowledged payment(s) were lost",
            "payments",
        )
    if limits.max_duplicated is not None:
        v.check(
            "payments_duplicated",
            duplicated <= limits.max_duplicated,
            duplicated,
            limits.max_duplicated,
            f"{duplicated} payment(s) were charged in more than one region",
            "payments",
        )
    return v
