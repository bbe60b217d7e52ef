"""Memory of the measurement path for a long drill: journal written as it runs, then rebuilt into
result.json, at 500 req/s for 1 minute and for 10 minutes, each in a fresh process. Samples are
synthetic (a 3 s outage in the middle) because the fleet does not grow with duration; what must
stay flat is what the drill keeps per sample. Prints JSON with both peaks and their ratio."""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RATE = 500.0


def one(duration_s: float, out_dir: Path) -> dict[str, float]:
    from failover_drill.config.scenario import Phases, Scenario
    from failover_drill.measure.timeline import Phase, Timeline
    from failover_drill.report.journal import JournalWriter
    from failover_drill.report.rundir import write_reports
    from failover_drill.traffic.samples import Sample

    third = duration_s / 3
    sc = Scenario(phases=Phases(warmup_s=0.0, baseline_s=third, fault_s=third, recovery_s=third))
    run = out_dir / "run"
    jr = JournalWriter(run / "journal.jsonl")
    phases = [
        {"name": "warmup", "start": 0.0, "end": 0.0},
        {"name": "baseline", "start": 0.0, "end": third},
        {"name": "fault", "start": third, "end": 2 * third},
        {"name": "recovery", "start": 2 * third, "end": duration_s},
    ]
    jr.write(
        {
            "t": "meta",
            "run_id": "bench",
            "scenario": sc.model_dump(mode="json"),
            "platform": "bench",
            "mesh": "none",
            "phases": phases,
            "origin_wall": 0.0,
            "regions": ["a", "b"],
            "zones": [],
        }
    )
    live = Timeline()  # what the drill keeps while it runs
    live.set_phases([Phase(p["name"], p["start"], p["end"]) for p in phases])
    jr.write({"t": "ev", "kind": "fault_injected", "at": third, "fault": {"kind": "region-loss", "target": "a"}})
    t0 = time.process_time()
    for i in range(int(duration_s * RATE)):
        t = i / RATE
        bad = third <= t < third + 3
        s = Sample(
            i,
            t,
            3.0 if not bad else 1.0,
            0.2,
            503 if bad else 201,
            "upstream_connect" if bad else "ok",
            region=None if bad else ("a" if t < third else "b"),
            acked=not bad,
            key=f"bench-{i}",
        )
        jr.write(s.to_json())
        live.add(s)
        if i % 1000 == 0:
            jr.flush()
    jr.write({"t": "ev", "kind": "fault_reverted", "at": 2 * third})
    jr.write({"t": "ev", "kind": "end", "at": duration_s})
    jr.close()
    write_reports(run)
    return {
        "duration_s": duration_s,
        "samples": int(duration_s * RATE),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "cpu_s": round(time.process_time() - t0, 1),
    }


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--one":
        with tempfile.TemporaryDirectory() as tmp:
            print(json.dumps(one(float(sys.argv[2]), Path(tmp))))
        return
    results = {}
    for label, seconds in (("1_minute", 60), ("10_minutes", 600)):
        out = subprocess.run(
            [sys.executable, __file__, "--one", str(seconds)], capture_output=True, text=True, check=True
        )
        results[label] = json.loads(out.stdout.strip().splitlines()[-1])
    ratio = results["10_minutes"]["peak_rss_mib"] / results["1_minute"]["peak_rss_mib"]
    print(json.dumps({"rate_rps": RATE, **results, "ratio": round(ratio, 3), "target": "<= 1.5"}, indent=2))


if __name__ == "__main__":
    main()
