"""report.md: the scorecard and verdict in plain text."""

from __future__ import annotations

from typing import Any


def fmt_s(v: float | None) -> str:
    return "—" if v is None else f"{v:.2f} s"


def fmt_ms(v: float | None) -> str:
    return "—" if v is None else f"{v:.1f} ms"


def fmt_share(d: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.0%}" for k, v in sorted(d.items(), key=lambda kv: -kv[1])) or "—"


def fault_label(fault: dict[str, Any]) -> str:
    """kind, target when it has one, mode only for the faults that have a mode (kill / freeze)."""
    parts = [fault["kind"], fault.get("target") or ""]
    label = " ".join(p for p in parts if p)
    return f"{label} ({fault['mode']})" if fault.get("mode") else label


def scorecard_rows(r: dict[str, Any]) -> list[tuple[str, str]]:
    fo, eb, tr, pay = r["failover"], r["error_budget"], r["traffic"], r["payments"]
    rows = [
        ("Fault", fault_label(r["fault"])),
        ("First user-visible error after the fault (TTD)", fmt_s(fo["ttd_s"])),
        ("Mesh detected (first ejection / health flip)", fmt_s(fo.get("mesh_detected_s"))),
        (
            "Kubernetes node NotReady / endpoints removed",
            f"{fmt_s(fo.get('node_not_ready_s'))} / {fmt_s(fo.get('endpoints_removed_s'))}",
        ),
        ("Failover time (TTR)", fmt_s(fo["ttr_s"]) + ("" if fo["recovered"] else " — not recovered")),
        ("Traffic shift (>= 99% on survivors)", fmt_s(fo["shift_s"])),
        ("Outage span", fmt_s(fo.get("outage_s"))),
        ("Success ratio back at the SLO after revert (failback)", fmt_s(fo["failback_s"])),
        ("Traffic back on the fault's target after revert", fmt_s(fo.get("return_s"))),
        (
            "Requests / failed (baseline to end)",
            f"{tr['requests']} / {tr['failed']} (raw attempt failures {tr['raw_failures']})",
        ),
        (
            "Error budget consumed",
            f"{eb['budget_consumed_pct']:.3g}% of {eb['period_days']:g} d at an SLO of {eb['slo']:g}%",
        ),
        (
            "Peak burn rate (1 min / 5 min / 1 h)",
            f"{eb['burn_rate']['1m']:.1f}x / {eb['burn_rate']['5m']:.1f}x / {eb['burn_rate']['1h']:.1f}x"
            + (" — page alert would fire" if eb["page_alert_fired"] else ""),
        ),
        (
            "p99 baseline / fault / recovery",
            " / ".join(fmt_ms(r["latency_ms"][p]["p99"]) for p in ("baseline", "fault", "recovery")),
        ),
        ("Served by, baseline", fmt_share(r["served_by"]["baseline"])),
        ("Served by, during fault", fmt_share(r["served_by"]["fault"])),
        ("Served by, after revert", fmt_share(r["served_by"]["recovery"])),
    ]
    if pay.get("reconciled"):
        rows.append(
            (
                # Every payment the run sent, warm-up included: a charge in the warm-up is real.
                "Payments acknowledged / lost / charged twice / charged unacknowledged (whole run)",
                f"{pay['acknowledged']} / {pay['lost']} / {pay['duplicated']} / {pay['charged_unacknowledged']}",
            )
        )
    return rows


CHECK_LABELS = {
    "rto": "failover time (TTR)",
    "failback": "failback after revert",
    "error_budget": "error budget consumed",
    "p99_during_fault": "p99 latency during the fault",
    "payments_lost": "payments lost",
    "payments_duplicated": "payments charged twice",
    "release": "the release's outcome",
}


def _amount(value: Any, unit: str) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        text = f"{value:.3g}" if unit.startswith("%") else f"{value:.2f}"
        text = text.rstrip("0").rstrip(".") if "." in text else text
    else:
        text = str(value)
    if not unit:
        return text
    return f"{text}%{unit[1:]}" if unit.startswith("%") else f"{text} {unit}"


