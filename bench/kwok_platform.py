"""kwok platform figures (issue 13 targets): three-region fleet up with binaries cached (<= 60 s),
the idle control planes' CPU (<= 0.3 of a core in total), the cold build time of the pinned
binaries as recorded when they were built (<= 45 min), and a zone-loss drill end to end (<= 3 min).
Needs go (binaries) and root (the pods' namespace). Prints JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from failover_drill import toolchain
from failover_drill.config.topology import load_topology
from failover_drill.platforms.kwok.control_plane import find_marked
from failover_drill.platforms.kwok.platform import KwokPlatform
from failover_drill.toolchain.build import read_stamp

ROOT = Path(__file__).resolve().parents[1]
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime + stime
    return total / TICKS


def main() -> int:
    pins = toolchain.load_pins()
    cold = {c: read_stamp(pins.component(c)) for c in pins.components}
    build_s = {c: (s or {}).get("seconds") for c, s in cold.items()}
    state = Path(tempfile.mkdtemp(prefix="fd-bench-kwok-"))
    platform = KwokPlatform(state / "kwok", load_topology(ROOT / "clusters" / "topology.yaml"))
    t0 = time.monotonic()
    platform.up()
    up_s = time.monotonic() - t0
    try:
        time.sleep(5)  # let start-up work settle
        cp = [m.pid for m in find_marked(platform.fleet_id) if m.label.split("/")[-1] in toolchain_components()]
        before, w0 = cpu_seconds(cp), time.monotonic()
        time.sleep(20)
        idle_cores = (cpu_seconds(cp) - before) / (time.monotonic() - w0)
    finally:
        platform.down()
    t1 = time.monotonic()
    drill = subprocess.run(
        [sys.executable, "-m", "failover_drill.cli", "drill", "--platform", "kwok", "--fault", "zone-loss",
         "--state-dir", str(state / "drill"), "--runs-dir", str(state / "runs")],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )  # fmt: skip
    drill_s = time.monotonic() - t1
    out = {
        "kwok_up_s": round(up_s, 1),
        "target_up_s": 60,
        "idle_control_planes_cores": round(idle_cores, 3),
        "target_idle_cores": 0.3,
        "cold_build_s": {k: v for k, v in build_s.items()},
        "cold_build_total_min": round(sum(v or 0 for v in build_s.values()) / 60, 1),
        "target_cold_build_min": 45,
        "zone_loss_drill_s": round(drill_s, 1),
        "zone_loss_drill_exit": drill.returncode,
        "target_drill_s": 180,
    }
    print(json.dumps(out, indent=2))
    return 0


def toolchain_components() -> set[str]:
    return {"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"}


if __name__ == "__main__":
    raise SystemExit(main())
