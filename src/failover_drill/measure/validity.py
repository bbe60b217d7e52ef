"""Can the stopwatch be trusted? A load generator that fell behind its schedule (CPU taken by
other work, by the host, or by itself) sends late and reads late, and would report the machine's
starvation as the mesh's latency and outage. Beyond these bounds a drill is inconclusive: never
the mesh's pass or fail."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from failover_drill.measure.timeline import Timeline
from failover_drill.traffic.generator import LATE_MS

# A request is late when it left more than LATE_MS (10 ms) after its scheduled time.
MAX_LATE_SHARE = 0.10  # more than one request in ten of a phase late
MAX_LAG_P99_MS = 100.0  # or a send-lag p99 over 100 ms
PHASES = ("baseline", "fault", "recovery")


@dataclass
class Validity:
    valid: bool
    reasons: list[str] = field(default_factory=list)
    phases: dict[str, dict[str, Any]] = field(default_factory=dict)
    bounds: dict[str, float] = field(
        default_factory=lambda: {"late_ms": LATE_MS, "max_late_share": MAX_LATE_SHARE, "max_lag_p99_ms": MAX_LAG_P99_MS}
    )


def _cpu_words(cpu: dict[str, float | None]) -> str:
    if cpu.get("busy_pct") is None:
        return ""
    words = f"; the machine's CPUs were {cpu['busy_pct']:.0f}% busy"
    if cpu.get("steal_pct"):
        words += f", {cpu['steal_pct']:.0f}% stolen by the host"
    if cpu.get("own_pct") is not None:
        words += f", the drill itself used {cpu['own_pct']:.0f}% of a core"
    return words


def judge_measurement(timeline: Timeline, cpu: dict[str, dict[str, float | None]]) -> Validity:
    """cpu: per phase, the mean busy / steal / own CPU shares the drill sampled (may be empty)."""
    out = Validity(valid=True)
    for phase in PHASES:
        lag = timeline.send_lag(phase)
        used = cpu.get(phase, {})
        out.phases[phase] = {
            **lag,
            "cpu_busy_pct": used.get("busy_pct"),
            "cpu_steal_pct": used.get("steal_pct"),
            "own_cpu_pct": used.get("own_pct"),
        }
        if not lag["requests"]:
            continue
        late = lag["late_share"] > MAX_LATE_SHARE
        slow = lag["p99_ms"] is not None and lag["p99_ms"] > MAX_LAG_P99_MS
        if late or slow:
            out.valid = False
            out.reasons.append(
                f"inconclusive: the load generator fell behind in the {phase} phase: "
                f"{100 * lag['late_share']:.1f}% of requests left more than {LATE_MS:g} ms late "
                f"(send-lag p99 {lag['p99_ms']:g} ms, max {lag['max_ms']:g} ms){_cpu_words(used)}. "
                "These figures describe the machine, not the mesh: rerun on a quieter machine or at a lower rate"
            )
    return out
