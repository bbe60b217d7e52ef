"""`make bench`: every benchmark in one run, one JSON document.

Each script prints its own figures as JSON with the baselines it measured in the same run; this
collects them (exit code and wall time beside each), adds the summary rows the README shows, each
beside its target, prints the document, writes it to bench/figures.json and regenerates the
README's benchmark table from it (bench/readme_table.py). `--only NAME ...` runs a subset and
keeps the other scripts' figures from the last full document, marked with their own date."""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from readme_table import FIGURES, HERE, README, summary, write_readme

SCRIPTS = [
    "sandbox_timing.py",
    "generator_vs_aiohttp.py",
    "generator_profile.py",
    "wrk_baseline.py",
    "measure_memory.py",
    "sandbox_capacity.py",
    "kwok_platform.py",
]


def last_json(text: str) -> Any:
    """The JSON document a script printed last (log lines may come before it)."""
    lines = text.splitlines()
    for i in range(len(lines) - 1, -1, -1):
        if lines[i].startswith("{"):
            try:
                return json.loads("\n".join(lines[i:]))
            except json.JSONDecodeError:
                continue
    return None


def run(name: str) -> dict[str, Any]:
    print(f"== {name}", file=sys.stderr, flush=True)
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, str(HERE / name)], capture_output=True, text=True, check=False)
    out: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d"),
        "exit": proc.returncode,
        "seconds": round(time.monotonic() - t0, 1),
        "figures": last_json(proc.stdout),
    }
    if proc.returncode != 0 or out["figures"] is None:
        out["stderr_tail"] = proc.stderr.strip().splitlines()[-8:]
    print(f"   exit {proc.returncode} in {out['seconds']} s", file=sys.stderr, flush=True)
    return out


def machine() -> dict[str, Any]:
    from failover_drill.platforms.envoy.binary import resolve_envoy

    try:
        envoy = resolve_envoy()[1]
    except Exception as e:  # the document says why rather than failing the whole run
        envoy = f"unknown ({e})"
    return {
        "arch": platform.machine(),
        "cpus": os.cpu_count(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "envoy": envoy,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--only", nargs="*", default=None, help="scripts to run (others kept from the last document)")
    args = ap.parse_args()
    chosen = SCRIPTS if not args.only else [s if s.endswith(".py") else s + ".py" for s in args.only]
    unknown = sorted(set(chosen) - set(SCRIPTS))
    if unknown:
        print(f"bench: no such benchmark {', '.join(unknown)}; choose from {', '.join(SCRIPTS)}", file=sys.stderr)
        return 2
    previous = json.loads(FIGURES.read_text()).get("scripts", {}) if FIGURES.exists() else {}
    scripts = {name: previous[name] for name in SCRIPTS if name in previous and name not in chosen}
    for name in chosen:
        scripts[name] = run(name)
    doc = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": machine(),
        "scripts": {name: scripts[name] for name in SCRIPTS if name in scripts},
    }
    doc["summary"] = summary(doc)
    FIGURES.write_text(json.dumps(doc, indent=2) + "\n")
    write_readme(doc, README)
    print(json.dumps(doc, indent=2))
    return 1 if any(scripts[n]["exit"] != 0 for n in chosen) else 0


if __name__ == "__main__":
    raise SystemExit(main())