def check_rows(v: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """Each verdict check as (what, measured, limit, held|FAILED), with units."""
    rows = []
    for c in v.get("checks") or []:
        unit = str(c.get("unit") or "")
        rows.append(
            (
                CHECK_LABELS.get(c["name"], c["name"]),
                _amount(c["measured"], unit) if c["measured"] is not None else "not reached",
                # A numeric limit is a ceiling; a word (the release's expected outcome) is what to see.
                str(c["limit"]) if isinstance(c["limit"], str) else "<= " + _amount(c["limit"], unit),
                "held" if c["passed"] else "FAILED",
            )
        )
    return rows


def verdict_word(v: dict[str, Any]) -> str:
    """PASSED, FAILED, or INCONCLUSIVE when the load generator could not keep its schedule."""
    if v["passed"]:
        return "PASSED"
    return "INCONCLUSIVE" if v.get("inconclusive") else "FAILED"


LATENCY_COLUMNS = ("phase", "p50", "p90", "p99", "max", "failed", "failed p99")


def latency_rows(r: dict[str, Any]) -> list[tuple[str, ...]]:
    """(phase, p50, p90, p99, max of successful requests, failed requests, their p99) in ms."""
    rows = []
    for p in ("baseline", "fault", "recovery"):
        lat = r["latency_ms"][p]
        failed = lat["failed"]
        rows.append(
            (p, *(fmt_ms(lat[k]) for k in ("p50", "p90", "p99", "max")), str(failed["count"]), fmt_ms(failed["p99"]))
        )
    return rows


def event_rows(r: dict[str, Any], limit: int = 30) -> list[tuple[str, str, str, str]]:
    """The first platform events from just before the fault on: (t s, source, event, where)."""
    t0 = r["fault"]["injected_at_s"]
    ev = [e for e in r.get("platform_events") or [] if e["at"] >= t0 - 0.5][:limit]
    return [
        (f"{e['at']:.2f}", e["source"], e["kind"], f"{e.get('zone') or e.get('region') or ''} {e.get('detail') or ''}")
        for e in ev
    ]


def rollout_parts(r: dict[str, Any]) -> tuple[str, list[tuple[str, str, str, str]]] | None:
    """(a line on the deploy freeze and aborts, (t s, region, event, detail) rows) of what the Argo
    Rollouts controllers did during the drill, or None where they did nothing."""
    ro = r.get("rollouts")
    if not ro:
        return None
    said = []
    fz = ro.get("freeze")
    if fz and fz.get("failed"):
        said.append(f"The deploy freeze failed: {fz['failed']}.")
    elif fz:
        held = f", held {fz['held_s']:.1f} s" if fz.get("held_s") is not None else ", never lifted by the drill"
        said.append(f"The page alert froze deploys at {fz['frozen_at_s']:.1f} s{held}.")
    said.append("A controller aborted a rollout." if ro["aborted"] else "No rollout was aborted.")
    rel = ro.get("release")
    if rel:
        timing = [
            f"{what} {rel[key]:.1f} s after it started"
            for what, key in (("first abort", "time_to_abort_s"), ("fully out", "time_to_healthy_s"))
            if rel.get(key) is not None
        ]
        outcomes = ", ".join(f"{x['region']} {x['outcome']}" for x in rel["regions"]) or "never started"
        said.append(
            f"Release {rel['version']} (fails {rel['fail_pct']:g}%, judged by the {rel.get('analysis', 'web')} "
            f"template) expected {rel['expected']}: {outcomes}" + (f"; {'; '.join(timing)}" if timing else "") + "."
        )
    rows = [
        ("—" if ev["at"] is None else f"{ev['at']:.1f}", ev.get("region") or "", ev["reason"], ev["detail"])
        for ev in ro["events"]
    ]
    return " ".join(said), rows


def prediction_parts(r: dict[str, Any]) -> tuple[str, str, list[str], list[dict[str, str]]] | None:
    """(verdict, its detail, what was predicted with the reasoning, the traps found) of the
    drill's own prediction (predict/), or None for a run that has none."""
    pred = r.get("prediction")
    if not pred:
        return None
    said: list[str] = []
    for f in pred["faults"]:
        said.append(f"{f['fault']}: {f['headline']}")
        said += [f"  - {line}" for line in f["reasoning"]]
    traps = {t["trap"]: t for f in pred["faults"] for t in f["findings"]}
    return pred["check"]["verdict"], pred["check"]["detail"], said, list(traps.values())


def render_markdown(r: dict[str, Any]) -> str:
    v = r["verdict"]
    lines = [
        f"# Drill {r['run_id']}",
        "",
        f"Scenario **{r['scenario']}** on **{r['platform']}**, mesh **{r['mesh']}**, users in **{r['client_region']}**, "
        f"{r['traffic']['rate_rps']:g} req/s open loop.",
        "",
        f"## Verdict: {verdict_word(v)}",
        "",
    ]
    lines += [f"- {reason}" for reason in v["reasons"]]
    checks = check_rows(v)
    if checks:
        lines += [""] if v["reasons"] else []
        lines += ["| check | measured | limit | |", "|---|---|---|---|"]
        lines += [f"| {what} | {measured} | {limit} | {ok} |" for what, measured, limit, ok in checks]
    elif not v["reasons"]:
        lines.append("- no limit was set")
    lines += ["", "## Scorecard", "", "| measure | value |", "|---|---|"]
    lines += [f"| {k} | {val} |" for k, val in scorecard_rows(r)]
    if r["traffic"]["errors"]:
        lines += ["", "## Errors by class", "", "| class | count |", "|---|---|"]
        lines += [f"| {k} | {n} |" for k, n in r["traffic"]["errors"].items()]
    lines += [
        "",
        "## Latency by phase (successful requests, from scheduled send time; failed ones apart)",
        "",
        f"| {' | '.join(LATENCY_COLUMNS)} |",
        "|" + "---|" * len(LATENCY_COLUMNS),
    ]
    lines += [f"| {' | '.join(row)} |" for row in latency_rows(r)]
    parts = prediction_parts(r)
    if parts is not None:
        verdict, detail, said, traps = parts
        lines += ["", f"## Predicted from the manifests: {verdict.upper()}", "", detail, "", *said]
        if traps:
            lines += ["", "| trap | why | fix | field |", "|---|---|---|---|"]
            lines += [f"| {t['trap']} | {t['detail']} | {t['fix']} | {t['where']} |" for t in traps]
    rolled = rollout_parts(r)
    if rolled is not None:
        summary, rows = rolled
        lines += ["", "## Rollouts (Argo Rollouts controllers, deploy freeze)", "", summary, ""]
        lines += ["| t (s) | region | event | detail |", "|---|---|---|---|"]
        lines += [f"| {' | '.join(row)} |" for row in rows]
    events = event_rows(r)
    if events:
        lines += [
            "",
            "## What the platform saw (first 30 events after the fault)",
            "",
            "| t (s) | source | event | where |",
            "|---|---|---|---|",
        ]
        lines += [f"| {' | '.join(row)} |" for row in events]
    lines += [
        "",
        "Definitions: docs/metrics.md in the failover-drill repository (TTD, TTR with a "
        "stability window, shift, failback; burn rate = error ratio / (1 - SLO)).",
        "",
    ]
    return "\n".join(lines)
