"""report.html: one self-contained file (plot inlined) with the scorecard and the verdict."""

from __future__ import annotations

import base64
import html
from typing import Any

from failover_drill.report.markdown import (
    LATENCY_COLUMNS,
    check_rows,
    event_rows,
    latency_rows,
    prediction_parts,
    rollout_parts,
    scorecard_rows,
    verdict_word,
)
from failover_drill.report.plot import timeline_png
from failover_drill.report.result import Replay

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1040px;color:#222}
h1{font-size:1.4rem}.pass{color:#1a7f37}.fail{color:#cf222e}.inconclusive{color:#9a6700}table{border-collapse:collapse;margin:1rem 0}
td,th{border:1px solid #ddd;padding:.3rem .6rem;text-align:left;font-size:.92rem}th{background:#f6f8fa}
img{max-width:100%;border:1px solid #eee}.meta{color:#555}
"""


def render_html(result: dict[str, Any], replay: Replay, *, plot: bool = True) -> str:
    v = result["verdict"]
    e = html.escape
    if plot:
        png = base64.b64encode(timeline_png(result, replay)).decode()
        figure = (
            '<img alt="timeline: success ratio, latency and served-by share, with the fault and revert marked"\n'
            f' src="data:image/png;base64,{png}">'
        )
    else:
        figure = (
            f'<p class="meta">The timeline plot was not drawn (--no-plot): '
            f"<code>failover-drill report runs/{e(result['run_id'])}</code> draws it from the journal.</p>"
        )
    rows = "".join(f"<tr><th>{e(k)}</th><td>{e(val)}</td></tr>" for k, val in scorecard_rows(result))
    reasons = "".join(f"<li>{e(r)}</li>" for r in v["reasons"])
    reasons = f"<ul>{reasons}</ul>" if reasons else ""

    def table(head: tuple[str, ...], body: list[tuple[str, ...]]) -> str:
        th = "".join(f"<th>{e(h)}</th>" for h in head)
        trs = "".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>" for row in body)
        return f"<table><tr>{th}</tr>{trs}</table>"

    checks = check_rows(v)
    checks_html = table(("check", "measured", "limit", ""), list(checks)) if checks else ""
    latency_html = table(LATENCY_COLUMNS, list(latency_rows(result)))
    events = event_rows(result)
    events_html = (
        "<h2>What the platform saw (first 30 events after the fault)</h2>"
        + table(("t (s)", "source", "event", "where"), list(events))
        if events
        else ""
    )
    parts = prediction_parts(result)
    prediction_html = ""
    if parts is not None:
        verdict, detail, said, traps = parts
        trap_rows: list[tuple[str, ...]] = [(t["trap"], t["detail"], t["fix"], t["where"]) for t in traps]
        prediction_html = (
            f"<h2>Predicted from the manifests: {e(verdict.upper())}</h2><p>{e(detail)}</p>"
            f"<pre>{e(chr(10).join(said))}</pre>" + (table(("trap", "why", "fix", "field"), trap_rows) if traps else "")
        )
    rolled = rollout_parts(result)
    rollouts_html = ""
    if rolled is not None:
        rollouts_html = f"<h2>Rollouts (Argo Rollouts controllers, deploy freeze)</h2><p>{e(rolled[0])}</p>" + table(
            ("t (s)", "region", "event", "detail"), list(rolled[1])
        )
    errors = "".join(f"<tr><td>{e(k)}</td><td>{n}</td></tr>" for k, n in result["traffic"]["errors"].items())
    word = verdict_word(v)
    verdict_cls = {"PASSED": "pass", "FAILED": "fail"}.get(word, "inconclusive")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Drill {e(result["run_id"])}</title><style>{CSS}</style></head>
<body>
<h1>Drill {e(result["run_id"])}</h1>
<p class="meta">Scenario <b>{e(result["scenario"])}</b> on <b>{e(result["platform"])}</b>, mesh <b>{e(result["mesh"])}</b>,
users in <b>{e(result["client_region"])}</b>, {result["traffic"]["rate_rps"]:g} req/s open loop.</p>
<h2 class="{verdict_cls}">Verdict: {word}</h2>
{reasons}
{checks_html}
{figure}
<h2>Scorecard</h2><table>{rows}</table>
{"<h2>Errors by class</h2><table><tr><th>class</th><th>count</th></tr>" + errors + "</table>" if errors else ""}
<h2>Latency by phase (ms, from scheduled send time)</h2>{latency_html}
{prediction_html}
{rollouts_html}
{events_html}
</body></html>
"""
