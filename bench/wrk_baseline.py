"""The target's own ceiling, measured by a C load generator: `wrk` (Debian package `wrk`) against
the same Envoy direct-response listener the generator benchmark uses. wrk is closed loop, so this
is the listener's maximum throughput on this machine, not a schedule it keeps: it shows the target
is not what limits the Python generator. Prints JSON; says so when wrk is not installed."""

from __future__ import annotations

import json
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from direct_envoy import direct_envoy

POST_LUA = """
wrk.method = "POST"
wrk.body = '{"amount_cents": 1000, "currency": "USD"}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Idempotency-Key"] = "wrk"
"""


def _ms(value: str, unit: str) -> float:
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def main() -> int:
    out: dict[str, object] = {"date": time.strftime("%Y-%m-%d"), "machine": platform.machine()}
    wrk = shutil.which("wrk")
    if wrk is None:
        out["skipped"] = "wrk is not installed (Debian: apt-get install wrk)"
        print(json.dumps(out, indent=2))
        return 0
    with tempfile.TemporaryDirectory() as tmp, direct_envoy(concurrency=1) as url:
        script = Path(tmp) / "post.lua"
        script.write_text(POST_LUA)
        res = subprocess.run(
            [wrk, "-t1", "-c32", "-d5s", "--latency", "-s", str(script), url + "/v1/payments"],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
    text = res.stdout
    rps = re.search(r"Requests/sec:\s+([\d.]+)", text)
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", text)
    out["wrk"] = {
        "threads": 1,
        "connections": 32,
        "requests_per_s": float(rps.group(1)) if rps else None,
        "latency_p99_ms": _ms(*p99.groups()) if p99 else None,
        "non_2xx": int(m.group(1)) if (m := re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)) else 0,
    }
    print(json.dumps(out, indent=2))
    return 0 if rps else 1


if __name__ == "__main__":
    raise SystemExit(main())
