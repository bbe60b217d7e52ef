"""The timeline plot: success ratio, latency, served-by share, with fault/revert and TTD/TTR marked."""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from typing import Any

from failover_drill.report.markdown import verdict_word
from failover_drill.report.result import Replay

_ROLLOUT_MOMENTS = ("Abort", "Failed", "Completed", "Promot", "Resumed")


def timeline_png(result: dict[str, Any], replay: Replay, observations: Sequence[tuple[float, str]] = ()) -> bytes:
    """`observations`: what people reported, (seconds since the drill started, label), marked on
    the same axis as the measurements (a game day's after-action report)."""
    # Imported here: matplotlib is half of the CLI's start-up time, and only a finished drill's
    # report draws (status, up, down, recover and Chaos Toolkit probes never do).
    # The object-oriented API on the Agg canvas: no pyplot figure manager to create and close.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter, NullLocator

    tl = replay.timeline
    start = result["phases"]["baseline"]["start_s"]
    end = result["phases"]["recovery"]["end_s"]
    series = tl.series(start, end)
    xs = [t for t, _ in series]
    ratio = [(b.ok / b.count * 100) if b.count else math.nan for _, b in series]
    p50 = [b.p50 for _, b in series]
    p99 = [b.p99 for _, b in series]
    regions = sorted({r for _, b in series for r in b.served})
    shares = {r: [(b.served.get(r, 0) / b.ok * 100) if b.ok else 0.0 for _, b in series] for r in regions}

    fig = Figure(figsize=(11, 8.5))
    FigureCanvasAgg(fig)
    ax1, ax2, ax3 = fig.subplots(3, 1, sharex=True, gridspec_kw={"height_ratios": [3, 3, 2]})
    ax1.plot(xs, ratio, color="#1f77b4", lw=1.2, label="success ratio (100 ms buckets)")
    ax1.axhline(
        result["error_budget"]["slo"],
        color="#2ca02c",
        ls=":",
        lw=1,
        label=f"SLO {result['error_budget']['slo']}%",
    )
    ax1.set_ylabel("success %")
    ax1.set_ylim(-2, 102)
    ax2.plot(xs, p50, color="#9467bd", lw=1, label="p50")
    ax2.plot(xs, p99, color="#d62728", lw=1, label="p99")
    ax2.set_ylabel("latency ms (from scheduled send)")
    ax2.set_yscale("log")
    # Plain numbers on the log axis: its default 10^n labels go through mathtext, and its minor
    # ticks are dozens more labels to lay out, together a third of the plot's time.
    ax2.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax2.yaxis.set_minor_locator(NullLocator())
    bottom = [0.0] * len(xs)
    palette = ["#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860"]
    for i, r in enumerate(regions):
        ax3.fill_between(
            xs,
            bottom,
            [b + s for b, s in zip(bottom, shares[r], strict=True)],
            step="post",
            color=palette[i % len(palette)],
            alpha=0.8,
            label=r,
        )
        bottom = [b + s for b, s in zip(bottom, shares[r], strict=True)]
    ax3.set_ylabel("served by %")
    ax3.set_ylim(0, 100)
    ax3.set_xlabel("seconds since the drill started")

    t0 = result["fault"]["injected_at_s"]
    tr = result["fault"]["reverted_at_s"]
    fo = result["failover"]
    for ax in (ax1, ax2, ax3):
        ax.axvspan(t0, tr if tr is not None else end, color="#d62728", alpha=0.07)
        ax.axvline(t0, color="#d62728", lw=1.2)
        if tr is not None:
            ax.axvline(tr, color="#2ca02c", lw=1.2)
        ax.grid(alpha=0.3)
    label = f"fault: {result['fault']['kind']} {result['fault']['target']}"
    ax1.annotate(label, (t0, 101), xytext=(4, -12), textcoords="offset points", color="#d62728", fontsize=9)
    if tr is not None:
        ax1.annotate("revert", (tr, 101), xytext=(4, -12), textcoords="offset points", color="#2ca02c", fontsize=9)
    # The return home is what people look for after a revert; failback (the success ratio back at
    # the SLO) is often 0 s when other regions were serving, and sits in the scorecard.
    marks = [("first error", fo["ttd_s"], t0), ("TTR", fo["ttr_s"], t0), ("back home", fo.get("return_s"), tr)]
    for i, (name, v, base) in enumerate(marks):
        if v is not None and base is not None:
            ax1.axvline(base + v, color="black", ls="--", lw=0.8)
            ax1.annotate(
                f"{name} {v:.2f}s",
                (base + v, 8 + 14 * i),
                xytext=(4, 0),
                textcoords="offset points",
                fontsize=9,
            )
    for i, (at, text) in enumerate(observations):
        for ax in (ax1, ax2, ax3):
            ax.axvline(at, color="#ff7f0e", ls=":", lw=1.2)
        # Left of its line: an observation is often the last thing on the axis.
        ax1.annotate(
            text,
            (at, 92 - 12 * (i % 6)),
            xytext=(-4, 0),
            textcoords="offset points",
            ha="right",
            fontsize=9,
            color="#b35900",
        )
    # What the rollout controllers decided and the deploy freeze: the moments a team asks about.
    shown = [
        (ev["at"], ev["reason"])
        for ev in (result.get("rollouts") or {}).get("events", [])
        if ev["at"] is not None
        and start <= ev["at"] <= end
        and (ev["source"] == "failover-drill" or any(w in ev["reason"] for w in _ROLLOUT_MOMENTS))
    ]
    for i, (at, reason) in enumerate(shown[:8]):
        ax1.axvline(at, color="#9467bd", ls="-.", lw=1.0)
        ax1.annotate(
            reason, (at, 60 - 10 * (i % 4)), xytext=(4, 0), textcoords="offset points", fontsize=8, color="#9467bd"
        )
    ax1.legend(loc="center right", fontsize=8)
    ax2.legend(loc="upper left", fontsize=8)
    if ax3.get_legend_handles_labels()[0]:  # nothing served (every request failed): no legend
        ax3.legend(loc="lower left", fontsize=8, ncol=len(regions) or 1)
    title = f"{result['scenario']} — {result['platform']} / {result['mesh']} — {verdict_word(result['verdict'])}"
    fig.suptitle(title, fontsize=12)
    # Fixed margins rather than tight_layout(): it lays every tick label out twice (log axis
    # included) and was half a second of each drill's report.
    fig.subplots_adjust(left=0.075, right=0.985, bottom=0.065, top=0.94, hspace=0.08)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, metadata={"Title": title})
    return buf.getvalue()
