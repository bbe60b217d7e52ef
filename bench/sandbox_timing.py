"""Time to a result on the sandbox (issue 20 targets): the fleet up (<= 5 s) and down, each stage
by name, three times in fresh state dirs; then `make drill`'s own drill end to end and the part of
its wall time outside the measured phases (result.json timing.overhead_s, <= 5 s). Prints JSON."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from failover_drill.config.topology import load_topology
from failover_drill.platforms.sandbox.platform import SandboxPlatform

ROOT = Path(__file__).resolve().parents[1]
ROUNDS = 3


def up_down(state: Path) -> dict[str, object]:
    p = SandboxPlatform(state / "sandbox", load_topology())
    t0 = time.monotonic()
    p.up()
    up_s = time.monotonic() - t0
    t1 = time.monotonic()
    p.down()
    return {
        "up_s": round(up_s, 2),
        "down_s": round(time.monotonic() - t1, 2),
        "stages_s": {k: round(v, 2) for k, v in p.up_timings},
    }


def drill(state: Path) -> dict[str, object]:
    runs = state / "runs"
    t0 = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "failover_drill.cli", "drill", "--region", "us-east1", "--fault", "region-loss",
         "--state-dir", str(state / "drill"), "--runs-dir", str(runs)],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )  # fmt: skip
    wall_s = time.monotonic() - t0
    results = sorted(runs.glob("*/result.json"))
    timing = json.loads(results[-1].read_text()).get("timing", {}) if results else {}
    return {"exit": proc.returncode, "wall_s": round(wall_s, 1), "timing": timing}


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="fd-bench-timing-") as tmp:
        rounds = [up_down(Path(tmp) / f"r{i}") for i in range(ROUNDS)]
        one = drill(Path(tmp))
    out = {
        "up_s_median": statistics.median(float(r["up_s"]) for r in rounds),
        "down_s_median": statistics.median(float(r["down_s"]) for r in rounds),
        "target_up_s": 5.0,
        "rounds": rounds,
        "drill": one,
        "target_overhead_s": 5.0,
    }
    print(json.dumps(out, indent=2))
    return 0 if one["exit"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
