"""`make bench`: every benchmark, each printing its figures as JSON with its own baseline."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent
SCRIPTS = ["measure_memory.py", "generator_vs_aiohttp.py", "wrk_baseline.py", "sandbox_capacity.py", "kwok_platform.py"]


def main() -> int:
    failed = 0
    for name in SCRIPTS:
        print(f"== {name}", flush=True)
        failed += subprocess.run([sys.executable, str(HERE / name)], check=False).returncode != 0
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
