"""Where a request's CPU goes: py-spy samples one generator loop and one raw aiohttp loop, each
sending 2,000 req/s for 10 s at the direct-response Envoy, and prints the functions where the
generator spends samples the baseline does not (its own code above all), as shares of each
loop's samples. Needs py-spy (dev extra) and ptrace rights; says so when it cannot run."""

from __future__ import annotations

import collections
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).parent
RATE = 2000
SECONDS = 10.0
RUNNER = """
import sys
sys.path.insert(0, {here!r})
import generator_vs_aiohttp as g
from direct_envoy import direct_envoy_process
g.DURATION = {seconds}
with direct_envoy_process(concurrency=1) as (url, _pid):
    print(g._run(g.generator if sys.argv[1] == "generator" else g.raw_aiohttp, url, {rate}))
"""


def _function(frame: str) -> str:
    # "name (path/to/file.py:123)" -> "name (file.py)": one row per function, not per line.
    m = re.match(r"(.*) \((.*?):\d+\)$", frame)
    if not m:
        return frame
    path = m.group(2)
    for marker in ("/site-packages/", "/src/", "/lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{m.group(1)} ({path})"


def _profile(which: str, tmp: Path) -> tuple[collections.Counter[str], collections.Counter[str], int]:
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    script = tmp / "run.py"
    script.write_text(RUNNER.format(here=str(HERE), seconds=SECONDS, rate=RATE))
    raw = tmp / f"{which}.txt"
    subprocess.run(
        [spy, "record", "--rate", "250", "--format", "raw", "--output", str(raw), "--",
         sys.executable, str(script), which],
        check=True, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    inclusive: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = [_function(f) for f in stack.split(";")]
        # Only the sending loop: start-up imports and the target's set-up are not per request.
        if not any(f.startswith(("_run (", "Runner.run (")) for f in frames):
            continue
        n = int(count)
        total += n
        own[frames[-1]] += n
        for f in set(frames):
            inclusive[f] += n
    return inclusive, own, total


def main() -> int:
    if not (shutil.which("py-spy") or (Path(sys.executable).parent / "py-spy").exists()):
        print(json.dumps({"skipped": "py-spy is not installed (pip install py-spy)"}, indent=2))
        return 0
    with tempfile.TemporaryDirectory() as d:
        try:
            gen_incl, gen_own, gen_total = _profile("generator", Path(d))
            _, raw_own, raw_total = _profile("raw", Path(d))
        except subprocess.CalledProcessError as e:
            print(json.dumps({"skipped": f"py-spy could not sample: {e.stderr.strip()[-300:]}"}, indent=2))
            return 0

    def share(c: collections.Counter[str], total: int, f: str) -> float:
        return round(100 * c[f] / total, 1) if total else 0.0

    extra = sorted(gen_own, key=lambda f: -(gen_own[f] / gen_total - raw_own[f] / raw_total))[:12]
    ours = [f for f, _ in gen_incl.most_common() if "failover_drill/" in f][:8]
    print(
        json.dumps(
            {
                "rate": RATE,
                "seconds": SECONDS,
                "samples": {"generator": gen_total, "raw_aiohttp": raw_total},
                "note": "py-spy samples wall time at 250 Hz; idle time in the event loop shows as Runner.run",
                "own_code_inclusive_pct": {f: share(gen_incl, gen_total, f) for f in ours},
                "self_pct_above_baseline": [
                    {
                        "function": f,
                        "generator_pct": share(gen_own, gen_total, f),
                        "raw_pct": share(raw_own, raw_total, f),
                    }
                    for f in extra
                ],
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
